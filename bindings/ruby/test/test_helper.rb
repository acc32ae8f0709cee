require "minitest/autorun"
require "tmpdir"

ROOT = File.expand_path("../../..", __dir__)
ENV["JACLIP_LIBRARY"] ||= File.join(ROOT, "build", "libjaclip.so")
require "jaclip"

TINY_MODEL = File.expand_path(ENV.fetch("JACLIP_TEST_MODEL", File.join(ROOT, "build", "models", "tiny.jaclip")), ROOT)
TINY_MODEL_BF16 = File.expand_path(ENV.fetch("JACLIP_TEST_MODEL_BF16", File.join(ROOT, "build", "models", "tiny-bf16.jaclip")), ROOT)
TINY_MODEL_INT8 = File.expand_path(ENV.fetch("JACLIP_TEST_MODEL_INT8", File.join(ROOT, "build", "models", "tiny-int8.jaclip")), ROOT)
BAD_MODELS = File.expand_path(ENV.fetch("JACLIP_BAD_MODELS", File.join(ROOT, "build", "models", "bad")), ROOT)
DOG = File.join(ROOT, "data", "dog.jpeg")
SPIECE = File.join(ROOT, "data", "rinna-japanese-spiece.model")

# One model for the whole run (loading is the slow part).
SHARED_MODEL = Jaclip::Model.new(TINY_MODEL)
Minitest.after_run { SHARED_MODEL.close }

module Helpers
  def model = SHARED_MODEL

  def norm(row) = Math.sqrt(row.sum { |x| x * x })

  def assert_rows_close(expected, actual, tol = 1e-6)
    assert_equal expected.size, actual.size
    expected.zip(actual).each do |e, a|
      assert_equal e.size, a.size
      e.zip(a).each { |x, y| assert_in_delta x, y, tol }
    end
  end

  # A tiny RGB PNG written by hand (zlib + CRC from the standard library), so no image library is needed.
  def png(width, height, rgb)
    require "zlib"
    raw = ([0] + rgb * width).pack("C*") * height
    chunk = ->(type, data) { [data.bytesize].pack("N") + type + data + [Zlib.crc32(type + data)].pack("N") }
    "\x89PNG\r\n\x1a\n".b + chunk.("IHDR", [width, height, 8, 2, 0, 0, 0].pack("NNCCCCC")) +
      chunk.("IDAT", Zlib::Deflate.deflate(raw)) + chunk.("IEND", "")
  end
end
