require "ffi"

module Jaclip
  # The C API, attached from the library found by Native.candidates. Nothing else in the gem calls C.
  module Native
    extend FFI::Library

    SONAME = "libjaclip.so.1".freeze

    # JACLIP_LIBRARY (a file or the folder holding it), else pkg-config's libdir, else the system's.
    def self.candidates
      env = ENV["JACLIP_LIBRARY"]
      return [File.directory?(env) ? File.join(env, SONAME) : env] if env && !env.empty?

      found = []
      libdir = pkg_config_libdir
      found << File.join(libdir, SONAME) if libdir && File.exist?(File.join(libdir, SONAME))
      found << SONAME
    end

    def self.pkg_config_libdir
      out = IO.popen(["pkg-config", "--variable=libdir", "jaclip"], err: File::NULL, &:read)
      $?.success? && !out.strip.empty? ? out.strip : nil
    rescue SystemCallError
      nil
    end

    # The first candidate that loads (ffi_lib would require all of them).
    load_errors = candidates.filter_map do |path|
      ffi_lib path
      break nil
    rescue LoadError => e
      e.message
    end
    if load_errors
      raise LoadError, "jaclip: libjaclip not found (set JACLIP_LIBRARY to its path, or install it where " \
                       "pkg-config or the dynamic linker finds it): #{load_errors.join('; ')}"
    end

    def self.path
      ffi_libraries.first.name
    end

    typedef :pointer, :out
    typedef :int, :status

    # FFI wraps a negative Integer into an unsigned parameter silently (k = -1 becomes SIZE_MAX, a pixel
    # limit of -1 lifts the limit): every attached function refuses integers outside its C types.
    INT_RANGES = %i[int int32 int64 uint uint32 uint64 size_t].to_h do |t|
      bits = 8 * FFI.type_size(t)
      [t, t.to_s.start_with?("u", "size") ? 0..(2**bits - 1) : -(2**(bits - 1))..(2**(bits - 1) - 1)]
    end.freeze

    def self.attach_function(name, args, returns, **options)
      super
      checks = args.each_with_index.filter_map { |t, i| INT_RANGES[t] && [i, INT_RANGES[t]] }
      return if checks.empty?

      raw = method(name)
      define_singleton_method(name) do |*values|
        checks.each do |i, range|
          v = values[i]
          next unless v.is_a?(Integer) && !range.cover?(v)

          raise Jaclip::InvalidArgumentError.new("#{name}: argument #{i + 1} is #{v}, outside the C type's range #{range}", 1)
        end
        raw.call(*values)
      end
    end

    attach_function :jaclip_version_number, [], :uint
    attach_function :jaclip_version_string, [], :string
    attach_function :jaclip_status_string, [:int], :string
    attach_function :jaclip_last_error, [], :string

    attach_function :jaclip_tensor_create, %i[out int size_t pointer pointer], :status
    attach_function :jaclip_tensor_free, [:pointer], :void
    attach_function :jaclip_tensor_dtype, [:pointer], :int
    attach_function :jaclip_tensor_ndim, [:pointer], :size_t
    attach_function :jaclip_tensor_dim, %i[pointer size_t], :int64
    attach_function :jaclip_tensor_numel, [:pointer], :size_t
    attach_function :jaclip_tensor_data, [:pointer], :pointer

    attach_function :jaclip_similarity, %i[out pointer pointer int float], :status
    attach_function :jaclip_softmax, %i[out pointer], :status
    attach_function :jaclip_probabilities, %i[out pointer pointer int float], :status
    attach_function :jaclip_normalize, %i[out pointer], :status
    attach_function :jaclip_topk, %i[out out pointer size_t], :status

    attach_function :jaclip_image_load, %i[out string uint64 uint32], :status, blocking: true
    attach_function :jaclip_image_load_memory, %i[out pointer size_t uint64 uint32], :status, blocking: true
    attach_function :jaclip_image_from_pixels, %i[out pointer uint32 uint32 size_t int], :status
    attach_function :jaclip_image_free, [:pointer], :void
    attach_function :jaclip_image_width, [:pointer], :uint32
    attach_function :jaclip_image_height, [:pointer], :uint32
    attach_function :jaclip_image_mode, [:pointer], :string
    attach_function :jaclip_image_resize_crop, %i[out pointer uint32], :status, blocking: true
    attach_function :jaclip_image_preprocess, %i[out pointer size_t uint32 pointer pointer], :status, blocking: true

    attach_function :jaclip_tokenizer_load, %i[out string], :status, blocking: true
    attach_function :jaclip_tokenizer_load_memory, %i[out pointer size_t], :status, blocking: true
    attach_function :jaclip_tokenizer_free, [:pointer], :void
    attach_function :jaclip_tokenizer_vocab_size, [:pointer], :int64
    attach_function :jaclip_tokenizer_id_to_piece, %i[pointer int64], :pointer
    attach_function :jaclip_tokenizer_encode, %i[out out pointer pointer pointer size_t size_t], :status
    attach_function :jaclip_tokenizer_tokenize, %i[out pointer pointer size_t], :status

    attach_function :jaclip_model_options_create, [:out], :status
    attach_function :jaclip_model_options_free, [:pointer], :void
    attach_function :jaclip_model_options_set_device, %i[pointer string], :status
    attach_function :jaclip_model_options_set_num_threads, %i[pointer int32], :status
    attach_function :jaclip_model_options_set_precision, %i[pointer int], :status
    attach_function :jaclip_model_options_set_max_image_pixels, %i[pointer uint64], :status
    attach_function :jaclip_model_options_set_image_flags, %i[pointer uint32], :status
    attach_function :jaclip_model_load, %i[out string pointer], :status, blocking: true
    attach_function :jaclip_model_load_memory, %i[out pointer size_t pointer], :status, blocking: true
    attach_function :jaclip_model_free, [:pointer], :void
    attach_function :jaclip_model_embedding_dim, [:pointer], :int64
    attach_function :jaclip_model_image_size, [:pointer], :int64
    attach_function :jaclip_model_max_text_length, [:pointer], :int64
    attach_function :jaclip_model_device, [:pointer], :string
    attach_function :jaclip_model_precision, [:pointer], :int
    attach_function :jaclip_model_precision_reason, [:pointer], :string
    attach_function :jaclip_model_fingerprint, [:pointer], :string
    attach_function :jaclip_model_image_mean, [:pointer], :pointer
    attach_function :jaclip_model_image_std, [:pointer], :pointer
    attach_function :jaclip_model_tokenizer, [:pointer], :pointer
    attach_function :jaclip_model_encode_pixel_values, %i[out pointer pointer], :status, blocking: true
    attach_function :jaclip_model_encode_token_ids, %i[out pointer pointer pointer], :status, blocking: true
    attach_function :jaclip_model_encode_texts, %i[out pointer pointer pointer size_t], :status, blocking: true
    attach_function :jaclip_model_encode_images, %i[out pointer pointer size_t], :status, blocking: true
    attach_function :jaclip_model_encode_image_files, %i[out pointer pointer size_t], :status, blocking: true
    attach_function :jaclip_model_encode_image_buffers, %i[out pointer pointer pointer size_t], :status, blocking: true
    # Not blocking: the library calls the skip callback back on this thread, which needs the GVL.
    callback :jaclip_skip_callback, %i[pointer size_t int string], :void
    attach_function :jaclip_model_encode_image_files_skipping,
                    %i[out out pointer pointer size_t jaclip_skip_callback pointer], :status
    attach_function :jaclip_model_encode_image_buffers_skipping,
                    %i[out out pointer pointer pointer size_t jaclip_skip_callback pointer], :status
    attach_function :jaclip_model_preprocess_images, %i[out pointer pointer size_t], :status, blocking: true

    attach_function :jaclip_index_create, %i[out size_t], :status
    attach_function :jaclip_index_free, [:pointer], :void
    attach_function :jaclip_index_add, %i[pointer pointer pointer], :status, blocking: true
    attach_function :jaclip_index_size, [:pointer], :size_t
    attach_function :jaclip_index_dim, [:pointer], :size_t
    attach_function :jaclip_index_label, %i[pointer size_t], :pointer
    attach_function :jaclip_index_find_label, %i[pointer pointer pointer], :status
    attach_function :jaclip_index_embeddings, %i[out pointer size_t size_t], :status
    attach_function :jaclip_index_search, %i[out out pointer pointer size_t], :status, blocking: true
    attach_function :jaclip_index_save, %i[pointer string], :status, blocking: true
    attach_function :jaclip_index_append_file, %i[string pointer pointer], :status, blocking: true
    attach_function :jaclip_index_load, %i[out string uint32], :status, blocking: true
    attach_function :jaclip_index_remove, %i[pointer pointer size_t pointer], :status, blocking: true
    attach_function :jaclip_index_remove_file, %i[string pointer size_t pointer], :status, blocking: true
    attach_function :jaclip_index_compact_file, %i[string string], :status, blocking: true
    attach_function :jaclip_index_fingerprint, [:pointer], :string
    attach_function :jaclip_index_set_fingerprint, %i[pointer string], :status
    # metadata (format version 3) and filter-then-rank search options
    attach_function :jaclip_index_metadata, %i[pointer string], :string
    attach_function :jaclip_index_set_metadata, %i[pointer string string], :status
    attach_function :jaclip_index_deleted_rows, [:pointer], :size_t
    attach_function :jaclip_search_options_create, [:out], :status
    attach_function :jaclip_search_options_free, [:pointer], :void
    attach_function :jaclip_search_options_set_offset, %i[pointer size_t], :status
    attach_function :jaclip_search_options_set_threshold, %i[pointer float], :status
    attach_function :jaclip_search_options_set_folder, %i[pointer string], :status
    attach_function :jaclip_search_options_set_time_range, %i[pointer int64 int64], :status
    attach_function :jaclip_search_options_add_file_type, %i[pointer string], :status
    attach_function :jaclip_index_search_with, %i[out out pointer pointer size_t pointer], :status, blocking: true
    # duplicate groups
    attach_function :jaclip_dupes_options_create, [:out], :status
    attach_function :jaclip_dupes_options_free, [:pointer], :void
    attach_function :jaclip_dupes_options_set_threshold, %i[pointer float], :status
    attach_function :jaclip_dupes_options_set_exact_only, %i[pointer int], :status
    attach_function :jaclip_dupes_options_set_page, %i[pointer size_t size_t], :status
    attach_function :jaclip_index_duplicates, %i[out pointer pointer], :status, blocking: true
    attach_function :jaclip_dupes_free, [:pointer], :void
    attach_function :jaclip_dupes_total, [:pointer], :size_t
    attach_function :jaclip_dupes_count, [:pointer], :size_t
    attach_function :jaclip_dupes_group_size, %i[pointer size_t], :size_t
    attach_function :jaclip_dupes_group_exact, %i[pointer size_t], :int
    attach_function :jaclip_dupes_member, %i[pointer pointer pointer size_t size_t], :status
    attach_function :jaclip_index_check_fingerprint, %i[pointer string uint32], :status
    attach_function :jaclip_index_row_format, [:pointer], :uint32
    attach_function :jaclip_index_set_row_format, %i[pointer uint32], :status
    attach_function :jaclip_index_merge, %i[string pointer size_t uint32], :status, blocking: true
    # stamps: arrays of Jaclip::IndexSync::Stamp (jaclip_index_stamp)
    attach_function :jaclip_index_replace_file, %i[string pointer size_t pointer pointer pointer pointer], :status,
                    blocking: true
    attach_function :jaclip_index_stamp_of, %i[pointer pointer size_t], :status
    # capture times (format version 4): EXIF DateTimeOriginal per row, the date filters' time
    attach_function :jaclip_index_replace_file_timed,
                    %i[string pointer size_t pointer pointer pointer pointer pointer], :status, blocking: true
    attach_function :jaclip_index_row_time, %i[pointer pointer pointer size_t], :status
    attach_function :jaclip_image_capture_time, %i[pointer pointer size_t], :status

    attach_function :jaclip_ann_build, %i[out pointer int uint32], :status, blocking: true
    attach_function :jaclip_ann_load, %i[out string pointer uint32], :status, blocking: true
    attach_function :jaclip_ann_save, %i[pointer string], :status, blocking: true
    attach_function :jaclip_ann_free, [:pointer], :void
    attach_function :jaclip_ann_kind_of, [:pointer], :int
    attach_function :jaclip_ann_set_params, %i[pointer size_t size_t size_t], :status
    attach_function :jaclip_ann_search, %i[out out pointer pointer size_t], :status, blocking: true

    # Raises the Error subclass of a non-zero status with this thread's last-error detail.
    def self.check(status)
      return if status.zero?

      raise Jaclip::ERRORS_BY_STATUS.fetch(status, Jaclip::Error).new(jaclip_last_error.dup.force_encoding(Encoding::UTF_8), status)
    end
  end
end
