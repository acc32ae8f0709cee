require_relative "test_helper"
require "open3"
require "rbconfig"

# Issue 13: binding calls with a pointer and a size, or an integer outside its C type, raise instead of
# crashing or wrapping. Each runs in a child Ruby under a 2 GB address-space limit and a timeout, so a
# crash fails the test instead of killing the suite.
class HostileTest < Minitest::Test
  LIB = File.expand_path("../lib", __dir__)

  def run_child(code)
    cmd = ["prlimit", "--as=#{2 << 30}", "timeout", "60", RbConfig.ruby, "-I", LIB, "-e", "require 'jaclip'\n#{code}"]
    out, err, status = Open3.capture3(*cmd)
    assert status.success?, "the child died (#{status.inspect}): #{err[-2000..] || err}"
    out
  end

  def assert_raises_in_child(error, code)
    out = run_child(<<~RUBY)
      begin
        #{code}
        puts "no error"
      rescue Jaclip::Error => e
        puts e.class.name
      end
    RUBY
    assert_equal error.name, out.strip, code
  end

  def test_pixel_buffers_are_checked_against_their_declared_size
    assert_raises_in_child(Jaclip::InvalidArgumentError, 'Jaclip::Image.from_pixels("x" * 16, 20000, 8000, "RGBA")')
    assert_raises_in_child(Jaclip::InvalidArgumentError, 'Jaclip::Image.from_pixels("x" * 16, 64, 64, "RGB")')
    assert_raises_in_child(Jaclip::InvalidArgumentError, 'Jaclip::Image.from_pixels("x" * 300, 10, 10, "RGB", stride: 1 << 40)')
    assert_equal "no error\n", run_child('Jaclip::Image.from_pixels("x" * 390, 10, 10, "RGB", stride: 40); puts "no error"')
  end

  def test_out_of_range_integers_raise_instead_of_wrapping
    assert_raises_in_child(Jaclip::InvalidArgumentError, "Jaclip.topk([[1.0, 2.0, 3.0]], -1)")
    assert_raises_in_child(Jaclip::InvalidArgumentError, "Jaclip::Image.new(#{DOG.inspect}, max_pixels: -1)")
    assert_raises_in_child(Jaclip::InvalidArgumentError, "Jaclip::Image.from_bytes(\"\\xff\\xd8\\xff\", max_pixels: 2**64)")
    assert_raises_in_child(Jaclip::InvalidArgumentError, "Jaclip::Model.new(#{TINY_MODEL.inspect}, max_image_pixels: -1)")
    index = "i = Jaclip::Index.new(4); i.add([[1.0, 0, 0, 0], [0, 1.0, 0, 0]], %w[a b]);"
    assert_raises_in_child(Jaclip::NotFoundError, "#{index} i.label(2**64 + 1)")
    assert_raises_in_child(Jaclip::NotFoundError, "#{index} i.label(-1)")
    assert_raises_in_child(Jaclip::InvalidArgumentError, "#{index} i.search([[1.0, 0, 0, 0]], -1)")
  end
end
