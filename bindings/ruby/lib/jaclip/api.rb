require "pathname"

module Jaclip
  KINDS = { cosine: 0, dot: 1 }.freeze
  PRECISIONS = { nil => 0, default: 0, fp32: 1, bf16: 2, int8: 3, auto: 4, int8_weights: 5 }.freeze
  PRECISION_NAMES = { 1 => :fp32, 2 => :bf16, 3 => :int8, 5 => :int8_weights }.freeze
  PIXEL_FORMATS = { "L" => 1, "RGB" => 2, "RGBA" => 3, "LA" => 4 }.freeze
  EXIF_TRANSPOSE = 1

  Prediction = Struct.new(:label, :probability)

  class << self
    def version_number = Native.jaclip_version_number
    def version_string = Native.jaclip_version_string
    # "JACLIP_ERROR_IO: input/output error"
    def status_string(status) = Native.jaclip_status_string(status)
    def library_path = Native.path

    # Raises VersionError unless a library of version found serves a gem written for expected: same
    # major (and, before 1.0, same minor) and not older.
    def check_version(found = version_number, expected = EXPECTED_VERSION_NUMBER)
      same = found / 10_000 == expected / 10_000 && (expected >= 10_000 || found / 100 == expected / 100)
      return if same && found >= expected

      text = ->(n) { "#{n / 10_000}.#{n / 100 % 100}.#{n % 100}" }
      raise VersionError.new("jaclip #{VERSION} needs libjaclip #{text.(expected)} or a compatible later " \
                             "release, but #{library_path} is #{text.(found)}", 1)
    end

    # scale * sim(a[i], b[j]) as [Na][Nb] Floats; kind :cosine (rows normalised) or :dot.
    def similarity(a, b, kind: :cosine, scale: 1.0)
      Tensor.with_c([a, Tensor::FLOAT32], [b, Tensor::FLOAT32]) do |ta, tb|
        Tensor.call(:jaclip_similarity, ta, tb, kind_code(kind), scale)
      end
    end

    # softmax(similarity(a, b, kind, scale)) row by row.
    def probabilities(a, b, kind: :cosine, scale: 100.0)
      Tensor.with_c([a, Tensor::FLOAT32], [b, Tensor::FLOAT32]) do |ta, tb|
        Tensor.call(:jaclip_probabilities, ta, tb, kind_code(kind), scale)
      end
    end

    def softmax(logits)
      Tensor.with_c([logits, Tensor::FLOAT32]) { |t| Tensor.call(:jaclip_softmax, t) }
    end

    def normalize(x)
      Tensor.with_c([x, Tensor::FLOAT32]) { |t| Tensor.call(:jaclip_normalize, t) }
    end

    # [indices, values] of the k largest entries of each row, best first.
    def topk(scores, k)
      Tensor.with_c([scores, Tensor::FLOAT32]) do |t|
        idx = FFI::MemoryPointer.new(:pointer)
        val = FFI::MemoryPointer.new(:pointer)
        Native.check(Native.jaclip_topk(idx, val, t, k))
        [Tensor.take(idx.read_pointer), Tensor.take(val.read_pointer)]
      end
    end

    # [n][3][size][size] Floats from Images (or paths), with 3 means and 3 stds.
    def preprocess_images(images, size, mean, std)
      unless mean.size == 3 && std.size == 3
        raise InvalidArgumentError.new("mean and std need 3 values each, got #{mean.size} and #{std.size}", 1)
      end
      m = FFI::MemoryPointer.new(:float, 3).put_array_of_float(0, mean)
      s = FFI::MemoryPointer.new(:float, 3).put_array_of_float(0, std)
      Image.with_pointers(images) { |ptrs, n| Tensor.call(:jaclip_image_preprocess, ptrs, n, size, m, s) }
    end

    # Bytes of a text for the C API: UTF-8 and binary Strings as they are (invalid UTF-8 is refused by the
    # library), other encodings transcoded to UTF-8.
    def text_bytes(text)
      raise TypeError, "a text must be a String, not #{text.class}" unless text.is_a?(String)

      text = text.encode(Encoding::UTF_8) unless [Encoding::UTF_8, Encoding::BINARY, Encoding::US_ASCII].include?(text.encoding)
      text.b
    end

    # [pointer array, size array, count, keep-alive] for a list of texts.
    def text_arrays(texts)
      raise TypeError, "expected an Array of texts" unless texts.is_a?(Array)

      raw = texts.map { |t| text_bytes(t) }
      bufs = raw.map { |b| FFI::MemoryPointer.new(:char, [b.bytesize, 1].max).put_bytes(0, b) }
      ptrs = FFI::MemoryPointer.new(:pointer, [texts.size, 1].max).put_array_of_pointer(0, bufs)
      # size_t is unsigned long on the LP64 systems libjaclip builds on.
      sizes = FFI::MemoryPointer.new(:size_t, [texts.size, 1].max).put_array_of_ulong(0, raw.map(&:bytesize))
      [ptrs, sizes, texts.size, bufs]
    end

    private

    def kind_code(kind)
      KINDS.fetch(kind.to_sym) { raise InvalidArgumentError.new("unknown similarity kind #{kind.inspect} (:cosine or :dot)", 1) }
    end
  end

  # Shared by Image, Tokenizer, Model and Index: open with a block closes at its end.
  module Closable
    def closed? = @handle.closed?

    def close = @handle.close

    module ClassMethods
      def open(*args, **kwargs)
        obj = new(*args, **kwargs)
        return obj unless block_given?

        begin
          yield obj
        ensure
          obj.close
        end
      end
    end

    def self.included(base) = base.extend(ClassMethods)
  end

  # A decoded image (jaclip_image).
  class Image
    include Closable

    def initialize(path, max_pixels: 0, exif_transpose: false, _loader: nil)
      out = FFI::MemoryPointer.new(:pointer)
      if _loader
        Native.check(_loader.call(out))
      else
        Native.check(Native.jaclip_image_load(out, path.to_s, max_pixels, exif_transpose ? EXIF_TRANSPOSE : 0))
      end
      @handle = Handle.new(out.read_pointer, :jaclip_image_free, "image")
    end

    # Decodes an encoded image (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIF) held in a String (not kept).
    def self.from_bytes(data, max_pixels: 0, exif_transpose: false)
      buf = FFI::MemoryPointer.from_string(data.b)
      new(nil, _loader: ->(out) { Native.jaclip_image_load_memory(out, buf, data.bytesize, max_pixels, exif_transpose ? EXIF_TRANSPOSE : 0) })
    end

    # Wraps 8-bit pixels (a binary String, rows stride bytes apart; 0 = packed) of format "L", "LA",
    # "RGB" or "RGBA".
    def self.from_pixels(data, width, height, format, stride: 0)
      code = PIXEL_FORMATS.fetch(format.to_s) { raise InvalidArgumentError.new("unknown pixel format #{format.inspect}", 1) }
      data = data.b
      check_pixel_buffer(data.bytesize, width, height, stride, code)
      buf = FFI::MemoryPointer.from_string(data)
      new(nil, _loader: ->(out) { Native.jaclip_image_from_pixels(out, buf, width, height, stride, code) })
    end

    PIXEL_BYTES = { 1 => 1, 2 => 3, 3 => 4, 4 => 2 }.freeze # jaclip_pixel_format -> bytes per pixel

    # The C call reads (height - 1) * stride + width * bytes-per-pixel bytes and cannot see the buffer's
    # end: a shorter buffer is refused before the call.
    def self.check_pixel_buffer(length, width, height, stride, code)
      [width, height, stride].each { |v| raise TypeError, "sizes must be Integers, not #{v.class}" unless v.is_a?(Integer) }
      return if width <= 0 || height <= 0 || stride.negative?

      row = width * PIXEL_BYTES.fetch(code)
      needed = (height - 1) * (stride.zero? ? row : stride) + row
      return if length >= needed

      raise InvalidArgumentError.new("#{length} bytes of pixels, but #{width}x#{height} with stride " \
                                     "#{stride.zero? ? row : stride} needs #{needed}", 1)
    end

    def width = @handle.use { |p| Native.jaclip_image_width(p) }
    def height = @handle.use { |p| Native.jaclip_image_height(p) }
    def mode = @handle.use { |p| Native.jaclip_image_mode(p) }

    # [size][size][3] Integers 0..255: the model's view before normalisation.
    def resize_crop(size)
      @handle.use { |p| Tensor.call(:jaclip_image_resize_crop, p, size) }
    end

    # Internal: yields (pointer array, n) for images, opening paths as temporary Images.
    def self.with_pointers(items, max_pixels: 0, flags: 0, &block)
      raise TypeError, "expected an Array of images" unless items.is_a?(Array)

      temps = []
      images = items.map do |item|
        next item if item.is_a?(Image)

        temps << Image.new(item, max_pixels: max_pixels, exif_transpose: (flags & EXIF_TRANSPOSE) != 0)
        temps.last
      end
      held = []
      images.each { |img| held << [img, img.send(:handle).enter] }
      ptrs = held.map(&:last)
      arr = FFI::MemoryPointer.new(:pointer, [ptrs.size, 1].max).put_array_of_pointer(0, ptrs)
      block.call(arr, ptrs.size)
    ensure
      held&.each { |img, _| img.send(:handle).leave }
      temps&.each(&:close)
    end

    private

    attr_reader :handle
  end

  # rinna's tokenizer: Tokenizer.open(path) / Tokenizer.from_bytes(data), or Model#tokenizer (lives as
  # long as its model).
  class Tokenizer
    include Closable

    def initialize(path, _loader: nil, _model_handle: nil)
      @model_handle = _model_handle
      if _model_handle
        @handle = _model_handle
        return
      end
      out = FFI::MemoryPointer.new(:pointer)
      Native.check(_loader ? _loader.call(out) : Native.jaclip_tokenizer_load(out, path.to_s))
      @handle = Handle.new(out.read_pointer, :jaclip_tokenizer_free, "tokenizer")
    end

    def self.from_bytes(data)
      buf = FFI::MemoryPointer.from_string(data.b)
      new(nil, _loader: ->(out) { Native.jaclip_tokenizer_load_memory(out, buf, data.bytesize) })
    end

    # A model's tokenizer is freed with the model.
    def close
      @handle.close unless @model_handle
    end

    def vocab_size = use { |t| Native.jaclip_tokenizer_vocab_size(t) }

    # The piece of an id ("▁", "犬"); NotFoundError for an id outside the vocabulary.
    def id_to_piece(id)
      piece = use { |t| Native.jaclip_tokenizer_id_to_piece(t, id) }
      raise NotFoundError.new("token id #{id} is not in the vocabulary", 13) if piece.null?

      piece.read_string.force_encoding(Encoding::UTF_8)
    end

    # [input_ids, attention_mask], each [texts.size][max_length] Integers, as the model reads them.
    def encode(texts, max_length: 77)
      ptrs, sizes, n, _keep = Jaclip.text_arrays(texts)
      ids = FFI::MemoryPointer.new(:pointer)
      mask = FFI::MemoryPointer.new(:pointer)
      use { |t| Native.check(Native.jaclip_tokenizer_encode(ids, mask, t, ptrs, sizes, n, max_length)) }
      [Tensor.take(ids.read_pointer), Tensor.take(mask.read_pointer)]
    end

    # Every id of one text, unframed and untruncated.
    def tokenize(text)
      raw = Jaclip.text_bytes(text)
      buf = FFI::MemoryPointer.new(:char, [raw.bytesize, 1].max).put_bytes(0, raw)
      use { |t| Tensor.call(:jaclip_tokenizer_tokenize, t, buf, raw.bytesize) }
    end

    def pieces(text) = tokenize(text).map { |id| id_to_piece(id) }

    private

    def use(&block)
      return @handle.use(&block) unless @model_handle

      @handle.use { |m| block.call(Native.jaclip_model_tokenizer(m)) }
    end
  end

  # A loaded model (jaclip_model); safe to share between threads. Model.open(path) { |m| ... } frees it
  # at the end of the block.
  #
  # device: "cpu", "cuda", "cuda:N"; num_threads: cores to use, 0 = all (non-zero also sizes
  # OpenBLAS's process-wide pool); precision: nil (as stored; bf16 files run fp32 where bf16 is not native), :fp32, :bf16, :int8 (int8 files), :int8_weights (int8 Linear weights made at load, libjaclip's kernel) or :auto (int8_weights with AVX512-VNNI and no AMX, else bf16 where native); max_image_pixels: limit for images the model decodes
  # (0 = default); exif_transpose: rotate decoded images by their EXIF orientation.
  class Model
    include Closable

    attr_reader :tokenizer

    def initialize(path, device: "cpu", num_threads: 0, precision: nil, max_image_pixels: 0,
                   exif_transpose: false, _loader: nil)
      code = PRECISIONS.fetch(precision&.to_sym) { raise InvalidArgumentError.new("unknown precision #{precision.inspect} (nil, :fp32, :bf16, :int8, :int8_weights or :auto)", 1) }
      @max_pixels = max_image_pixels
      @flags = exif_transpose ? EXIF_TRANSPOSE : 0
      opts_out = FFI::MemoryPointer.new(:pointer)
      Native.check(Native.jaclip_model_options_create(opts_out))
      opts = opts_out.read_pointer
      out = FFI::MemoryPointer.new(:pointer)
      begin
        Native.check(Native.jaclip_model_options_set_device(opts, device.to_s))
        Native.check(Native.jaclip_model_options_set_num_threads(opts, num_threads))
        Native.check(Native.jaclip_model_options_set_precision(opts, code))
        Native.check(Native.jaclip_model_options_set_max_image_pixels(opts, max_image_pixels))
        Native.check(Native.jaclip_model_options_set_image_flags(opts, @flags))
        Native.check(_loader ? _loader.call(out, opts) : Native.jaclip_model_load(out, path.to_s, opts))
      ensure
        Native.jaclip_model_options_free(opts)
      end
      @handle = Handle.new(out.read_pointer, :jaclip_model_free, "model")
      @tokenizer = Tokenizer.new(nil, _model_handle: @handle)
    end

    # Loads a model file's bytes (copied while loading).
    def self.from_bytes(data, **options)
      buf = FFI::MemoryPointer.from_string(data.b)
      new(nil, **options, _loader: ->(out, opts) { Native.jaclip_model_load_memory(out, buf, data.bytesize, opts) })
    end

    def embedding_dim = use { |m| Native.jaclip_model_embedding_dim(m) }
    def image_size = use { |m| Native.jaclip_model_image_size(m) }
    def max_text_length = use { |m| Native.jaclip_model_max_text_length(m) }
    def device = use { |m| Native.jaclip_model_device(m) }
    # What the model computes in: :fp32, :bf16 or :int8
    def precision = PRECISION_NAMES.fetch(use { |m| Native.jaclip_model_precision(m) })
    # Why (jaclip_model_precision_reason)
    def precision_reason = use { |m| Native.jaclip_model_precision_reason(m) }
    def fingerprint = use { |m| Native.jaclip_model_fingerprint(m) }
    def image_mean = use { |m| Native.jaclip_model_image_mean(m).get_array_of_float(0, 3) }
    def image_std = use { |m| Native.jaclip_model_image_std(m).get_array_of_float(0, 3) }

    # [n][D] Floats for an Array of image paths (String, Pathname) or Jaclip::Images. errors: :skip
    # leaves out each image that cannot be read, decoded or is over the pixel limit (the library's rule,
    # jaclip_model_encode_image_files_skipping) and returns SkippedImages(features [k][D], kept: their
    # input indices, skipped: [[index, Jaclip::Error]]); other errors still raise.
    def encode_images(images, errors: :raise)
      raise TypeError, "expected an Array of images" unless images.is_a?(Array)
      return encode_skipping(images, :path) if skip_errors?(errors)

      if !images.empty? && images.all? { |x| x.is_a?(String) || x.is_a?(Pathname) }
        paths = images.map { |x| FFI::MemoryPointer.from_string(x.to_s) }
        arr = FFI::MemoryPointer.new(:pointer, paths.size).put_array_of_pointer(0, paths)
        return use { |m| Tensor.call(:jaclip_model_encode_image_files, m, arr, paths.size) }
      end
      Image.with_pointers(images, max_pixels: @max_pixels, flags: @flags) do |ptrs, n|
        use { |m| Tensor.call(:jaclip_model_encode_images, m, ptrs, n) }
      end
    end

    # [n][D] Floats for an Array of encoded image files held in Strings; errors: as encode_images.
    def encode_image_buffers(blobs, errors: :raise)
      return encode_skipping(blobs, :buffer) if skip_errors?(errors)

      ptrs, sizes, n, _keep = Jaclip.text_arrays(blobs.map(&:b))
      use { |m| Tensor.call(:jaclip_model_encode_image_buffers, m, ptrs, sizes, n) }
    end

    SkippedImages = Struct.new(:features, :kept, :skipped)

    # [N][D] Floats from preprocessed pixel values [N][3][S][S].
    def encode_image_pixels(pixels)
      Tensor.with_c([pixels, Tensor::FLOAT32]) { |t| use { |m| Tensor.call(:jaclip_model_encode_pixel_values, m, t) } }
    end

    # [n][D] Floats for an Array of Strings.
    def encode_texts(texts)
      ptrs, sizes, n, _keep = Jaclip.text_arrays(texts)
      use { |m| Tensor.call(:jaclip_model_encode_texts, m, ptrs, sizes, n) }
    end

    # [N][D] Floats from ids and mask [N][L] (as Tokenizer#encode gives them).
    def encode_token_ids(input_ids, attention_mask)
      Tensor.with_c([input_ids, Tensor::INT64], [attention_mask, Tensor::INT64]) do |ti, tm|
        use { |m| Tensor.call(:jaclip_model_encode_token_ids, m, ti, tm) }
      end
    end

    # The [n][3][S][S] input the model would see for these paths or Images.
    def preprocess(images)
      Image.with_pointers(images, max_pixels: @max_pixels, flags: @flags) do |ptrs, n|
        use { |m| Tensor.call(:jaclip_model_preprocess_images, m, ptrs, n) }
      end
    end

    # "cloob" or "clip".
    def family = use { |m| Native.jaclip_model_family(m) }
    # The model's own probability scale: 100 for CLOOB, exp(logit_scale) for CLIP.
    def default_scale = use { |m| Native.jaclip_model_default_scale(m) }

    # Unit-length class embeddings [labels][D] by rinna's ImageNet protocol (Jaclip::Classifier's
    # weights): template nil (the label alone), one String with {} or an Array of them.
    def encode_labels(labels, template: nil)
      Classifier.open(self, labels, template, &:weights)
    end

    # Zero-shot classification of one image (path or Image): Predictions, best first, summing to 1.
    # scale nil = the model's default_scale.
    def classify(image, labels, template: nil, scale: nil)
      Classifier.open(self, labels, template) { |c| c.predict(image, scale: scale) }
    end

    def inspect
      return "#<Jaclip::Model (closed)>" if closed?

      "#<Jaclip::Model dim=#{embedding_dim} device=#{device} precision=#{precision}>"
    end

    private

    def use(&block) = @handle.use(&block)

    def skip_errors?(errors)
      raise ArgumentError, "errors must be :raise or :skip, got #{errors.inspect}" unless %i[raise skip].include?(errors)

      errors == :skip
    end

    # Paths (:path) or buffers (:buffer) through the library's skipping encoder; decoded Jaclip::Images
    # in a :path list cannot fail to decode and are encoded as they are, their rows merged in order.
    def encode_skipping(items, kind)
      images = kind == :path ? items.each_index.select { |i| items[i].is_a?(Jaclip::Image) } : []
      files = items.each_index.to_a - images
      rows = {}
      skipped = []
      unless files.empty?
        features, kept, failed = skipping_call(files.map { |i| items[i] }, kind)
        kept.each_with_index { |k, r| rows[files[k]] = features[r] }
        failed.each { |j, e| skipped << [files[j], e] }
      end
      encode_images(images.map { |i| items[i] }).each_with_index { |row, r| rows[images[r]] = row } unless images.empty?
      order = rows.keys.sort
      SkippedImages.new(order.map { |i| rows[i] }, order, skipped.sort_by(&:first))
    end

    def skipping_call(items, kind)
      failed = []
      on_skip = proc do |_user, index, status, message|
        failed << [index, Jaclip::ERRORS_BY_STATUS.fetch(status, Error).new(message, status)]
      end
      out = FFI::MemoryPointer.new(:pointer)
      kept = FFI::MemoryPointer.new(:pointer)
      if kind == :path
        paths = items.map { |x| FFI::MemoryPointer.from_string(x.to_s) }
        arr = FFI::MemoryPointer.new(:pointer, [paths.size, 1].max).put_array_of_pointer(0, paths)
        use do |m|
          Native.check(Native.jaclip_model_encode_image_files_skipping(out, kept, m, arr, paths.size, on_skip, nil))
        end
      else
        ptrs, sizes, n, _keep = Jaclip.text_arrays(items.map(&:b))
        use do |m|
          Native.check(Native.jaclip_model_encode_image_buffers_skipping(out, kept, m, ptrs, sizes, n, on_skip, nil))
        end
      end
      [Tensor.take(out.read_pointer), Tensor.take(kept.read_pointer), failed]
    end
  end
end
