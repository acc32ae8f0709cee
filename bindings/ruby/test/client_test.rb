require_relative "test_helper"
require "jaclip/client"

# Jaclip::Client against a `jaclip serve` started on a free loopback port, checked against the library.
class ClientTest < Minitest::Test
  include Helpers

  CLI = ENV.fetch("JACLIP_CLI", File.join(ROOT, "build", "jaclip"))

  def with_server(*args)
    skip "#{CLI} is not built (make builds it)" unless File.executable?(CLI)
    Dir.mktmpdir do |dir|
      red = File.join(dir, "red.png")
      File.binwrite(red, png(40, 30, [200, 30, 10]))
      index = Jaclip::Index.new(model.embedding_dim)
      index.add(model.encode_images([DOG, red]), [DOG, red])
      path = File.join(dir, "photos.jaclip-index")
      index.save(path)
      io = IO.popen([CLI, "serve", "--model", TINY_MODEL, "--index", "photos=#{path}", "--port", "0", *args],
                    err: File::NULL)
      line = io.gets.to_s
      port = line[%r{127\.0\.0\.1:(\d+)/}, 1]
      flunk "server did not start: #{line.inspect}" unless port
      begin
        yield port.to_i, index, red
      ensure
        Process.kill("TERM", io.pid)
        Process.wait(io.pid)
        io.close
        index.close
      end
    end
  end

  def test_calls_equal_the_library
    with_server do |port, index, red|
      c = Jaclip::Client.new("http://127.0.0.1:#{port}", token: nil)
      assert c.healthz
      assert_equal model.embedding_dim, c.info["model"]["dim"]
      # Another process, and this one's OpenBLAS pool may have been resized by an earlier test's
      # num_threads: 1 model: close, not the same bytes (docs/determinism.md).
      [[model.encode_texts(["犬", "猫の写真"]), c.embed_texts(["犬", "猫の写真"])],
       [model.encode_images([DOG, red]), c.embed_images([DOG, File.binread(red)])]].each do |want, got|
        assert_rows_close want, got, 1e-5 * [1.0, want.flatten.map(&:abs).max].max
      end
      want = index.search_text(model, "赤い車", 2)
      got = c.search(text: "赤い車", k: 2)
      assert_equal want.map(&:row), got.map(&:row)
      assert_equal want.map(&:label), got.map(&:label)
      want.zip(got).each { |w, g| assert_in_delta w.score, g.score, 1e-5 }
      assert_equal 1, c.search(image: red, k: 1).first.row
      assert_equal 0, c.search(row: 0, k: 1).first.row
      local = model.classify(DOG, %w[犬 猫 車], template: "{}の写真")
      remote = c.classify(DOG, labels: %w[犬 猫 車], templates: "{}の写真")
      assert_equal local.map(&:label), remote.map(&:label)
      local.zip(remote).each { |l, r| assert_in_delta l.probability, r.probability, 1e-5 }
      assert_equal "\xff\xd8".b, c.thumbnail("photos", 0, size: 32)[0, 2].b
      assert_raises(Jaclip::ImageDecodeError) { c.embed_images(["junk".b]) }
      assert_raises(Jaclip::NotFoundError) { c.search(text: "犬", index: "nope") }
      assert_raises(ArgumentError) { c.search(text: "犬", row: 0) }
      # Filter, then rank, and pages: as Index#search over the same rows.
      query = model.encode_texts(["赤い車"])
      [{ offset: 1 }, { types: ["png"] }, { folder: File.dirname(red) }, { types: %w[jpeg], offset: 0 },
       { folder: "/nowhere" }].each do |filters|
        rows, = index.search(query, 2, **filters)
        assert_equal rows.first, c.search(text: "赤い車", k: 2, exact: true, **filters).map(&:row), filters.inspect
      end
      assert_equal [1], c.search(image: red, k: 2, types: ["png"]).map(&:row)
      assert_equal [], c.search(text: "犬", k: 2, after: "2000-01-01") # no row records a time
    end
  end

  def test_token
    with_server("--token", "s3cret") do |port, _index, _red|
      e = assert_raises(Jaclip::Client::ServeError) { Jaclip::Client.new("http://127.0.0.1:#{port}", token: nil).info }
      assert_equal [401, "SERVE_UNAUTHORIZED"], [e.http, e.name]
      refute_empty Jaclip::Client.new("http://127.0.0.1:#{port}", token: "s3cret").indexes
    end
  end
end
