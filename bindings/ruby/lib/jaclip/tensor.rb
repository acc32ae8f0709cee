module Jaclip
  # Arrays across the C boundary: nested Arrays → jaclip_tensor (copied in); jaclip_tensor → nested
  # Arrays of Floats (or Integers), copied out and freed at once.
  module Tensor
    FLOAT32 = 0
    INT64 = 1
    UINT8 = 2
    module_function

    # [shape, flat values] of a nested Array; ragged nesting is a ShapeError.
    def shape_and_flat(obj)
      return [[], [obj]] unless obj.is_a?(Array)
      return [[0], []] if obj.empty?

      parts = obj.map { |x| shape_and_flat(x) }
      inner = parts.first.first
      raise ShapeError.new("ragged nested array: rows differ in shape", 6) unless parts.all? { |s, _| s == inner }

      [[obj.size] + inner, parts.flat_map(&:last)]
    end

    # A new jaclip_tensor of dtype from a nested Array; the caller frees it.
    def to_c(obj, dtype)
      raise TypeError, "expected a nested Array, not #{obj.class}" unless obj.is_a?(Array)

      shape, flat = shape_and_flat(obj)
      dims = FFI::MemoryPointer.new(:int64, [shape.size, 1].max)
      dims.put_array_of_int64(0, shape)
      data = nil
      unless flat.empty?
        if dtype == FLOAT32
          raise TypeError, "float32 values must be Numeric" unless flat.all? { |v| v.is_a?(Numeric) }

          data = FFI::MemoryPointer.new(:float, flat.size)
          data.put_array_of_float(0, flat)
        else
          raise TypeError, "int64 values must be Integers" unless flat.all? { |v| v.is_a?(Integer) }

          data = FFI::MemoryPointer.new(:int64, flat.size)
          data.put_array_of_int64(0, flat)
        end
      end
      out = FFI::MemoryPointer.new(:pointer)
      Native.check(Native.jaclip_tensor_create(out, dtype, shape.size, dims, data))
      out.read_pointer
    end

    # Yields C tensors made from [obj, dtype] pairs and frees them all afterwards.
    def with_c(*pairs)
      made = []
      pairs.each { |obj, dtype| made << to_c(obj, dtype) }
      yield(*made)
    ensure
      made.each { |t| Native.jaclip_tensor_free(t) }
    end

    # Copies a C tensor out as nested Arrays and frees it.
    def take(ptr)
      shape = Array.new(Native.jaclip_tensor_ndim(ptr)) { |i| Native.jaclip_tensor_dim(ptr, i) }
      n = Native.jaclip_tensor_numel(ptr)
      data = Native.jaclip_tensor_data(ptr)
      flat = if n.zero? then []
             else
               case Native.jaclip_tensor_dtype(ptr)
               when FLOAT32 then data.get_array_of_float(0, n)
               when INT64 then data.get_array_of_int64(0, n)
               else data.get_array_of_uint8(0, n)
               end
             end
      nest(flat, shape)
    ensure
      Native.jaclip_tensor_free(ptr)
    end

    def nest(flat, shape)
      return flat if shape.size <= 1

      step = shape[1..].reduce(1, :*)
      Array.new(shape[0]) { |i| nest(flat[i * step, step] || [], shape[1..]) }
    end

    # fn(&out, *args) → nested Arrays.
    def call(fn, *args)
      out = FFI::MemoryPointer.new(:pointer)
      Native.check(Native.send(fn, out, *args))
      take(out.read_pointer)
    end
  end
end
