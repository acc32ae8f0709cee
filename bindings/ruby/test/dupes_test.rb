require_relative "test_helper"
require "fileutils"
require "tmpdir"

# Jaclip::Index#duplicates (jaclip_index_duplicates, as Python's Index.duplicates): near groups
# against brute force over every pair (cosine >= threshold, joined transitively, computed here),
# scores against the cosine to the group's first row, pages, exact groups from identical files
# (their stamps' content hash), and bad options.
class DupesTest < Minitest::Test
  include Helpers

  DIM = 32

  def unit(v)
    n = Math.sqrt(v.sum { |x| x * x })
    v.map { |x| x / n }
  end

  def cosine(a, b) = unit(a).zip(unit(b)).sum { |x, y| x * y }

  # Groups (sorted row lists, ordered by first row) of rows joined by cosine >= threshold.
  def brute_force_groups(rows, threshold)
    parent = (0...rows.size).to_a
    find = ->(i) { parent[i] == i ? i : (parent[i] = find.call(parent[i])) }
    rows.each_index do |i|
      (i + 1...rows.size).each do |j|
        parent[find.call(j)] = find.call(i) if cosine(rows[i], rows[j]) >= threshold
      end
    end
    rows.each_index.group_by { |i| find.call(i) }.values.select { |g| g.size > 1 }.map(&:sort).sort_by(&:first)
  end

  def test_near_groups_against_brute_force_and_pages
    rng = Random.new(11)
    bases = Array.new(12) { Array.new(DIM) { rng.rand * 2 - 1 } }
    rows = []
    40.times do |i|
      base = bases[i % 12]
      # rows of the first 6 bases are copies with a little noise (near duplicates), the rest far apart
      rows << (i % 12 < 6 ? base.map { |x| x + (rng.rand - 0.5) * 0.02 } : Array.new(DIM) { rng.rand * 2 - 1 })
    end
    want = brute_force_groups(rows, 0.95)
    assert_operator want.size, :>=, 5 # the near copies do form groups
    Jaclip::Index.open(DIM) do |ix|
      ix.add(rows, Array.new(rows.size) { |i| "r/#{i}.jpg" })
      d = ix.duplicates
      assert_equal want.size, d.total
      assert_equal want, d.groups.map { |g| g.hits.map(&:row) }
      d.groups.each do |g|
        refute g.exact # rows added in memory have no stamp
        first = g.hits[0].row
        g.hits.each do |h|
          assert_equal "r/#{h.row}.jpg", h.label
          assert_in_delta cosine(rows[first], rows[h.row]), h.score, 1e-5
        end
      end
      page = ix.duplicates(offset: 2, limit: 2)
      assert_equal want.size, page.total
      assert_equal want[2, 2], page.groups.map { |g| g.hits.map(&:row) }
      assert_equal [], ix.duplicates(exact_only: true).groups
      assert_raises(Jaclip::InvalidArgumentError) { ix.duplicates(0.2) }
      assert_raises(Jaclip::InvalidArgumentError) { ix.duplicates(Float::NAN) }
    end
  end

  def test_exact_groups_from_identical_files
    Dir.mktmpdir do |dir|
      photos = File.join(dir, "photos")
      FileUtils.mkdir_p(photos)
      File.binwrite(File.join(photos, "a.png"), png(20, 24, [200, 30, 30]))
      File.binwrite(File.join(photos, "b.png"), png(20, 24, [200, 30, 30]))
      File.binwrite(File.join(photos, "c.png"), png(24, 20, [10, 90, 250]))
      index = File.join(dir, "photos.jci")
      Jaclip.sync_index(photos, index, SHARED_MODEL)
      Jaclip::Index.load(index) do |ix|
        d = ix.duplicates(exact_only: true)
        assert_equal 1, d.total
        assert d.groups[0].exact
        assert_equal %w[a.png b.png], d.groups[0].hits.map { |h| File.basename(h.label) }
      end
    end
  end
end
