require_relative "test_helper"

# Jaclip::Index#search with filters, offset and threshold (issue 25) against a brute-force ranking
# computed here, and metadata.
class IndexFilterTest < Minitest::Test
  include Helpers

  def test_filters_offset_threshold_against_brute_force
    rng = Random.new(3)
    data = Array.new(120) { Array.new(8) { [rng.rand * 2 - 1].pack("f").unpack1("f") } }
    labels = Array.new(120) { |i| "#{i.even? ? 'a' : 'b'}/#{i % 5}/x#{i}.#{i % 3 == 0 ? 'png' : 'jpg'}" }
    q = [Array.new(8) { rng.rand * 2 - 1 }]
    qn = Math.sqrt(q[0].sum { |x| x * x })
    score = ->(row) { row.zip(q[0]).sum { |a, b| a * b } / Math.sqrt(row.sum { |x| x * x }) / qn }
    Jaclip::Index.open(8) do |ix|
      ix.add(data, labels)
      [[{ folder: "a/2" }, ->(l) { l.start_with?("a/2/") }],
       [{ types: ["PNG"], offset: 3 }, ->(l) { l.end_with?(".png") }],
       [{ folder: "b", types: "jpg", offset: 1 }, ->(l) { l.start_with?("b/") && l.end_with?(".jpg") }]].each do |kw, keep|
        idx, val = ix.search(q, 6, **kw)
        passing = (0...120).select { |i| keep.call(labels[i]) }
        want = passing.map { |i| score.call(data[i]) }.sort.reverse.drop(kw.fetch(:offset, 0)).first(6)
        assert_equal want.size, idx[0].size
        idx[0].each { |i| assert keep.call(labels[i]), labels[i] }
        val[0].zip(want).each { |g, w| assert_in_delta w, g, 1e-5 }
      end
      idx, val = ix.search(q, 120, threshold: 0.2)
      above = data.count { |r| score.call(r) >= 0.2 + 1e-5 }
      assert idx[0].first(above).all? { |i| i >= 0 }
      assert_equal(-1, idx[0].last) if above < 110
      assert_equal(-Float::INFINITY, val[0].last) if above < 110
      assert_equal [[]], ix.search(q, 5, after: Time.at(0))[0] # rows added in memory have no stamp
      assert_raises(Jaclip::InvalidArgumentError) { ix.search(q, 5, threshold: Float::NAN) }
      assert_nil ix.metadata("root")
      ix.set_metadata("root", "/写真")
      assert_equal "/写真", ix.metadata("root")
      assert_equal 0, ix.deleted_rows
    end
  end
end
