require_relative "test_helper"
require "open3"
require "fileutils"
require "tmpdir"

# Capture dates through the gem (issue 25): Jaclip.sync_index records each photo's EXIF
# DateTimeOriginal as `jaclip index build` does, Index#row_time gives it (or the file's mtime), and
# search's after:/before: compare it. The photos are written by PIL (the gem has no EXIF writer); the
# expected times are computed here with Time.utc.
class DatesTest < Minitest::Test
  include Helpers

  PYTHON = ENV.fetch("PYTHON", "/usr/bin/python3")
  WRITER = <<~PY
    import sys
    from PIL import Image
    path, date, offset = sys.argv[1], sys.argv[2], sys.argv[3]
    ex = Image.Exif()
    if date:
        ex[0x8769] = {0x9003: date, **({0x9011: offset} if offset else {})}
    Image.new("RGB", (24, 20), (len(path) * 7 % 256, 90, 30)).save(path, format="JPEG", exif=ex.tobytes())
  PY

  def write_photo(path, date, offset)
    _, err, status = Open3.capture3(PYTHON, "-c", WRITER, path, date.to_s, offset.to_s)
    assert status.success?, err
  end

  def test_sync_records_capture_times_and_filters_by_them
    Dir.mktmpdir do |dir|
      photos = File.join(dir, "photos")
      FileUtils.mkdir_p(photos)
      want = {}
      [["2020:05:06 07:08:09", "+09:00", Time.utc(2020, 5, 5, 22, 8, 9)],
       ["2021:12:31 23:00:00", "-03:00", Time.utc(2022, 1, 1, 2, 0, 0)],
       ["2019:01:02 03:04:05", "+00:00", Time.utc(2019, 1, 2, 3, 4, 5)]].each_with_index do |(date, offset, utc), i|
        path = File.join(photos, "p#{i}.jpg")
        write_photo(path, date, offset)
        want[path] = [utc.to_i * 1_000_000_000, :exif]
      end
      plain = File.join(photos, "plain.jpg")
      write_photo(plain, nil, nil)
      File.utime(Time.at(1_500_000_000), Time.at(1_500_000_000), plain)
      want[plain] = [1_500_000_000 * 1_000_000_000, :mtime]

      index = File.join(dir, "photos.jci")
      Jaclip.sync_index(photos, index, SHARED_MODEL)
      Jaclip::Index.load(index) do |ix|
        got = (0...ix.size).to_h { |i| [ix.label(i), ix.row_time(i)] }
        assert_equal want, got
        assert_raises(Jaclip::NotFoundError) { ix.row_time(ix.size) }
        q = [ix.embeddings[0]]
        lo = Time.utc(2019, 6, 1)
        hi = Time.utc(2021, 1, 1)
        rows, = ix.search(q, 10, after: lo, before: hi)
        expected = (0...ix.size).select do |i|
          t = got[ix.label(i)][0]
          t >= lo.to_i * 1_000_000_000 && t < hi.to_i * 1_000_000_000
        end
        assert_equal expected.sort, rows[0].sort
        assert_equal 1, rows[0].size # only the photo taken on 2020-05-05 UTC
      end
    end
  end
end
