module Jaclip
  module Native
    attach_function :jaclip_model_family, [:pointer], :string
    attach_function :jaclip_model_default_scale, [:pointer], :float
    attach_function :jaclip_preset_labels, %i[out pointer string], :status
    attach_function :jaclip_preset_templates, %i[out pointer string], :status
    attach_function :jaclip_classifier_create, %i[out pointer pointer size_t pointer size_t], :status, blocking: true
    attach_function :jaclip_classifier_free, [:pointer], :void
    attach_function :jaclip_classifier_size, [:pointer], :size_t
    attach_function :jaclip_classifier_dim, [:pointer], :size_t
    attach_function :jaclip_classifier_template_count, [:pointer], :size_t
    attach_function :jaclip_classifier_label, %i[pointer size_t], :string
    attach_function :jaclip_classifier_template, %i[pointer size_t], :string
    attach_function :jaclip_classifier_default_scale, [:pointer], :float
    attach_function :jaclip_classifier_fingerprint, [:pointer], :string
    attach_function :jaclip_classifier_weights, %i[out pointer], :status
    attach_function :jaclip_classifier_save, %i[pointer string], :status, blocking: true
    attach_function :jaclip_classifier_load, %i[out string pointer], :status, blocking: true
    attach_function :jaclip_classifier_scores, %i[out pointer pointer], :status
    attach_function :jaclip_classifier_classify_features, %i[out pointer pointer float], :status
    attach_function :jaclip_classifier_classify_images, %i[out pointer pointer pointer size_t float], :status,
                    blocking: true
    attach_function :jaclip_classifier_classify_image_files, %i[out pointer pointer pointer size_t float], :status,
                    blocking: true
  end

  class << self
    # rinna's 1000 Japanese ImageNet class names for "imagenet".
    def preset_labels(name) = preset(:jaclip_preset_labels, name)

    # rinna's 37 Japanese prompt templates for "imagenet".
    def preset_templates(name) = preset(:jaclip_preset_templates, name)

    private

    def preset(fn, name)
      arr = FFI::MemoryPointer.new(:pointer)
      count = FFI::MemoryPointer.new(:size_t)
      Native.check(Native.send(fn, arr, count, name.to_s))
      arr.read_pointer.get_array_of_pointer(0, count.read(:size_t)).map { |p| p.read_string.force_encoding(Encoding::UTF_8) }
    end
  end

  # A zero-shot classifier (jaclip_classifier) built in C by rinna's ImageNet protocol: every template
  # filled with every label, text embeddings L2-normalised, averaged per label, re-normalised. labels: an
  # Array of Strings; templates: nil (the label alone), one String with {} or an Array of them.
  class Classifier
    include Closable

    def initialize(model, labels, templates = nil, _loader: nil)
      @model = model
      out = FFI::MemoryPointer.new(:pointer)
      if _loader
        model.send(:use) { |m| Native.check(_loader.call(out, m)) }
      else
        lp, ln, _keep_l = Classifier.strings(labels, "label")
        templates = [] if templates.nil?
        templates = [templates] if templates.is_a?(String)
        tp, tn, _keep_t = Classifier.strings(templates, "template")
        model.send(:use) { |m| Native.check(Native.jaclip_classifier_create(out, m, lp, ln, tn.zero? ? nil : tp, tn)) }
      end
      @handle = Handle.new(out.read_pointer, :jaclip_classifier_free, "classifier")
    end

    # A classifier saved by #save; refused unless it was built with this same model.
    def self.load(path, model, &block)
      open(model, nil, _loader: ->(out, m) { Native.jaclip_classifier_load(out, path.to_s, m) }, &block)
    end

    def self.strings(items, what)
      raise TypeError, "expected an Array of #{what}s, not #{items.class}" unless items.is_a?(Array)

      raw = items.map { |s| Jaclip.text_bytes(s) }
      raw.each_with_index do |b, i|
        raise InvalidArgumentError.new("#{what} #{i} contains a NUL byte", 1) if b.include?("\0")
      end
      bufs = raw.map { |b| FFI::MemoryPointer.from_string(b) }
      ptrs = FFI::MemoryPointer.new(:pointer, [bufs.size, 1].max).put_array_of_pointer(0, bufs)
      [ptrs, bufs.size, bufs]
    end

    def save(path)
      use { |c| Native.check(Native.jaclip_classifier_save(c, path.to_s)) }
      nil
    end

    def size = use { |c| Native.jaclip_classifier_size(c) }
    def dim = use { |c| Native.jaclip_classifier_dim(c) }
    def default_scale = use { |c| Native.jaclip_classifier_default_scale(c) }
    def fingerprint = use { |c| Native.jaclip_classifier_fingerprint(c) }

    def labels
      use { |c| Array.new(Native.jaclip_classifier_size(c)) { |i| Native.jaclip_classifier_label(c, i).force_encoding(Encoding::UTF_8) } }
    end

    def templates
      use do |c|
        Array.new(Native.jaclip_classifier_template_count(c)) { |i| Native.jaclip_classifier_template(c, i).force_encoding(Encoding::UTF_8) }
      end
    end

    # [size][dim] Floats, unit rows.
    def weights = use { |c| Tensor.call(:jaclip_classifier_weights, c) }

    # Cosines [N][size] of feature rows with each label.
    def scores(features)
      Tensor.with_c([features, Tensor::FLOAT32]) { |t| use { |c| Tensor.call(:jaclip_classifier_scores, c, t) } }
    end

    # softmax(scale * scores) per row; scale nil = default_scale.
    def classify_features(features, scale: nil)
      Tensor.with_c([features, Tensor::FLOAT32]) do |t|
        use { |c| Tensor.call(:jaclip_classifier_classify_features, c, t, scale.nil? ? 0.0 : scale.to_f) }
      end
    end

    # Probabilities [n][size] for an Array of image paths or Jaclip::Images.
    def classify(images, scale: nil)
      raise TypeError, "expected an Array of images" unless images.is_a?(Array)

      s = scale.nil? ? 0.0 : scale.to_f
      @model.send(:use) do |m|
        if !images.empty? && images.all? { |x| x.is_a?(String) || x.is_a?(Pathname) }
          paths = images.map { |x| FFI::MemoryPointer.from_string(x.to_s) }
          arr = FFI::MemoryPointer.new(:pointer, paths.size).put_array_of_pointer(0, paths)
          use { |c| Tensor.call(:jaclip_classifier_classify_image_files, c, m, arr, paths.size, s) }
        else
          Image.with_pointers(images, max_pixels: @model.instance_variable_get(:@max_pixels),
                                      flags: @model.instance_variable_get(:@flags)) do |ptrs, n|
            use { |c| Tensor.call(:jaclip_classifier_classify_images, c, m, ptrs, n, s) }
          end
        end
      end
    end

    # One image's Predictions, best first (all, or the top best). Ranked by cosine, as `jaclip
    # classify` ranks: at a scale of 100 probabilities saturate to equal values where cosines differ.
    def predict(image, top: nil, scale: nil)
      features = @model.encode_images([image])
      probs = classify_features(features, scale: scale).first
      idx, = Jaclip.topk(scores(features), top || size)
      names = labels
      idx.first.map { |i| Prediction.new(names[i], probs[i]) }
    end

    def inspect
      return "#<Jaclip::Classifier (closed)>" if closed?

      "#<Jaclip::Classifier labels=#{size} templates=#{templates.size} dim=#{dim}>"
    end

    private

    def use(&block) = @handle.use(&block)
  end
end
