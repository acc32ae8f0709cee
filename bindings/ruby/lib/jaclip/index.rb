module Jaclip
  # One search result of Index#search_text / #search_image: the row's label, its cosine score, its row.
  Hit = Struct.new(:label, :score, :row)
  # Index#duplicates: total groups over all pages, and this page's groups.
  Duplicates = Struct.new(:total, :groups)
  # One group of duplicates: exact (some members share a content hash) and its hits, first row first.
  DuplicateGroup = Struct.new(:exact, :hits)

  # An exact cosine-similarity index of labelled rows (jaclip_index): Index.open(dim) for an empty one,
  # Index.load(path) for a saved one; with a block, freed when the block ends. Rows are stored
  # L2-normalised. Threads may search one index at once; #add waits for them.
  class Index
    include Closable

    MMAP = 1
    NO_CHECKSUM = 2

    # Many readers or one writer: add reallocates the rows and labels that search, label and save read,
    # and those run without the GVL. A waiting writer holds off new readers, so a stream of searches
    # cannot starve add (which is why the binding never nests two reads in one thread).
    class SharedLock
      def initialize
        @mutex = Mutex.new
        @cond = ConditionVariable.new
        @readers = 0
        @writers = 0 # waiting or writing
        @writing = false
      end

      def shared
        @mutex.synchronize do
          @cond.wait(@mutex) while @writers.positive?
          @readers += 1
        end
        begin
          yield
        ensure
          @mutex.synchronize { @cond.broadcast if (@readers -= 1).zero? }
        end
      end

      def exclusive
        @mutex.synchronize do
          @writers += 1
          @cond.wait(@mutex) while @writing || @readers.positive?
          @writing = true
        end
        begin
          yield
        ensure
          @mutex.synchronize do
            @writers -= 1
            @writing = false
            @cond.broadcast
          end
        end
      end
    end

    ROWS_FLOAT16 = 1
    FINGERPRINT_ALLOW_UNKNOWN = 1

    # fp16: true stores rows as float16 (half the memory; scores within about 1e-3).
    def initialize(dim, fp16: false, _loader: nil)
      out = FFI::MemoryPointer.new(:pointer)
      Native.check(_loader ? _loader.call(out) : Native.jaclip_index_create(out, Index.count(dim, "dim")))
      @handle = Handle.new(out.read_pointer, :jaclip_index_free, "index")
      @lock = SharedLock.new
      @handle.use { |p| Native.check(Native.jaclip_index_set_row_format(p, ROWS_FLOAT16)) } if fp16
    end

    # Writes one index file at path with the rows of the index files shards, in order
    # (jaclip_index_merge): each shard's checksums verified, path replaced only once complete.
    # unique_labels: refuse (InvalidArgumentError) a label occurring twice. IndexFormatError names a
    # damaged shard; ShapeError one of another width.
    def self.merge(path, shards, unique_labels: false)
      raise TypeError, "expected an Array of shard paths, not #{shards.class}" unless shards.is_a?(Array)

      arr, _keep, n = plain_label_pointers(shards.map(&:to_s))
      Native.check(Native.jaclip_index_merge(path.to_s, arr, n, unique_labels ? 1 : 0))
      nil
    end

    # True when rows are stored as float16.
    def fp16? = read { |p| Native.jaclip_index_row_format(p) == ROWS_FLOAT16 }

    # ModelMismatchError unless the index records model's fingerprint (or none, if allow_unknown).
    def check_model(model, allow_unknown: true)
      fp = model.fingerprint
      read { |p| Native.check(Native.jaclip_index_check_fingerprint(p, fp, allow_unknown ? FINGERPRINT_ALLOW_UNKNOWN : 0)) }
      nil
    end

    # Opens an index file. mmap: use the rows where they lie in the page cache instead of copying them
    # (the file must not be truncated meanwhile); verify: false skips the CRC32 of the vector data
    # (lengths and labels are still checked). IndexFormatError for a foreign, truncated or corrupted file.
    def self.load(path, mmap: false, verify: true, &block)
      flags = (mmap ? MMAP : 0) | (verify ? 0 : NO_CHECKSUM)
      open(nil, _loader: ->(out) { Native.jaclip_index_load(out, path.to_s, flags) }, &block)
    end

    # Appends rows ([N][dim] Floats) with their labels to an existing index file in place, durably (an
    # interruption leaves the old rows, or the old rows plus these); no Index object is needed.
    def self.append_file(path, embeddings, labels)
      return if embeddings == [] && labels == [] # no rows: the file is not touched

      Tensor.with_c([embeddings, Tensor::FLOAT32]) do |t|
        arr, _keep = label_pointers(labels, t)
        Native.check(Native.jaclip_index_append_file(path.to_s, t, arr))
      end
      nil
    end

    # Appends [N][dim] rows (copied, L2-normalised) with one String label each; nothing is added on
    # failure. Returns self.
    def add(embeddings, labels)
      # [] is 1-D to Tensor.to_c; it means no rows, so the library (which wants [0, dim]) is not asked.
      return @handle.use { self } if embeddings == [] && labels == []

      Tensor.with_c([embeddings, Tensor::FLOAT32]) do |t|
        arr, _keep = Index.label_pointers(labels, t)
        @lock.exclusive { @handle.use { |p| Native.check(Native.jaclip_index_add(p, t, arr)) } }
      end
      self
    end

    # Removes every row labelled one of labels (later rows move down); returns how many went.
    def remove(labels)
      arr, _keep, n = Index.plain_label_pointers(labels)
      out = FFI::MemoryPointer.new(:size_t)
      @lock.exclusive { @handle.use { |p| Native.check(Native.jaclip_index_remove(p, arr, n, out)) } }
      out.read(:size_t)
    end

    # Deletes every row labelled one of labels from the index file at path, durably (one commit);
    # returns how many rows went.
    def self.remove_file(path, labels)
      arr, _keep, n = plain_label_pointers(labels)
      out = FFI::MemoryPointer.new(:size_t)
      Native.check(Native.jaclip_index_remove_file(path.to_s, arr, n, out))
      out.read(:size_t)
    end

    # Rewrites the index file at path without its deleted rows, atomically.
    def self.compact_file(path, fingerprint = nil)
      Native.check(Native.jaclip_index_compact_file(path.to_s, fingerprint))
    end

    # The fingerprint of the model that made the rows, or nil if none is recorded.
    def fingerprint
      fp = read { |p| Native.jaclip_index_fingerprint(p) }
      fp.empty? ? nil : fp
    end

    def fingerprint=(value)
      @lock.exclusive { @handle.use { |p| Native.check(Native.jaclip_index_set_fingerprint(p, value)) } }
    end

    def size = read { |p| Native.jaclip_index_size(p) }
    alias length size
    def empty? = size.zero?
    def dim = read { |p| Native.jaclip_index_dim(p) }

    # The label of row i; NotFoundError past the end.
    def label(i)
      raise TypeError, "a row must be an Integer, not #{i.class}" unless i.is_a?(Integer)

      # Copied inside the lock: the pointer is only valid until the next add.
      text = read do |p|
        ptr = i.negative? || i >= Native.jaclip_index_size(p) ? FFI::Pointer::NULL : Native.jaclip_index_label(p, i)
        ptr.null? ? nil : ptr.read_string.force_encoding(Encoding::UTF_8)
      end
      raise NotFoundError.new("row #{i} is not in the index", 13) unless text

      text
    end

    # Every label, in row order.
    def labels
      read do |p|
        Array.new(Native.jaclip_index_size(p)) { |i| Native.jaclip_index_label(p, i).read_string.force_encoding(Encoding::UTF_8) }
      end
    end

    # The lowest row labelled label; NotFoundError if none is.
    def find(label)
      raw = Jaclip.text_bytes(label)
      raise NotFoundError.new("no label contains a NUL byte", 13) if raw.include?("\0")

      out = FFI::MemoryPointer.new(:size_t)
      buf = FFI::MemoryPointer.from_string(raw)
      read { |p| Native.check(Native.jaclip_index_find_label(out, p, buf)) }
      out.read(:size_t)
    end

    # [count][dim] Floats: rows first.. as stored (unit length); all rows from first by default.
    def embeddings(first = 0, count = nil)
      first = Index.count(first, "first")
      read do |p|
        count = Index.count(count || [Native.jaclip_index_size(p) - first, 0].max, "count")
        Tensor.call(:jaclip_index_embeddings, p, first, count)
      end
    end

    # [indices, scores], each [Q][k'], of the k rows most cosine-similar to each of the queries
    # ([Q][dim] Floats), best first, ties to the lower row; k' = min(k, size).
    # Filters (folder:, after:/before: Time or ns since the epoch, types:) choose the rows before the
    # top k, offset: skips the best ones (pages), threshold: turns lower results into row -1, score
    # -Infinity (jaclip_index_search_with).
    def search(queries, k = 10, offset: 0, threshold: nil, folder: nil, after: nil, before: nil, types: nil)
      k = Index.count(k, "k")
      opts = Index.search_options(offset, threshold, folder, after, before, types)
      begin
        Tensor.with_c([queries, Tensor::FLOAT32]) do |t|
          idx = FFI::MemoryPointer.new(:pointer)
          val = FFI::MemoryPointer.new(:pointer)
          read { |p| Native.check(Native.jaclip_index_search_with(idx, val, p, t, k, opts)) }
          [Tensor.take(idx.read_pointer), Tensor.take(val.read_pointer)]
        end
      ensure
        Native.jaclip_search_options_free(opts) if opts
      end
    end

    # Groups of duplicate rows (jaclip_index_duplicates): rows whose file stamps record the same
    # content hash (exact) joined with rows at cosine >= threshold (near; 0.5 to 1). Groups ordered by
    # their first row; offset: / limit: (0: all) choose a page. Returns Duplicates(total, groups), each
    # group DuplicateGroup(exact, hits), hits Hit(label, score: cosine to the group's first, row).
    def duplicates(threshold = 0.95, exact_only: false, offset: 0, limit: 0)
      out = FFI::MemoryPointer.new(:pointer)
      Native.check(Native.jaclip_dupes_options_create(out))
      opts = out.read_pointer
      begin
        Native.check(Native.jaclip_dupes_options_set_threshold(opts, Float(threshold)))
        Native.check(Native.jaclip_dupes_options_set_exact_only(opts, exact_only ? 1 : 0))
        Native.check(Native.jaclip_dupes_options_set_page(opts, Index.count(offset, "offset"),
                                                          Index.count(limit, "limit")))
        read { |p| Index.collect_duplicates(p, opts) }
      ensure
        Native.jaclip_dupes_options_free(opts)
      end
    end

    # The groups of jaclip_index_duplicates(p, opts) as Duplicates, labels copied while p is held.
    def self.collect_duplicates(p, opts)
      out = FFI::MemoryPointer.new(:pointer)
      Native.check(Native.jaclip_index_duplicates(out, p, opts))
      d = out.read_pointer
      begin
        row = FFI::MemoryPointer.new(:size_t)
        score = FFI::MemoryPointer.new(:float)
        groups = (0...Native.jaclip_dupes_count(d)).map do |g|
          hits = (0...Native.jaclip_dupes_group_size(d, g)).map do |j|
            Native.check(Native.jaclip_dupes_member(row, score, d, g, j))
            r = row.read(:size_t)
            Hit.new(Native.jaclip_index_label(p, r).read_string.force_encoding(Encoding::UTF_8), score.read_float, r)
          end
          DuplicateGroup.new(Native.jaclip_dupes_group_exact(d, g) != 0, hits)
        end
        Duplicates.new(Native.jaclip_dupes_total(d), groups)
      ensure
        Native.jaclip_dupes_free(d)
      end
    end

    def self.time_ns(value) = value.respond_to?(:to_r) && value.is_a?(Time) ? (value.to_r * 1_000_000_000).to_i : Integer(value)

    # A jaclip_search_options for these filters, or nil when there are none (the caller frees it).
    def self.search_options(offset, threshold, folder, after, before, types)
      return nil if offset.zero? && threshold.nil? && folder.nil? && after.nil? && before.nil? && types.nil?

      out = FFI::MemoryPointer.new(:pointer)
      Native.check(Native.jaclip_search_options_create(out))
      opts = out.read_pointer
      begin
        Native.check(Native.jaclip_search_options_set_offset(opts, count(offset, "offset")))
        Native.check(Native.jaclip_search_options_set_threshold(opts, Float(threshold))) unless threshold.nil?
        Native.check(Native.jaclip_search_options_set_folder(opts, folder.to_s)) unless folder.nil?
        unless after.nil? && before.nil?
          lo = after.nil? ? -(2**63) : time_ns(after)
          hi = before.nil? ? 2**63 - 1 : time_ns(before)
          Native.check(Native.jaclip_search_options_set_time_range(opts, lo, hi))
        end
        Array(types).each { |t| Native.check(Native.jaclip_search_options_add_file_type(opts, t.to_s)) }
      rescue StandardError
        Native.jaclip_search_options_free(opts)
        raise
      end
      opts
    end

    # [ns since the epoch, :exif or :mtime] of row i, the time date filters compare
    # (jaclip_index_row_time): the photo's recorded EXIF capture time, else its file's mtime;
    # [nil, nil] when neither is recorded.
    def row_time(i)
      raise TypeError, "a row must be an Integer, not #{i.class}" unless i.is_a?(Integer)

      out = FFI::MemoryPointer.new(:int64)
      source = FFI::MemoryPointer.new(:int)
      read do |p|
        raise NotFoundError.new("row #{i} is not in the index", 13) if i.negative? || i >= Native.jaclip_index_size(p)

        Native.check(Native.jaclip_index_row_time(out, source, p, i))
      end
      s = source.read_int
      s.zero? ? [nil, nil] : [out.read_int64, s == 1 ? :exif : :mtime]
    end

    # The metadata value of key ("root", "labels", "orientation"), or nil.
    def metadata(key) = read { |p| Native.jaclip_index_metadata(p, key.to_s)&.dup&.force_encoding(Encoding::UTF_8) }

    # Sets (or, with nil, removes) a metadata value in memory; saved by save.
    def set_metadata(key, value)
      @lock.exclusive { @handle.use { |p| Native.check(Native.jaclip_index_set_metadata(p, key.to_s, value)) } }
    end

    # Rows deleted in the loaded file but still stored there (compact_file drops them).
    def deleted_rows = read { |p| Native.jaclip_index_deleted_rows(p) }

    # The k rows best matching one text, encoded by model: Hits, best first.
    def search_text(model, text, k = 10)
      raise TypeError, "expected one text, not #{text.class}" unless text.is_a?(String)

      hits(model.encode_texts([text]), k)
    end

    # The k rows best matching one image (path or Jaclip::Image), encoded by model: Hits, best first.
    def search_image(model, image, k = 10) = hits(model.encode_images([image]), k)

    # Writes the whole index to path atomically (a temporary file renamed over it) and durably.
    def save(path)
      read { |p| Native.check(Native.jaclip_index_save(p, path.to_s)) }
      nil
    end

    def inspect
      return "#<Jaclip::Index (closed)>" if closed?

      "#<Jaclip::Index dim=#{dim} rows=#{size}>"
    end

    # Internal: a size_t argument; FFI would wrap a negative Integer to a huge one.
    def self.count(value, what)
      raise TypeError, "#{what} must be an Integer, not #{value.class}" unless value.is_a?(Integer)
      raise InvalidArgumentError.new("#{what} must not be negative, got #{value}", 1) if value.negative?

      value
    end

    # Internal: [char *[] of the labels, keep-alive, count], for removal.
    def self.plain_label_pointers(labels)
      raise TypeError, "expected an Array of labels" unless labels.is_a?(Array)

      raw = labels.map { |l| Jaclip.text_bytes(l) }
      raw.each_with_index { |b, i| raise InvalidArgumentError.new("label #{i} contains a NUL byte", 1) if b.include?("\0") }
      bufs = raw.map { |b| FFI::MemoryPointer.from_string(b) }
      [FFI::MemoryPointer.new(:pointer, [bufs.size, 1].max).put_array_of_pointer(0, bufs), bufs, bufs.size]
    end

    # Internal: [char *[] of the labels, keep-alive] after checking they match the rows of tensor t.
    def self.label_pointers(labels, t)
      raise TypeError, "expected an Array of labels" unless labels.is_a?(Array)

      raw = labels.map { |l| Jaclip.text_bytes(l) }
      # Labels are NUL-terminated in C: one with a NUL inside would be cut short silently.
      raw.each_with_index { |b, i| raise InvalidArgumentError.new("label #{i} contains a NUL byte", 1) if b.include?("\0") }
      # The C API reads one label per row and cannot know the Array's size, so a short one would be read
      # past its end; a tensor that is not 2-D is refused by the library before it reads any label.
      rows = Native.jaclip_tensor_dim(t, 0)
      if Native.jaclip_tensor_ndim(t) == 2 && rows != raw.size
        raise InvalidArgumentError.new("#{rows} rows but #{raw.size} labels", 1)
      end

      bufs = raw.map { |b| FFI::MemoryPointer.from_string(b) }
      [FFI::MemoryPointer.new(:pointer, [bufs.size, 1].max).put_array_of_pointer(0, bufs), bufs]
    end

    # Internal (Ann, IndexSync): yields the C pointer under the shared lock, as searches hold it.
    def read(&block) = @lock.shared { @handle.use(&block) }

    private

    def hits(features, k)
      idx, val = search(features, k)
      # The rows found are still there: a concurrent add only appends.
      read do |p|
        idx.first.zip(val.first).map do |i, s|
          Hit.new(Native.jaclip_index_label(p, i).read_string.force_encoding(Encoding::UTF_8), s, i)
        end
      end
    end
  end
end
