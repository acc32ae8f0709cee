"""Shared fixtures: the library through ctypes, the generated test models, the data folders."""
import ctypes
import os
import sys

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(__file__))

LIBRARY = os.environ.get("JACLIP_LIBRARY", os.path.join(ROOT, "build", "libjaclip.so"))
SHARED_DATA = os.path.abspath(os.environ.get("JACLIP_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")))
PROJECT_DATA = os.path.join(ROOT, "data")
TINY_MODEL = os.path.abspath(os.environ.get("JACLIP_TEST_MODEL", os.path.join(ROOT, "build", "models", "tiny.jaclip")))
TINY_MODEL_BF16 = os.path.abspath(os.environ.get("JACLIP_TEST_MODEL_BF16",
                                                 os.path.join(ROOT, "build", "models", "tiny-bf16.jaclip")))
TINY_MODEL_INT8 = os.path.abspath(os.environ.get("JACLIP_TEST_MODEL_INT8",
                                                 os.path.join(ROOT, "build", "models", "tiny-int8.jaclip")))
TINY_CHECKPOINT = os.path.abspath(os.environ.get("JACLIP_TEST_CHECKPOINT",
                                                 os.path.join(ROOT, "build", "models", "tiny-checkpoint")))
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")

FLOAT32, INT64, UINT8 = 0, 1, 2
_NP = {FLOAT32: np.float32, INT64: np.int64, UINT8: np.uint8}
P = ctypes.c_void_p


def _declare(lib):
    sigs = {
        "jaclip_last_error": (ctypes.c_char_p, []),
        "jaclip_status_string": (ctypes.c_char_p, [ctypes.c_int]),
        "jaclip_tensor_create": (ctypes.c_int, [ctypes.POINTER(P), ctypes.c_int, ctypes.c_size_t,
                                                ctypes.POINTER(ctypes.c_int64), P]),
        "jaclip_tensor_free": (None, [P]),
        "jaclip_tensor_dtype": (ctypes.c_int, [P]),
        "jaclip_tensor_ndim": (ctypes.c_size_t, [P]),
        "jaclip_tensor_dim": (ctypes.c_int64, [P, ctypes.c_size_t]),
        "jaclip_tensor_data": (P, [P]),
        "jaclip_tensor_nbytes": (ctypes.c_size_t, [P]),
        "jaclip_model_load": (ctypes.c_int, [ctypes.POINTER(P), ctypes.c_char_p, P]),
        "jaclip_model_free": (None, [P]),
        "jaclip_model_options_create": (ctypes.c_int, [ctypes.POINTER(P)]),
        "jaclip_model_options_free": (None, [P]),
        "jaclip_model_options_set_precision": (ctypes.c_int, [P, ctypes.c_int]),
        "jaclip_model_options_set_device": (ctypes.c_int, [P, ctypes.c_char_p]),
        "jaclip_model_embedding_dim": (ctypes.c_int64, [P]),
        "jaclip_model_encode_pixel_values": (ctypes.c_int, [ctypes.POINTER(P), P, P]),
        "jaclip_model_encode_token_ids": (ctypes.c_int, [ctypes.POINTER(P), P, P, P]),
        "jaclip_model_encode_texts": (ctypes.c_int, [ctypes.POINTER(P), P, ctypes.POINTER(ctypes.c_char_p),
                                                     ctypes.POINTER(ctypes.c_size_t), ctypes.c_size_t]),
        "jaclip_model_encode_image_files": (ctypes.c_int, [ctypes.POINTER(P), P, ctypes.POINTER(ctypes.c_char_p),
                                                           ctypes.c_size_t]),
        "jaclip_model_tokenizer": (P, [P]),
        "jaclip_tokenizer_encode": (ctypes.c_int, [ctypes.POINTER(P), ctypes.POINTER(P), P,
                                                   ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t),
                                                   ctypes.c_size_t, ctypes.c_size_t]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


class Lib:
    """Thin helpers over the C API for tests; the real Python binding lives in bindings/python."""

    def __init__(self, path):
        self.c = _declare(ctypes.CDLL(path))

    def error(self):
        return self.c.jaclip_last_error().decode()

    def check(self, status, what="call"):
        if status != 0:
            raise RuntimeError(f"{what}: status {status}: {self.error()}")

    def tensor(self, array):
        array = np.ascontiguousarray(array)
        dtype = {np.dtype(np.float32): FLOAT32, np.dtype(np.int64): INT64, np.dtype(np.uint8): UINT8}[array.dtype]
        shape = (ctypes.c_int64 * array.ndim)(*array.shape)
        out = P()
        self.check(self.c.jaclip_tensor_create(ctypes.byref(out), dtype, array.ndim, shape,
                                               array.ctypes.data_as(P)), "tensor_create")
        return out

    def to_numpy(self, t, free=True):
        dtype = self.c.jaclip_tensor_dtype(t)
        shape = tuple(self.c.jaclip_tensor_dim(t, i) for i in range(self.c.jaclip_tensor_ndim(t)))
        n = self.c.jaclip_tensor_nbytes(t)
        buf = ctypes.string_at(self.c.jaclip_tensor_data(t), n) if n else b""
        arr = np.frombuffer(buf, dtype=_NP[dtype]).reshape(shape).copy()
        if free:
            self.c.jaclip_tensor_free(t)
        return arr

    def load_model(self, path, precision=0):
        opts = P()
        self.check(self.c.jaclip_model_options_create(ctypes.byref(opts)))
        self.check(self.c.jaclip_model_options_set_precision(opts, precision))
        model = P()
        status = self.c.jaclip_model_load(ctypes.byref(model), path.encode(), opts)
        self.c.jaclip_model_options_free(opts)
        self.check(status, f"load {path}")
        return model

    def encode_pixels(self, model, pixels):
        t, out = self.tensor(pixels.astype(np.float32)), P()
        status = self.c.jaclip_model_encode_pixel_values(ctypes.byref(out), model, t)
        self.c.jaclip_tensor_free(t)
        self.check(status, "encode_pixel_values")
        return self.to_numpy(out)

    def encode_ids(self, model, ids, mask):
        ti, tm, out = self.tensor(ids.astype(np.int64)), self.tensor(mask.astype(np.int64)), P()
        status = self.c.jaclip_model_encode_token_ids(ctypes.byref(out), model, ti, tm)
        self.c.jaclip_tensor_free(ti)
        self.c.jaclip_tensor_free(tm)
        self.check(status, "encode_token_ids")
        return self.to_numpy(out)

    def encode_texts(self, model, texts):
        raw = [t.encode() for t in texts]
        arr = (ctypes.c_char_p * len(raw))(*raw)
        out = P()
        self.check(self.c.jaclip_model_encode_texts(ctypes.byref(out), model, arr, None, len(raw)), "encode_texts")
        return self.to_numpy(out)

    def tokenize(self, model, texts, max_length=77):
        raw = [t.encode() for t in texts]
        arr = (ctypes.c_char_p * len(raw))(*raw)
        ids, mask = P(), P()
        tok = self.c.jaclip_model_tokenizer(model)
        self.check(self.c.jaclip_tokenizer_encode(ctypes.byref(ids), ctypes.byref(mask), tok, arr, None,
                                                  len(raw), max_length), "tokenizer_encode")
        return self.to_numpy(ids), self.to_numpy(mask)


@pytest.fixture(scope="session", autouse=True)
def one_thread_model_first():
    """JACLIP_TEST_ONE_THREAD_FIRST=1 (make test-python-order): before any test, load a model with
    num_threads=1 and encode, which sizes OpenBLAS's process-wide pool to one thread, so every later
    comparison with another process runs under other thread settings than that process."""
    if os.environ.get("JACLIP_TEST_ONE_THREAD_FIRST") != "1":
        yield
        return
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
    import jaclip
    with jaclip.Model(TINY_MODEL, num_threads=1) as m:
        m.encode_texts(["犬"])
    yield


@pytest.fixture(scope="session")
def lib():
    if not os.path.exists(LIBRARY):
        pytest.fail(f"{LIBRARY} is missing: run `make` first")
    return Lib(LIBRARY)


@pytest.fixture(scope="session")
def tiny_model(lib):
    model = lib.load_model(TINY_MODEL)
    yield model
    lib.c.jaclip_model_free(model)


def assert_features_close(ours, theirs, what="features"):
    """Features computed in another process, thread count or BLAS configuration: equal within 1e-5 of the
    largest |feature| (docs/determinism.md; measured differences are ~1e-6). Bytes are compared only where
    the library guarantees them: one process with unchanged thread settings, or fresh processes with the
    same settings."""
    ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
    assert ours.shape == theirs.shape, f"{what}: shapes {ours.shape} and {theirs.shape}"
    bound = 1e-5 * max(1.0, float(np.abs(theirs).max(initial=0.0)))
    diff = float(np.abs(ours - theirs).max(initial=0.0))
    assert diff <= bound, f"{what}: max difference {diff:.3g} > {bound:.3g}"


def cosine_rows(a, b):
    """Cosine of each row of a with the same row of b, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def cpuinfo_flags():
    """The CPU's flags as /proc/cpuinfo names them, read independently of the library's cpuid detection;
    a pytest skip where there are none (not x86 Linux)."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    pytest.skip("/proc/cpuinfo has no flags line (not x86 Linux)")


def shared_path(*parts):
    """A path under ../shared/data, or a pytest skip that names what is missing."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} is missing (../shared/data is not beside this checkout)")
    return path
