require_relative "test_helper"

# Jaclip::Index: every call, its error paths, files (saved, appended, mapped, damaged), ownership and
# threads, checked against a brute-force cosine top-k computed here.
class IndexTest < Minitest::Test
  include Helpers

  # Values rounded to float32 as the library stores them, so the reference sees the same numbers.
  def rows(n, dim, seed = 0)
    rng = Random.new(seed)
    Array.new(n) { Array.new(dim) { [rng.rand * 2 - 1].pack("f").unpack1("f") } }
  end

  def unit(row)
    n = norm(row)
    n.zero? ? row.map { 0.0 } : row.map { |x| x / n }
  end

  # [indices, scores] best first, ties to the lower row.
  def brute_topk(data, queries, k)
    units = data.map { |r| unit(r) }
    per_query = queries.map do |q|
      uq = unit(q)
      scores = units.map { |r| r.zip(uq).sum { |a, b| a * b } }
      order = scores.each_index.sort_by { |j| [-scores[j], j] }.first(k)
      [order, order.map { |j| scores[j] }]
    end
    [per_query.map(&:first), per_query.map(&:last)]
  end

  def make_index(n = 6, dim = 8, seed = 0)
    data = rows(n, dim, seed)
    [Jaclip::Index.new(dim).add(data, Array.new(n) { |i| "row#{i}" }), data]
  end

  # ---- building and reading

  def test_create_add_and_getters
    Jaclip::Index.open(4) do |ix|
      assert_equal [0, 4, [], true], [ix.size, ix.dim, ix.labels, ix.empty?]
      data = [[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
      assert_same ix, ix.add(data, ["犬.jpg", "zero", "犬.jpg"])
      ix.add([[0.0, 0.0, 2.0, 0.0]], ["binary label".b])
      assert_equal [4, 4], [ix.length, ix.dim]
      assert_equal ["犬.jpg", "zero", "犬.jpg", "binary label"], ix.labels
      assert_equal ix.labels, Array.new(4) { |i| ix.label(i) }
      assert_equal Encoding::UTF_8, ix.label(0).encoding
      assert_equal [0, 3], [ix.find("犬.jpg"), ix.find("binary label")] # duplicates: the lowest row
      stored = ix.embeddings
      assert_rows_close((data + [[0.0, 0.0, 2.0, 0.0]]).map { |r| unit(r) }, stored, 1e-7)
      assert_equal [0.0] * 4, stored[1] # a zero row stays zero
      assert_equal stored[1, 2], ix.embeddings(1, 2)
      assert_equal [], ix.embeddings(4)
      ix.add([], []) # nothing to add is fine
      assert_equal "#<Jaclip::Index dim=4 rows=4>", ix.inspect
    end
  end

  def test_search_equals_brute_force_cosine_topk
    data = rows(300, 24, 1)
    queries = rows(5, 24, 2)
    data[17] = data[3] # an exact tie: the lower row must come first
    queries[4] = data[3].map { |x| x * 2.5 }
    Jaclip::Index.open(24) do |ix|
      ix.add(data[0, 100], (0...100).map(&:to_s))
      ix.add(data[100..], (100...300).map(&:to_s))
      idx, scores = ix.search(queries, 7)
      ref_idx, ref_scores = brute_topk(data, queries, 7)
      assert_equal ref_idx, idx
      assert_rows_close ref_scores, scores, 1e-5
      assert(idx.flatten.all? { |i| i.is_a?(Integer) })
      assert_equal [3, 17], idx[4][0, 2]
      assert_equal brute_topk(data, queries[0, 1], 300).first, ix.search(queries[0, 1], 1000).first
    end
    Jaclip::Index.open(3) { |ix| assert_equal [[[]], [[]]], ix.search([[1.0, 0.0, 0.0]], 5) }
  end

  def test_search_text_and_search_image
    Dir.mktmpdir do |dir|
      red = File.join(dir, "red.png")
      File.binwrite(red, png(40, 30, [200, 30, 10]))
      texts = %w[犬 赤い四角 海辺の夕日]
      Jaclip::Index.open(model.embedding_dim) do |ix|
        ix.add(model.encode_images([DOG, red]), [DOG, red])
        ix.add(model.encode_texts(texts), texts)
        hits = ix.search_text(model, "犬の写真", 3)
        idx, scores = ix.search(model.encode_texts(["犬の写真"]), 3)
        assert_equal idx[0], hits.map(&:row)
        assert_equal idx[0].map { |i| ix.label(i) }, hits.map(&:label)
        assert_equal scores[0], hits.map(&:score)
        assert_kind_of Jaclip::Hit, hits[0]
        [DOG, Pathname.new(DOG), Jaclip::Image.new(DOG)].each do |image|
          best = ix.search_image(model, image, 2).first
          assert_equal [DOG, 0], [best.label, best.row]
          assert_in_delta 1.0, best.score, 1e-5
        end
        assert_raises(TypeError) { ix.search_text(model, ["犬"]) }
      end
      Jaclip::Index.open(8) { |other| assert_raises(Jaclip::ShapeError) { other.search_text(model, "犬") } }
    end
  end

  # ---- errors

  def test_create_errors
    [0, -1, 65_537].each { |dim| assert_raises(Jaclip::InvalidArgumentError) { Jaclip::Index.new(dim) } }
    assert_raises(TypeError) { Jaclip::Index.new(4.0) }
    Jaclip::Index.open(65_536) { |ix| assert_equal 65_536, ix.dim }
  end

  def test_add_errors_leave_the_index_unchanged
    ix, data = make_index(3, 8)
    [
      [Jaclip::ShapeError, rows(2, 7), %w[a b]],                   # dim mismatch
      [Jaclip::ShapeError, rows(1, 8)[0], ["a"]],                  # 1-D
      [Jaclip::ShapeError, [[1.0] * 8, [1.0]], %w[a b]],           # ragged
      [Jaclip::InvalidArgumentError, rows(2, 8), ["a"]],           # fewer labels than rows
      [Jaclip::InvalidArgumentError, rows(1, 8), %w[a b]],         # more labels than rows
      [Jaclip::InvalidArgumentError, rows(1, 8), ["a\0b"]],        # would be cut at the NUL
      [Jaclip::InvalidUTF8Error, rows(1, 8), ["\xff".b]],
      [Jaclip::InvalidArgumentError, rows(1, 8) + [[Float::NAN] * 8], %w[a b]],
      [TypeError, rows(1, 8), "a"],
      [TypeError, rows(1, 8), [:a]],
      [TypeError, [["x"] * 8], ["a"]]
    ].each do |klass, emb, labels|
      assert_raises(klass) { ix.add(emb, labels) }
      assert_equal %w[row0 row1 row2], ix.labels
    end
    assert_rows_close data.map { |r| unit(r) }, ix.embeddings, 1e-7
    ix.close
  end

  def test_search_and_lookup_errors
    ix, = make_index(3, 8)
    q = rows(1, 8)
    assert_match(/k/, assert_raises(Jaclip::InvalidArgumentError) { ix.search(q, 0) }.message)
    assert_raises(Jaclip::InvalidArgumentError) { ix.search(q, -1) }
    assert_raises(TypeError) { ix.search(q, 2.0) }
    assert_raises(Jaclip::ShapeError) { ix.search(rows(1, 9), 2) }
    assert_raises(Jaclip::ShapeError) { ix.search(q[0], 2) }
    assert_raises(Jaclip::InvalidArgumentError) { ix.search([[Float::INFINITY] + [0.0] * 7], 2) }
    [3, -1, 2**40].each { |i| assert_raises(Jaclip::NotFoundError) { ix.label(i) } }
    assert_raises(TypeError) { ix.label(1.0) }
    ["row9", "row", "a\0b"].each { |l| assert_raises(Jaclip::NotFoundError) { ix.find(l) } }
    assert_raises(Jaclip::InvalidArgumentError) { ix.embeddings(2, 2) }
    assert_raises(Jaclip::InvalidArgumentError) { ix.embeddings(4) }
    assert_raises(Jaclip::InvalidArgumentError) { ix.embeddings(-1) }
    ix.close
  end

  # ---- files

  def test_save_load_and_append_file
    Dir.mktmpdir do |dir|
      path = File.join(dir, "x.jci")
      ix, data = make_index(5, 8)
      assert_nil ix.save(path)
      queries = rows(3, 8, 9)
      expected = ix.search(queries, 4)
      [{}, { mmap: true }, { verify: false }, { mmap: true, verify: false }].each do |kw|
        Jaclip::Index.load(Pathname.new(path), **kw) do |loaded|
          assert_equal [5, 8, ix.labels], [loaded.size, loaded.dim, loaded.labels]
          assert_equal ix.embeddings, loaded.embeddings
          assert_equal expected, loaded.search(queries, 4)
        end
      end
      # Without a block load returns the index, open until closed.
      loaded = Jaclip::Index.load(path, mmap: true)
      loaded.add(rows(2, 8, 3), %w[new0 new1])
      assert_equal 6, loaded.find("new1")
      loaded.save(File.join(dir, "y.jci"))
      loaded.close
      assert loaded.closed?
      Jaclip::Index.load(File.join(dir, "y.jci")) { |y| assert_equal %w[new0 new1], y.labels[5..] }

      more = rows(3, 8, 4)
      assert_nil Jaclip::Index.append_file(path, more, %w[a0 a1 a2])
      Jaclip::Index.append_file(path, [], []) # a no-op
      Jaclip::Index.load(path) do |appended|
        assert_equal ix.labels + %w[a0 a1 a2], appended.labels
        assert_equal brute_topk(data + more, queries, 4).first, appended.search(queries, 4).first
      end
      size = File.size(path)
      assert_raises(Jaclip::ShapeError) { Jaclip::Index.append_file(path, rows(1, 7), ["x"]) }
      assert_raises(Jaclip::InvalidArgumentError) { Jaclip::Index.append_file(path, rows(2, 8), ["x"]) }
      assert_equal size, File.size(path)
      foreign = File.join(dir, "foreign.jci")
      File.binwrite(foreign, "not an index at all" * 10)
      assert_raises(Jaclip::IndexFormatError) { Jaclip::Index.append_file(foreign, rows(1, 8), ["x"]) }
      assert_raises(Jaclip::InputOutputError) { Jaclip::Index.append_file(File.join(dir, "missing.jci"), rows(1, 8), ["x"]) }
      assert_raises(Jaclip::InputOutputError) { ix.save(File.join(dir, "no", "such", "dir.jci")) }
      ix.close
    end
  end

  def test_damaged_files_are_index_format_errors
    Dir.mktmpdir do |dir|
      path = File.join(dir, "good.jci")
      ix, = make_index(4, 8)
      ix.save(path)
      good = File.binread(path)
      write = lambda do |name, data|
        File.binwrite(File.join(dir, name), data)
        File.join(dir, name)
      end
      {
        "truncated" => good[0...-70], "header-only" => good[0, 64], "short" => good[0, 40], "empty" => "",
        "foreign" => "GIF89a".b + "\0".b * 200, "version" => good[0, 8] + [9].pack("V") + good[12..],
        "header-crc" => good[0, 20] + "\x01".b + good[21..]
      }.each do |name, data|
        file = write.("#{name}.jci", data)
        [false, true].each do |mmap|
          e = assert_raises(Jaclip::IndexFormatError) { Jaclip::Index.load(file, mmap: mmap) }
          assert_equal 12, e.status
          assert_includes e.message, "#{name}.jci"
        end
      end
      assert_match(/version 9/, assert_raises(Jaclip::IndexFormatError) { Jaclip::Index.load(File.join(dir, "version.jci")) }.message)
      # A flipped bit in the vectors (row 0 starts at byte 192: a 128-byte file header, a 64-byte segment
      # header) fails the data CRC unless verify: false.
      flipped = good.dup
      flipped.setbyte(194, flipped.getbyte(194) ^ 0x40)
      bad = write.("data.jci", flipped)
      assert_match(/CRC/, assert_raises(Jaclip::IndexFormatError) { Jaclip::Index.load(bad) }.message)
      Jaclip::Index.load(bad, verify: false) { |unchecked| assert_equal ix.labels, unchecked.labels }
      assert_raises(Jaclip::InputOutputError) { Jaclip::Index.load(File.join(dir, "missing.jci")) }
      ix.close
    end
  end

  # ---- ownership and threads

  def test_use_after_close_raises
    ix, = make_index(2, 4)
    ix.close
    ix.close # twice is harmless
    assert ix.closed?
    assert_equal "#<Jaclip::Index (closed)>", ix.inspect
    Dir.mktmpdir do |dir|
      never = File.join(dir, "never.jci")
      [-> { ix.size }, -> { ix.dim }, -> { ix.label(0) }, -> { ix.labels }, -> { ix.find("row0") },
       -> { ix.embeddings }, -> { ix.search(rows(1, 4), 1) }, -> { ix.add(rows(1, 4), ["x"]) },
       -> { ix.save(never) }, -> { ix.search_text(model, "犬") }].each do |call|
        assert_match(/index is closed/, assert_raises(Jaclip::ClosedError) { call.call }.message)
      end
      refute File.exist?(never)
    end
    kept = Jaclip::Index.open(4) { |x| x }
    assert kept.closed?
  end

  def test_add_waits_for_running_searches_and_holds_off_new_ones
    ix, = make_index(2, 4)
    lock = ix.instance_variable_get(:@lock)
    writer = reader = nil
    lock.shared do # stands for a search in flight (search holds it around its C call)
      writer = Thread.new { ix.add(rows(1, 4), ["late"]) }
      3000.times { lock.instance_variable_get(:@writers).zero? ? sleep(0.01) : break }
      assert_equal 1, lock.instance_variable_get(:@writers)
      refute writer.join(0.2), "add must not move rows being read"
      reader = Thread.new { ix.size } # queues behind the waiting add, so add is not starved
      refute reader.join(0.2)
    end
    assert writer.join(30)
    assert_equal 3, reader.value
    assert_equal %w[row0 row1 late], ix.labels
    ix.close
  end

  def test_searches_in_threads_while_another_thread_adds
    dim = 16
    batches = 40
    data = rows(batches * 25, dim, 5)
    queries = rows(4, dim, 6)
    ix = Jaclip::Index.new(dim).add(data[0, 25], Array.new(25) { |i| "r#{i}" })
    stop = false
    readers = Array.new(3) do
      Thread.new do
        until stop
          idx, = ix.search(queries, 5)
          raise "row out of range" unless idx.flatten.max < ix.size && ix.label(idx[0][0]).start_with?("r")
        end
        :ok
      end
    end
    (1...batches).each { |b| ix.add(data[b * 25, 25], (b * 25...(b + 1) * 25).map { |i| "r#{i}" }) }
    stop = true
    assert_equal [:ok] * 3, readers.map(&:value)
    assert_equal batches * 25, ix.size
    assert_equal brute_topk(data, queries, 5).first, ix.search(queries, 5).first
    ix.close
  end
end
