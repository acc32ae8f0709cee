require_relative "test_helper"
require "open3"
require "fileutils"

# Jaclip.sync_index and Jaclip::Index.merge, as test/python/test_index_sync.py tests Python's: the same
# file protocol as `jaclip index sync`, so the gem and the command take turns on one index, and the
# result equals a fresh `jaclip index build` of the folder (embeddings from another process: within
# 1e-6, docs/determinism.md).
class SyncTest < Minitest::Test
  include Helpers

  CLI = ENV.fetch("JACLIP_CLI", File.join(ROOT, "build", "jaclip"))

  def cli(*args)
    out, err, status = Open3.capture3(CLI, *args.map(&:to_s))
    [status.exitstatus, out, err]
  end

  def write_image(path, seed)
    FileUtils.mkdir_p(File.dirname(path))
    File.binwrite(path, png(20 + seed % 7, 24, [seed * 37 % 256, seed * 11 % 256, 255 - seed % 256]))
  end

  def rows_by_label(path)
    Jaclip::Index.load(path) do |ix|
      labels = ix.labels
      assert_equal labels.uniq.size, labels.size, "a label is indexed twice"
      labels.zip(ix.embeddings).to_h
    end
  end

  def assert_same_as_fresh_build(index, folder, dir, root, *build_options)
    fresh = File.join(dir, "fresh-#{rand(1 << 30)}.jci")
    rc, _, err = cli("index", "build", "--model", TINY_MODEL, folder, "-o", fresh, "--root", root, *build_options)
    assert_equal 0, rc, err
    got = rows_by_label(index)
    want = rows_by_label(fresh)
    assert_equal want.keys.sort, got.keys.sort
    want.each { |label, row| assert_rows_close [row], [got[label]], 1e-6 }
  end

  def test_sync_index_takes_turns_with_the_command
    skip "#{CLI} not built (make test-ruby builds it)" unless File.executable?(CLI)
    Dir.mktmpdir do |dir|
      photos = File.join(dir, "p")
      6.times { |i| write_image(File.join(photos, "i#{i}.png"), 300 + i) }
      File.binwrite(File.join(photos, "broken.png"), "\x89PNG not really")
      index = File.join(dir, "x.jci")
      counts = Jaclip.sync_index(photos, index, model, root: dir, batch: 4)
      assert_equal({ added: 6, reembedded: 0, removed: 0, unchanged: 0, skipped: 1 }, counts)
      assert_equal counts.merge(added: 0, unchanged: 6), Jaclip.sync_index(photos, index, model, root: dir)
      # The command sees nothing to do, then the gem picks up changes made on disk.
      rc, _, err = cli("index", "sync", "--model", TINY_MODEL, photos, "-o", index, "--root", dir)
      assert_equal 0, rc, err
      assert_includes err, "0 added, 0 re-embedded, 0 removed, 6 unchanged"
      File.delete(File.join(photos, "i0.png"))
      write_image(File.join(photos, "i1.png"), 999)
      write_image(File.join(photos, "new.png"), 998)
      counts = Jaclip.sync_index([photos, photos], index, model, root: dir)
      assert_equal({ added: 1, reembedded: 1, removed: 1, unchanged: 4, skipped: 1 }, counts)
      assert_same_as_fresh_build(index, photos, dir, dir)
      # Without root: absolute labels.
      absolute = File.join(dir, "abs.jci")
      Jaclip.sync_index(photos, absolute, model)
      Jaclip::Index.load(absolute) { |ix| assert(ix.labels.all? { |l| l.start_with?("/") }) }
    end
  end

  def test_sync_index_refusals
    Dir.mktmpdir do |dir|
      photos = File.join(dir, "p")
      write_image(File.join(photos, "a.png"), 1)
      index = File.join(dir, "x.jci")
      File.open("#{index}.lock", "a") do |lock|
        lock.flock(File::LOCK_EX)
        e = assert_raises(Jaclip::InputOutputError) { Jaclip.sync_index(photos, index, model) }
        assert_match(/another jaclip/, e.message)
      end
      other = File.join(dir, "other.jci")
      Jaclip::Index.open(model.embedding_dim) do |ix|
        ix.fingerprint = "cloob-32-0000000000000000"
        ix.save(other)
      end
      assert_raises(Jaclip::ModelMismatchError) { Jaclip.sync_index(photos, other, model) }
      assert_equal 1, Jaclip.sync_index(photos, other, model, force: true)[:added]
      assert_raises(Jaclip::InputOutputError) { Jaclip.sync_index(File.join(dir, "missing"), index, model) }
      elsewhere = File.join(dir, "elsewhere")
      Dir.mkdir(elsewhere)
      e = assert_raises(Jaclip::InvalidArgumentError) { Jaclip.sync_index(photos, index, model, root: elsewhere) }
      assert_match(/not inside root/, e.message)
      assert_raises(Jaclip::InvalidArgumentError) { Jaclip.sync_index(photos, index, model, batch: 0) }
      fp16 = File.join(dir, "h.jci")
      Jaclip.sync_index(photos, fp16, model, fp16: true)
      Jaclip::Index.load(fp16) { |ix| assert ix.fp16? }
    end
  end

  # The index records its root, label style and orientation (issue 25): the gem follows them as the
  # command does, and walks every format the command walks.
  def test_sync_index_follows_the_recorded_root_and_orientation
    skip "#{CLI} not built (make test-ruby builds it)" unless File.executable?(CLI)
    Dir.mktmpdir do |dir|
      photos = File.join(dir, "p")
      2.times { |i| write_image(File.join(photos, "i#{i}.png"), 500 + i) }
      FileUtils.cp(File.join(ROOT, "data", "images-pillow", "g4_orientation_6.tif"), File.join(photos, "turned.tif"))
      index = File.join(dir, "x.jci")
      rc, _, err = cli("index", "build", "--model", TINY_MODEL, photos, "-o", index, "--root", dir, "--exif-transpose")
      assert_equal 0, rc, err
      Jaclip::Index.load(index) do |ix|
        assert_equal [dir, "relative", "exif-transpose"], %w[root labels orientation].map { |k| ix.metadata(k) }
      end
      # No root given: the recorded one, so nothing changes (before: every row re-added with absolute labels).
      counts = Jaclip.sync_index(photos, index, model)
      assert_equal({ added: 0, reembedded: 0, removed: 0, unchanged: 3, skipped: 0 }, counts)
      elsewhere = File.join(dir, "elsewhere")
      Dir.mkdir(elsewhere)
      e = assert_raises(Jaclip::InvalidArgumentError) { Jaclip.sync_index(photos, index, model, root: elsewhere) }
      assert_match(/relative to/, e.message)
      # A changed file is embedded upright, as the index's rows are: equal to a fresh upright build.
      FileUtils.cp(File.join(ROOT, "data", "images-pillow", "g4_orientation_6.tif"), File.join(photos, "turned2.tif"))
      File.utime(Time.at(1), Time.at(1), File.join(photos, "turned.tif"))
      counts = Jaclip.sync_index(photos, index, model)
      assert_equal 1, counts[:added]
      assert_same_as_fresh_build(index, photos, dir, dir, "--exif-transpose")
      # An index of absolute labels refuses a root; a new one records what the gem used.
      absolute = File.join(dir, "abs.jci")
      Jaclip.sync_index(photos, absolute, model)
      assert_raises(Jaclip::InvalidArgumentError) { Jaclip.sync_index(photos, absolute, model, root: dir) }
      Jaclip::Index.load(absolute) do |ix|
        assert_equal [nil, "absolute", "as-stored"], %w[root labels orientation].map { |k| ix.metadata(k) }
      end
      rc, _, err = cli("index", "sync", "--model", TINY_MODEL, photos, "-o", absolute)
      assert_equal 0, rc, err
      assert_includes err, "0 added, 0 re-embedded, 0 removed, 4 unchanged"
    end
  end

  def unit_rows(n, dim, offset = 0)
    Array.new(n) { |i| Array.new(dim) { |j| j == (i + offset) % dim ? 1.0 : 0.0 } }
  end

  def test_merge_joins_shards_in_order_and_refuses_bad_ones
    Dir.mktmpdir do |dir|
      a = File.join(dir, "a.jci")
      b = File.join(dir, "b.jci")
      Jaclip::Index.open(4) { |ix| ix.add(unit_rows(2, 4), %w[a0 a1]).save(a) }
      Jaclip::Index.open(4) { |ix| ix.add(unit_rows(3, 4, 2), %w[b0 b1 a0]).save(b) }
      out = File.join(dir, "m.jci")
      assert_nil Jaclip::Index.merge(out, [a, b])
      Jaclip::Index.load(out) do |ix|
        assert_equal %w[a0 a1 b0 b1 a0], ix.labels
        assert_rows_close unit_rows(2, 4) + unit_rows(3, 4, 2), ix.embeddings
      end
      assert_raises(Jaclip::InvalidArgumentError) { Jaclip::Index.merge(out, [a, b], unique_labels: true) }
      Jaclip::Index.load(out) { |ix| assert_equal 5, ix.size } # a refused merge leaves the file as it was
      wide = File.join(dir, "w.jci")
      Jaclip::Index.open(8) { |ix| ix.add(unit_rows(1, 8), %w[w]).save(wide) }
      assert_raises(Jaclip::ShapeError) { Jaclip::Index.merge(out, [a, wide]) }
      damaged = File.join(dir, "d.jci")
      bytes = File.binread(b)
      bytes.setbyte(bytes.bytesize - 9, bytes.getbyte(bytes.bytesize - 9) ^ 1)
      File.binwrite(damaged, bytes)
      e = assert_raises(Jaclip::IndexFormatError) { Jaclip::Index.merge(out, [a, damaged]) }
      assert_includes e.message, "d.jci"
      assert_raises(TypeError) { Jaclip::Index.merge(out, a) }
    end
  end
end
