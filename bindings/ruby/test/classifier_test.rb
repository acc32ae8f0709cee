require_relative "test_helper"

# Jaclip::Classifier over the C classifier, and the TypeError docs/ruby.md promises for a single String
# where an Array of labels is expected (before: NoMethodError from String#empty?).
class ClassifierTest < Minitest::Test
  include Helpers

  LABELS = %w[犬 猫 象].freeze
  TEMPLATES = ["{}の写真", "{}のイラスト"].freeze

  def unit(r) = (n = norm(r); r.map { |x| x / n })

  def test_a_single_string_of_labels_is_a_type_error
    assert_raises(TypeError) { model.classify(DOG, "犬,猫") }
    assert_raises(TypeError) { model.encode_labels("犬,猫") }
    assert_raises(TypeError) { Jaclip::Classifier.new(model, "犬,猫") }
  end

  def test_weights_are_the_template_average_and_survive_a_file
    Jaclip::Classifier.open(model, LABELS, TEMPLATES) do |c|
      feats = model.encode_texts(LABELS.flat_map { |l| TEMPLATES.map { |t| t.sub("{}", l) } })
      ref = feats.map { |r| unit(r) }.each_slice(2).map { |rows| unit(rows.transpose.map { |col| col.sum / 2 }) }
      assert_rows_close ref, c.weights
      assert_equal LABELS, c.labels
      assert_equal TEMPLATES, c.templates
      assert_equal 100.0, c.default_scale
      Dir.mktmpdir do |dir|
        path = File.join(dir, "c.jzs")
        c.save(path)
        Jaclip::Classifier.load(path, model) { |again| assert_equal c.weights, again.weights }
        Jaclip::Model.open(TINY_MODEL_BF16) do |other|
          assert_raises(Jaclip::InvalidArgumentError) { Jaclip::Classifier.load(path, other) }
        end
      end
      probs = c.classify([DOG]).first
      assert_in_delta 1.0, probs.sum, 1e-5
      assert_equal LABELS[probs.each_with_index.max.last], c.predict(DOG).first.label
    end
  end

  def test_presets
    assert_equal 1000, Jaclip.preset_labels("imagenet").size
    assert_equal 37, Jaclip.preset_templates("imagenet").size
    assert_raises(Jaclip::NotFoundError) { Jaclip.preset_templates("cifar") }
  end

  def test_predict_ranks_by_cosine_where_probabilities_saturate
    names = %w[犬 猫 象 車 海 山 花 空]
    Jaclip::Classifier.open(model, names, "{}の写真") do |c|
      cos = c.scores(model.encode_images([DOG])).first
      ranked = c.predict(DOG, scale: 1e5)
      assert_operator ranked.count { |p| p.probability.zero? }, :>=, names.size - 2
      assert_equal names.each_index.sort_by { |i| [-cos[i], i] }.map { |i| names[i] }, ranked.map(&:label)
    end
  end
end
