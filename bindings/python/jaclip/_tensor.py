"""Moving arrays across the C boundary: Python/numpy → jaclip_tensor (copied in), jaclip_tensor → numpy
array or Tensor (copied out, C tensor freed at once)."""
import array
import ctypes
import numbers
import operator

from . import _errors
from ._lib import P, check, lib

try:  # numpy is used when present, never required
    import numpy as np
except ImportError:
    np = None

FLOAT32, INT64, UINT8 = 0, 1, 2
_NAMES = {FLOAT32: "float32", INT64: "int64", UINT8: "uint8"}
_CODES = {v: k for k, v in _NAMES.items()}
_FORMATS = {FLOAT32: "f", INT64: "q", UINT8: "B"}


class Tensor:
    """A result when numpy is not installed: dtype ("float32", "int64", "uint8"), shape, tolist(),
    tobytes() (raw little-endian row-major bytes), len(), iteration over rows and t[i]."""

    __slots__ = ("dtype", "shape", "_data")

    def __init__(self, data, dtype, shape):
        if dtype not in _CODES:
            raise ValueError(f"unknown dtype {dtype!r}")
        itemsize = array.array(_FORMATS[_CODES[dtype]]).itemsize
        count = 1
        for d in shape:
            count *= d
        if len(data) != count * itemsize:
            raise ValueError(f"{len(data)} bytes do not make a {dtype} tensor of shape {tuple(shape)}")
        self._data, self.dtype, self.shape = bytes(data), dtype, tuple(shape)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def nbytes(self):
        return len(self._data)

    def tobytes(self):
        return self._data

    def __len__(self):
        return self.shape[0]

    def _flat(self):
        values = array.array(_FORMATS[_CODES[self.dtype]])
        values.frombytes(self._data)
        return values

    def tolist(self):
        flat = self._flat().tolist()

        def nest(offset, dims):
            if len(dims) == 1:
                return flat[offset:offset + dims[0]]
            step = 1
            for d in dims[1:]:
                step *= d
            return [nest(offset + i * step, dims[1:]) for i in range(dims[0])]

        return nest(0, self.shape)

    def __getitem__(self, index):
        rows = self.shape[0]
        if index < 0:
            index += rows
        if not 0 <= index < rows:
            raise IndexError(f"index {index} is out of range for {rows} rows")
        if self.ndim == 1:
            return self._flat()[index]
        size = len(self._data) // rows
        return Tensor(self._data[index * size:(index + 1) * size], self.dtype, self.shape[1:])

    def __iter__(self):
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        return f"jaclip.Tensor(dtype={self.dtype}, shape={self.shape})"


def _shape_and_flat(obj):
    """Shape and flat values of a nested list/tuple; ragged nesting is a ShapeError."""
    if not isinstance(obj, (list, tuple)):
        return (), [obj]
    if not obj:
        return (0,), []
    parts = [_shape_and_flat(x) for x in obj]
    inner = parts[0][0]
    if any(s != inner for s, _ in parts):
        raise _errors.ShapeError("ragged nested sequence: rows differ in shape", 6)
    flat = []
    for _, f in parts:
        flat.extend(f)
    return (len(obj),) + inner, flat


def _raw(obj, dtype):
    """(dtype code, shape, object whose buffer holds the elements) for obj."""
    if isinstance(obj, Tensor):
        return _CODES[obj.dtype], obj.shape, obj.tobytes()
    if isinstance(obj, (str, bytes, bytearray)):
        raise TypeError(f"expected a nested list, a jaclip.Tensor or an array, not {type(obj).__name__}")
    if np is not None and not isinstance(obj, (list, tuple)):
        arr = np.asarray(obj)
        code = _CODES.get(arr.dtype.name) if arr.dtype.isnative or arr.dtype.itemsize == 1 else None
        if code is None:
            raise _errors.ShapeError(f"dtype {arr.dtype} is not one of float32, int64, uint8", 6)
        return code, arr.shape, np.ascontiguousarray(arr)
    if not isinstance(obj, (list, tuple)):
        raise TypeError(f"expected a nested list, a jaclip.Tensor or an array, not {type(obj).__name__}")
    shape, flat = _shape_and_flat(obj)
    if dtype != FLOAT32 and any(not isinstance(v, numbers.Integral) for v in flat):
        raise TypeError(f"{_NAMES[dtype]} values must be integers")
    return dtype, shape, array.array(_FORMATS[dtype], flat)


def to_c(obj, dtype=FLOAT32):
    """A new jaclip_tensor (caller frees) holding a copy of obj. Lists take `dtype`; arrays and
    Tensors keep their own, so a wrong one reaches the C API and is refused there."""
    code, shape, buf = _raw(obj, dtype)
    # jaclip_tensor_create copies numel * itemsize bytes and cannot see the buffer's end: a Tensor whose
    # shape was reassigned, or a buffer that does not hold the shape, must not reach it.
    numel = 1
    for d in shape:
        numel *= operator.index(d)
    itemsize = array.array(_FORMATS[code]).itemsize if code in _FORMATS else 0
    nbytes = buf.nbytes if np is not None and isinstance(buf, np.ndarray) else memoryview(buf).nbytes
    if code in _FORMATS and all(d >= 0 for d in shape) and nbytes != numel * itemsize:
        raise _errors.ShapeError(f"{nbytes} bytes do not hold a {_NAMES[code]} tensor of shape {tuple(shape)}", 6)
    dims = (ctypes.c_int64 * max(len(shape), 1))(*shape)
    out = P()
    if np is not None and isinstance(buf, np.ndarray):
        data = buf.ctypes.data_as(P) if buf.size else None
    else:
        raw = memoryview(buf).tobytes()
        keep = ctypes.create_string_buffer(raw, len(raw))  # alive until the copy below is made
        data = ctypes.cast(keep, P) if raw else None
    check(lib.jaclip_tensor_create(ctypes.byref(out), code, len(shape), dims, data))
    return out


class CTensors:
    """Context manager giving C tensors for several inputs and freeing them all on exit."""

    def __init__(self, *pairs):
        self._pairs, self._made = pairs, []

    def __enter__(self):
        try:
            for obj, dtype in self._pairs:
                self._made.append(to_c(obj, dtype))
        except BaseException:
            self.__exit__()
            raise
        return self._made

    def __exit__(self, *exc):
        for t in self._made:
            lib.jaclip_tensor_free(t)
        self._made = []


def take(ptr):
    """Copies a C tensor out (numpy array if numpy is importable, else Tensor) and frees it."""
    try:
        code = lib.jaclip_tensor_dtype(ptr)
        shape = tuple(lib.jaclip_tensor_dim(ptr, i) for i in range(lib.jaclip_tensor_ndim(ptr)))
        nbytes = lib.jaclip_tensor_nbytes(ptr)
        if np is not None:
            result = np.empty(shape, dtype=_NAMES[code])
            if nbytes:
                ctypes.memmove(result.ctypes.data, lib.jaclip_tensor_data(ptr), nbytes)
            return result
        data = ctypes.string_at(lib.jaclip_tensor_data(ptr), nbytes) if nbytes else b""
        return Tensor(data, _NAMES[code], shape)
    finally:
        lib.jaclip_tensor_free(ptr)


def call(fn, *args):
    """Runs fn(&out, *args), raising on failure, and returns the result copied out."""
    out = P()
    check(fn(ctypes.byref(out), *args))
    return take(out)
