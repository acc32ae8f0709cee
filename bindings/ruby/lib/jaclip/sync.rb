require "digest"

module Jaclip
  # Jaclip.sync_index: keeps an index file in step with folders, as `jaclip index sync` and Python's
  # jaclip.sync_index do and with the same file protocol (INDEX.lock, stamps, one durable commit per
  # batch), so all three can take turns on one index. Embedding, normalisation and the file format are
  # the library's (jaclip_index_replace_file_timed, jaclip_index_stamp_of).
  module IndexSync
    # The file names the jaclip command's walker takes (tools/jaclip/common.c): the formats libjaclip decodes.
    IMAGE_EXTENSIONS = %w[.jpg .jpeg .jpe .jfif .mpo .png .webp .gif .bmp .dib .tif .tiff .heic .heif .hif .avif].freeze

    # jaclip_index_stamp: the file's size, mtime (ns) and content hash; zeros when not recorded.
    class Stamp < FFI::Struct
      layout :size, :uint64, :mtime_ns, :int64, :content_hash, :uint64
    end

    module_function

    # The first 8 bytes of SHA-256, big-endian, as the command and Python record it; 0 means "none".
    def content_hash(data)
      h = Digest::SHA256.digest(data)[0, 8].unpack1("Q>")
      h.zero? ? 1 : h
    end

    def mtime_ns(stat) = stat.mtime.to_i * 1_000_000_000 + stat.mtime.nsec

    # [roots, sorted absolute paths of the image files under dirs, entries skipped]. Names starting
    # with "." are skipped, symbolic links to folders not followed, folders nested in another root
    # walked once.
    def walk(dirs)
      roots = dirs.map { |d| File.realpath(d.to_s) rescue File.expand_path(d.to_s) }.uniq.sort
      roots = roots.each_with_index.reject { |r, i| roots[0...i].any? { |o| r.start_with?(o.chomp("/") + "/") } }.map(&:first)
      found = []
      skipped = 0
      roots.each do |root|
        raise InputOutputError.new("#{root}: not a directory", 3) unless File.directory?(root)

        stack = [root]
        until stack.empty?
          top = stack.pop
          entries = (Dir.children(top) rescue [])
          entries.sort.each do |name|
            next if name.start_with?(".")

            path = File.join(top, name)
            if File.directory?(path)
              stack << path unless File.symlink?(path)
            elsif IMAGE_EXTENSIONS.include?(File.extname(name).downcase)
              File.file?(path) ? found << path : skipped += 1
            end
          end
        end
      end
      [roots, found.uniq.sort, skipped]
    end

    # The root to label by: as given, else the one the index records; an index recording another root
    # (or absolute labels) is refused.
    def settle_root(index_path, root)
      return root unless File.exist?(index_path)

      style, recorded = Index.load(index_path, mmap: true, verify: false) { |ix| [ix.metadata("labels"), ix.metadata("root")] }
      raise InvalidArgumentError.new("#{index_path}: its labels are absolute paths; drop root", 1) if style == "absolute" && root
      if style == "relative" && root && recorded && root != recorded
        raise InvalidArgumentError.new("#{index_path}: its labels are relative to #{recorded}, not to #{root}", 1)
      end

      root || recorded
    end

    def plan(index, files, roots, root)
      gone = []
      todo = []
      old = {}
      counts = { added: 0, reembedded: 0, unchanged: 0, skipped: 0 }
      seen = Hash.new { |h, k| h[k] = [] }
      index.read do |p|
        Native.jaclip_index_size(p).times do |r|
          label = Native.jaclip_index_label(p, r).read_string.force_encoding(Encoding::UTF_8)
          unless files.key?(label)
            absolute = root ? File.join(root, label) : label
            gone << label if roots.any? { |rt| absolute.start_with?(rt.chomp("/") + "/") }
            next
          end
          stamp = Stamp.new
          Native.check(Native.jaclip_index_stamp_of(stamp, p, r))
          seen[label] << stamp
        end
      end
      files.each do |label, path|
        stamps = seen.fetch(label, [])
        next todo << label if stamps.empty?

        old[label] = true
        st = File.stat(path)
        s = stamps.first
        if stamps.size == 1 && !s[:content_hash].zero? && s[:size] == st.size && s[:mtime_ns] == mtime_ns(st)
          counts[:unchanged] += 1
        else
          todo << label # changed, touched or doubled: embedded again (the same rows if unchanged)
        end
      end
      [gone, todo, old, counts]
    end

    # The photo's EXIF capture time in ns (jaclip_image_capture_time); NO_TIME when it has none.
    NO_TIME = -(1 << 63)
    def capture_time(data)
      out = FFI::MemoryPointer.new(:int64)
      buf = FFI::MemoryPointer.from_string(data.b)
      Native.check(Native.jaclip_image_capture_time(out, buf, data.bytesize))
      out.read_int64
    end

    # One durable commit: rows of remove deleted, then embeddings (nil: none) with labels and stamps
    # ([size, mtime_ns, content_hash, capture_ns] each; jaclip_index_replace_file_timed).
    def commit(index_path, remove, embeddings, labels, stamps)
      return if remove.empty? && labels.empty?

      rm, _keep_rm, nrm = Index.plain_label_pointers(remove)
      st = FFI::MemoryPointer.new(Stamp, [stamps.size, 1].max)
      tm = FFI::MemoryPointer.new(:int64, [stamps.size, 1].max)
      stamps.each_with_index do |(size, mtime, hash, capture), i|
        s = Stamp.new(st + i * Stamp.size)
        s[:size] = size
        s[:mtime_ns] = mtime
        s[:content_hash] = hash
        tm.put_int64(i * 8, capture || NO_TIME)
      end
      out = FFI::MemoryPointer.new(:size_t)
      if embeddings.nil?
        none = FFI::MemoryPointer.new(:pointer)
        Native.check(Native.jaclip_index_replace_file_timed(index_path, rm, nrm, nil, none, st, tm, out))
        return
      end
      Tensor.with_c([embeddings, Tensor::FLOAT32]) do |t|
        arr, _keep = Index.label_pointers(labels, t)
        Native.check(Native.jaclip_index_replace_file_timed(index_path, rm, nrm, t, arr, st, tm, out))
      end
    end
  end

  # Makes the index file at index_path hold exactly the image files under dirs (a path or an
  # Array), embedded by model: adds new files, removes rows of files that are gone (under dirs only),
  # re-embeds files whose content changed. Labels are absolute paths, or relative to root (nil: the root
  # the index records; another root than it records is refused, as `jaclip index sync` refuses it); images
  # are embedded upright when the index records orientation "exif-transpose". Returns the
  # counts { added:, reembedded:, removed:, unchanged:, skipped: }. Resumable after any interruption;
  # refuses (InputOutputError) or with wait: true waits for another writer; refuses an index of another
  # model (ModelMismatchError) unless force.
  def self.sync_index(dirs, index_path, model, root: nil, batch: 16, wait: false, fp16: false, force: false)
    dirs = [dirs] unless dirs.is_a?(Array)
    index_path = index_path.to_s
    batch = Index.count(batch, "batch")
    raise InvalidArgumentError.new("batch must be at least 1", 1) if batch.zero?

    root = IndexSync.settle_root(index_path, root && File.realpath(root.to_s))
    roots, paths, skipped = IndexSync.walk(dirs)
    files = {}
    paths.each do |path|
      if root
        raise InvalidArgumentError.new("#{path}: not inside root #{root}", 1) unless path.start_with?(root.chomp("/") + "/")

        files[path.delete_prefix(root.chomp("/") + "/")] = path
      else
        files[path] = path
      end
    end
    File.open(index_path + ".lock", "a") do |lock|
      unless lock.flock(File::LOCK_EX | (wait ? 0 : File::LOCK_NB))
        raise InputOutputError.new("#{index_path}: another jaclip is writing this index", 3)
      end

      unless File.exist?(index_path)
        Index.open(model.embedding_dim, fp16: fp16) do |fresh|
          fresh.fingerprint = model.fingerprint
          fresh.set_metadata("labels", root ? "relative" : "absolute")
          fresh.set_metadata("root", root)
          fresh.set_metadata("orientation", "as-stored")
          fresh.save(index_path)
        end
      end
      upright = false
      gone, todo, old, counts = Index.load(index_path, mmap: true) do |ix|
        ix.check_model(model) unless force
        upright = ix.metadata("orientation") == "exif-transpose" # embed as the index's rows were
        IndexSync.plan(ix, files, roots, root)
      end
      IndexSync.commit(index_path, gone, nil, [], [])
      counts[:removed] = gone.size
      counts[:skipped] += skipped
      todo.each_slice(batch) do |batch_labels|
        labels = []
        images = []
        stamps = []
        batch_labels.each do |label|
          begin
            data, st = File.open(files[label], "rb") { |f| [f.read, f.stat] }
            images << Image.from_bytes(data, exif_transpose: upright)
          rescue SystemCallError, Jaclip::Error
            counts[:skipped] += 1
            next
          end
          labels << label
          stamps << [st.size, IndexSync.mtime_ns(st), IndexSync.content_hash(data), IndexSync.capture_time(data)]
        end
        begin
          emb = images.empty? ? nil : model.encode_images(images)
        ensure
          images.each(&:close)
        end
        IndexSync.commit(index_path, batch_labels, emb, labels, stamps)
        labels.each { |label| counts[old.key?(label) ? :reembedded : :added] += 1 }
      end
      counts
    end
  end
end
