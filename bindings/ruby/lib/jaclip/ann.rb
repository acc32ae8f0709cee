module Jaclip
  # Approximate search over an Index (jaclip_ann, faiss in the plugin libjaclip-faiss.so.1) and its file
  # beside the index (docs/ann.md): Ann.build(index) or Ann.load(path, index); with a block, freed when
  # the block ends. It keeps the index alive; adding to the index makes its searches fail until
  # rebuilt. Scores are exact cosines; only which rows are found is approximate. Any number of threads
  # may search at once. #close frees it (never the index).
  class Ann
    include Closable

    KINDS = %w[auto exact ivf-flat ivf-pq hnsw].freeze # jaclip_ann_kind values, in order

    def initialize(*)
      raise TypeError, "use Ann.build(index) or Ann.load(path, index)"
    end

    # Builds the structure of kind over every row of index: "auto" (by size: exact below 20000 rows,
    # "ivf-flat" below 200000, "ivf-pq" from there), "exact", "ivf-flat", "ivf-pq" or "hnsw".
    def self.build(index, kind = "auto", &block)
      value = kind_value(kind)
      adopt(index, ->(out, p) { Native.jaclip_ann_build(out, p, value, 0) }, &block)
    end

    # Loads an ANN file saved for index; IndexFormatError when it is damaged, foreign or stale (built
    # from other rows: rebuild it).
    def self.load(path, index, &block)
      adopt(index, ->(out, p) { Native.jaclip_ann_load(out, path.to_s, p, 0) }, &block)
    end

    def kind = KINDS.fetch(@handle.use { |a| Native.jaclip_ann_kind_of(a) })

    # Search knobs (0 keeps one): IVF lists visited, HNSW candidate list, IVF-PQ re-ranked candidates
    # per result.
    def set_params(nprobe: 0, ef_search: 0, rerank: 0)
      args = { nprobe: nprobe, ef_search: ef_search, rerank: rerank }.map { |name, v| Index.count(v, name.to_s) }
      @handle.use { |a| Native.check(Native.jaclip_ann_set_params(a, *args)) }
      self
    end

    # [indices, scores], each [Q][k'], as Index#search gives them, approximately: a row the structure
    # misses is absent (rarely, the tail of a row is -1 with score -Infinity).
    def search(queries, k = 10)
      k = Index.count(k, "k")
      Tensor.with_c([queries, Tensor::FLOAT32]) do |t|
        idx = FFI::MemoryPointer.new(:pointer)
        val = FFI::MemoryPointer.new(:pointer)
        @index.read { @handle.use { |a| Native.check(Native.jaclip_ann_search(idx, val, a, t, k)) } }
        [Tensor.take(idx.read_pointer), Tensor.take(val.read_pointer)]
      end
    end

    # Writes the ANN file atomically (docs/ann.md); by convention INDEX + ".ann".
    def save(path)
      @handle.use { |a| Native.check(Native.jaclip_ann_save(a, path.to_s)) }
      nil
    end

    def inspect = closed? ? "#<Jaclip::Ann (closed)>" : "#<Jaclip::Ann #{kind} rows=#{@index.size}>"

    def self.kind_value(kind)
      return KINDS.index(kind.to_s) if KINDS.include?(kind.to_s)

      raise InvalidArgumentError.new("unknown ANN kind #{kind.inspect}: one of #{KINDS.join(', ')}", 1)
    end

    def self.adopt(index, make)
      raise TypeError, "expected a Jaclip::Index, not #{index.class}" unless index.is_a?(Index)

      out = FFI::MemoryPointer.new(:pointer)
      index.read { |p| Native.check(make.call(out, p)) }
      ann = allocate
      ann.instance_variable_set(:@handle, Handle.new(out.read_pointer, :jaclip_ann_free, "ANN"))
      ann.instance_variable_set(:@index, index)
      return ann unless block_given?

      begin
        yield ann
      ensure
        ann.close
      end
    end
    private_class_method :kind_value, :adopt
  end
end
