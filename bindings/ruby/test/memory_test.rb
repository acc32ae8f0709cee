require_relative "test_helper"

# 2000 encode calls (one in ten failing) keep the resident set flat after a warm-up.
class MemoryTest < Minitest::Test
  include Helpers

  def rss_pages = File.read("/proc/self/statm").split[1].to_i

  def one(i)
    model.encode_texts(["犬が座っている", "猫"])
    assert_raises(Jaclip::InvalidUTF8Error) { model.encode_texts(["\xff".b]) } if (i % 10).zero?
  end

  def test_2000_calls_keep_rss_flat
    200.times { |i| one(i) }
    GC.start
    before = rss_pages
    2000.times { |i| one(i) }
    GC.start
    after = rss_pages
    mib = ->(pages) { format("%.1f MiB", pages * 4096 / 1048576.0) }
    puts "\nRuby RSS after warm-up #{mib.(before)}, after 2000 calls #{mib.(after)}"
    assert_operator after, :<=, before * 1.10
  end
end
