require_relative "test_helper"

# Before the faiss plugin loads OpenMP: waiting workers sleep instead of spinning on shared cores.
ENV["OMP_WAIT_POLICY"] ||= "PASSIVE"

# Jaclip::Ann (approximate search, faiss through libjaclip-faiss.so.1), as test/python/test_ann.py tests
# Python's: recall against a brute-force cosine top-k computed here on clustered rows, exact scores,
# files round-tripped, damaged and stale files refused, bad arguments.
class AnnTest < Minitest::Test
  include Helpers

  DIM = 16

  # Rows around random centres with overlapping clusters (uniform noise would prove nothing).
  def clustered(rows, clusters, seed)
    rng = Random.new(seed)
    gauss = -> { Math.sqrt(-2 * Math.log(1 - rng.rand)) * Math.cos(2 * Math::PI * rng.rand) }
    centres = Array.new(clusters) { Array.new(DIM) { gauss.call } }
    Array.new(rows) { c = centres[rng.rand(clusters)]; c.map { |x| x + 0.8 * gauss.call } }
  end

  def unit(v) = (n = norm(v); v.map { |x| x / n })

  def brute_topk(rows, queries, k)
    units = rows.map { |r| unit(r) }
    queries.map do |q|
      qu = unit(q)
      units.each_with_index.map { |r, i| [-r.zip(qu).sum { |a, b| a * b }, i] }.sort.first(k).map(&:last)
    end
  end

  def recall(found, want) = found.zip(want).sum { |f, w| (f & w).size.fdiv(w.size) } / want.size

  def setup
    @rows = clustered(3000, 40, 1)
    @queries = clustered(30, 40, 2)
    @index = Jaclip::Index.new(DIM).add(@rows, Array.new(@rows.size) { |i| "p#{i}.jpg" })
    @want = brute_topk(@rows, @queries, 10)
  end

  def teardown = @index.close

  def test_exact_ivf_flat_and_hnsw_find_the_brute_force_top10
    Jaclip::Ann.build(@index, "exact") do |ann|
      assert_equal "exact", ann.kind
      got, scores = ann.search(@queries, 10)
      assert_operator recall(got, @want), :>=, 0.999
      # Scores are the exact cosines of the rows found, best first.
      got.zip(scores, @queries).each do |ids, s, q|
        ids.zip(s).each { |i, v| assert_in_delta unit(@rows[i]).zip(unit(q)).sum { |a, b| a * b }, v, 1e-5 }
        assert_equal s.sort.reverse, s
      end
    end
    Jaclip::Ann.build(@index, "ivf-flat") do |ann|
      assert_equal "ivf-flat", ann.kind
      assert_operator recall(ann.search(@queries, 10)[0], @want), :>=, 0.8
      e = assert_raises(Jaclip::InvalidArgumentError) { ann.set_params(nprobe: 4096) }
      lists = e.message[/1\.\.(\d+)/, 1].to_i # the library names how many lists it made
      assert_operator lists, :>, 1
      ann.set_params(nprobe: lists) # every list visited: the exact answer
      assert_operator recall(ann.search(@queries, 10)[0], @want), :>=, 0.999
    end
    Jaclip::Ann.build(@index, :hnsw) do |ann|
      assert_operator recall(ann.search(@queries, 10)[0], @want), :>=, 0.9
    end
    Jaclip::Ann.build(@index) { |ann| assert_equal "exact", ann.kind } # auto: exact below 20000 rows
  end

  def test_files_round_trip_and_refusals
    Dir.mktmpdir do |dir|
      path = File.join(dir, "x.jci.ann")
      first = Jaclip::Ann.build(@index, "ivf-flat") do |ann|
        assert_nil ann.save(path)
        ann.search(@queries, 10)[0]
      end
      Jaclip::Ann.load(path, @index) do |back|
        assert_equal "ivf-flat", back.kind
        assert_equal first, back.search(@queries, 10)[0]
      end
      blob = File.binread(path)
      [0, 30, blob.bytesize / 2, blob.bytesize - 1].each do |cut|
        File.binwrite(File.join(dir, "cut.ann"), blob[0, cut])
        assert_raises(Jaclip::IndexFormatError) { Jaclip::Ann.load(File.join(dir, "cut.ann"), @index) }
      end
      flipped = blob.dup
      flipped.setbyte(blob.bytesize / 3, flipped.getbyte(blob.bytesize / 3) ^ 4)
      File.binwrite(File.join(dir, "flip.ann"), flipped)
      e = assert_raises(Jaclip::IndexFormatError) { Jaclip::Ann.load(File.join(dir, "flip.ann"), @index) }
      assert_match(/checksum/, e.message)
      Jaclip::Index.open(DIM) do |grown|
        grown.add(@rows, Array.new(@rows.size) { |i| "p#{i}.jpg" }).add([@rows[0]], ["new.jpg"])
        e = assert_raises(Jaclip::IndexFormatError) { Jaclip::Ann.load(path, grown) }
        assert_match(/stale/, e.message)
      end
    end
  end

  def test_arguments
    assert_raises(Jaclip::InvalidArgumentError) { Jaclip::Ann.build(@index, "lsh") }
    assert_raises(TypeError) { Jaclip::Ann.new(@index) }
    assert_raises(TypeError) { Jaclip::Ann.build(@rows) }
    Jaclip::Index.open(DIM) do |tiny|
      tiny.add(@queries[0, 10], Array.new(10, &:to_s))
      e = assert_raises(Jaclip::InvalidArgumentError) { Jaclip::Ann.build(tiny, "ivf-pq") }
      assert_match(/at least/, e.message)
    end
    ann = Jaclip::Ann.build(@index, "exact")
    assert_raises(Jaclip::InvalidArgumentError) { ann.search(@queries, -1) }
    assert_raises(Jaclip::ShapeError) { ann.search(@queries.map { |q| q[0, 5] }, 3) }
    assert_raises(Jaclip::InvalidArgumentError) { ann.set_params(nprobe: -1) }
    assert_match(/Jaclip::Ann exact rows=3000/, ann.inspect)
    ann.close
    assert_raises(Jaclip::ClosedError) { ann.search(@queries, 3) }
    assert_equal "#<Jaclip::Ann (closed)>", ann.inspect
  end
end
