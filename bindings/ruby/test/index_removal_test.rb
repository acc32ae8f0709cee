require_relative "test_helper"
require "tmpdir"

# Jaclip::Index removal, durable removal, compaction and the model fingerprint (lib/index/).
class IndexRemovalTest < Minitest::Test
  def unit_rows(n, dim)
    Array.new(n) { |i| Array.new(dim) { |j| j == i % dim ? 1.0 : 0.0 } }
  end

  def test_remove_in_memory_and_in_the_file
    Dir.mktmpdir do |dir|
      path = File.join(dir, "x.jci")
      ix = Jaclip::Index.new(4).add(unit_rows(4, 4), %w[a b a c])
      assert_equal 2, ix.remove(%w[a missing])
      assert_equal %w[b c], ix.labels
      ix.fingerprint = "cloob-4-0123456789abcdef"
      ix.save(path)
      ix.close
      assert_equal 1, Jaclip::Index.remove_file(path, ["b"])
      Jaclip::Index.load(path) do |loaded|
        assert_equal %w[c], loaded.labels
        assert_equal "cloob-4-0123456789abcdef", loaded.fingerprint
      end
      Jaclip::Index.compact_file(path)
      Jaclip::Index.load(path) { |loaded| assert_equal %w[c], loaded.labels }
      assert_raises(Jaclip::InvalidArgumentError) { Jaclip::Index.new(4).tap { |i| i.fingerprint = "has space" } }
      assert_raises(TypeError) { Jaclip::Index.remove_file(path, "c") }
    end
  end
end
