#!/usr/bin/env python3
"""Exact top-k search over an index of random embeddings, against a brute-force numpy reference.

usage: bench_index.py [--rows 100000] [--dim 512] [--queries 64] [-k 10] [--library build/libjaclip.so]
       bench_index.py --storage [--rows 100000] ...

--storage compares float32 and float16 rows on clustered vectors (1000 Gaussian clusters on the unit
sphere, queries drawn near them, as photo embeddings cluster): add time, resident memory of the index,
latency of one query at a time, and recall@10 of float16 against exact float32.

Prints ms per query for one query at a time and for all queries in one call, for an index built in
memory and the same index saved and loaded with JACLIP_INDEX_MMAP, and whether the indices equal numpy's
(float32 matmul of L2-normalised rows, stable argsort) and how far the scores are from them.
"""
import argparse
import ctypes
import os
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
P = ctypes.c_void_p


def load(path):
    lib = ctypes.CDLL(path)
    sigs = {
        "jaclip_last_error": (ctypes.c_char_p, []),
        "jaclip_tensor_create": (ctypes.c_int, [ctypes.POINTER(P), ctypes.c_int, ctypes.c_size_t,
                                                ctypes.POINTER(ctypes.c_int64), P]),
        "jaclip_tensor_free": (None, [P]),
        "jaclip_tensor_data": (P, [P]),
        "jaclip_tensor_dim": (ctypes.c_int64, [P, ctypes.c_size_t]),
        "jaclip_index_create": (ctypes.c_int, [ctypes.POINTER(P), ctypes.c_size_t]),
        "jaclip_index_free": (None, [P]),
        "jaclip_index_add": (ctypes.c_int, [P, P, ctypes.POINTER(ctypes.c_char_p)]),
        "jaclip_index_save": (ctypes.c_int, [P, ctypes.c_char_p]),
        "jaclip_index_load": (ctypes.c_int, [ctypes.POINTER(P), ctypes.c_char_p, ctypes.c_uint32]),
        "jaclip_index_search": (ctypes.c_int, [ctypes.POINTER(P), ctypes.POINTER(P), P, P, ctypes.c_size_t]),
        "jaclip_index_set_row_format": (ctypes.c_int, [P, ctypes.c_uint32]),
    }
    for name, (res, args) in sigs.items():
        getattr(lib, name).restype, getattr(lib, name).argtypes = res, args
    return lib


def check(lib, status, what):
    if status != 0:
        raise SystemExit(f"{what}: status {status}: {lib.jaclip_last_error().decode()}")


def tensor(lib, a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    shape = (ctypes.c_int64 * 2)(*a.shape)
    out = P()
    check(lib, lib.jaclip_tensor_create(ctypes.byref(out), 0, 2, shape, a.ctypes.data_as(P)), "tensor_create")
    return out


def to_numpy(lib, t, dtype):
    shape = (lib.jaclip_tensor_dim(t, 0), lib.jaclip_tensor_dim(t, 1))
    n = int(np.prod(shape))
    ptr = lib.jaclip_tensor_data(t)
    arr = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_byte)), (n * np.dtype(dtype).itemsize,))
    out = arr.view(dtype).reshape(shape).copy() if n else np.zeros(shape, dtype)
    lib.jaclip_tensor_free(t)
    return out


def search(lib, index, queries, k):
    q = tensor(lib, queries)
    idx, val = P(), P()
    check(lib, lib.jaclip_index_search(ctypes.byref(idx), ctypes.byref(val), index, q, k), "search")
    lib.jaclip_tensor_free(q)
    return to_numpy(lib, idx, np.int64), to_numpy(lib, val, np.float32)


def reference(rows, queries, k):
    r = rows / np.linalg.norm(rows.astype(np.float64), axis=1, keepdims=True).astype(np.float32)
    q = queries / np.linalg.norm(queries.astype(np.float64), axis=1, keepdims=True).astype(np.float32)
    scores = q @ r.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def measure(lib, index, queries, k, label, ref_idx, ref_val):
    search(lib, index, queries[:1], k)  # warm the page cache and the thread start-up path
    t0 = time.perf_counter()
    parts = [search(lib, index, queries[i:i + 1], k) for i in range(len(queries))]
    one = (time.perf_counter() - t0) * 1000 / len(queries)
    t0 = time.perf_counter()
    idx, val = search(lib, index, queries, k)
    batch = (time.perf_counter() - t0) * 1000 / len(queries)
    same_one = all(np.array_equal(p[0][0], ref_idx[i]) for i, p in enumerate(parts))
    same = np.array_equal(idx, ref_idx) and same_one
    diff = float(np.max(np.abs(val - ref_val)))
    print(f"{label:<22} {one:8.2f} ms/query (one per call)  {batch:8.2f} ms/query ({len(queries)} per call)  "
          f"indices identical to numpy: {'yes' if same else 'NO'}  max |score - numpy| {diff:.2e}")
    return same


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_model():
    with open("/proc/cpuinfo") as f:
        info = f.read()
    name = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
    wanted = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16") if f in flags]
    return f"{name} ({', '.join(wanted)})"


def clustered(rng, n, dim, centers):
    labels = rng.integers(0, len(centers), n)
    x = centers[labels] + rng.standard_normal((n, dim), dtype=np.float32) * np.float32(1 / np.sqrt(dim))
    return x


def storage(lib, args):
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((1000, args.dim), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    rows = clustered(rng, args.rows, args.dim, centers)
    queries = clustered(rng, args.queries, args.dim, centers)
    labels = (ctypes.c_char_p * args.rows)(*[f"img/{i:07d}.jpg".encode() for i in range(args.rows)])
    print(f"{args.rows} x {args.dim} clustered rows, {args.queries} queries one at a time, k={args.k}; "
          f"{cpu_model()}, {os.cpu_count()} CPUs")
    results = {}
    for fmt, name in ((0, "float32"), (1, "float16")):
        index = P()
        check(lib, lib.jaclip_index_create(ctypes.byref(index), args.dim), "create")
        check(lib, lib.jaclip_index_set_row_format(index, fmt), "set_row_format")
        t = tensor(lib, rows)
        before = rss_mib()
        t0 = time.perf_counter()
        check(lib, lib.jaclip_index_add(index, t, labels), "add")
        add_s = time.perf_counter() - t0
        mem = rss_mib() - before
        lib.jaclip_tensor_free(t)
        search(lib, index, queries[:1], args.k)
        t0 = time.perf_counter()
        found = np.concatenate([search(lib, index, queries[i:i + 1], args.k)[0] for i in range(len(queries))])
        ms = (time.perf_counter() - t0) * 1000 / len(queries)
        results[name] = (found, add_s, mem, ms)
        lib.jaclip_index_free(index)
    exact = results["float32"][0]
    for name, (found, add_s, mem, ms) in results.items():
        recall = np.mean([len(set(found[i]) & set(exact[i])) / args.k for i in range(len(exact))])
        print(f"{name:<8} build {add_s:6.2f} s  index memory {mem:7.0f} MiB  {ms:7.2f} ms/query  "
              f"recall@{args.k} vs float32 exact {recall:.4f}")
    f32, f16 = results["float32"][3], results["float16"][3]
    print(f"float16 / float32: {f16 / f32:.2f}x query time, "
          f"{results['float16'][2] / max(results['float32'][2], 1e-9):.2f}x memory")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--storage", action="store_true", help="float32 against float16 rows on clustered vectors")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--library", default=os.environ.get("JACLIP_LIBRARY", os.path.join(ROOT, "build", "libjaclip.so")))
    args = ap.parse_args()
    lib = load(args.library)
    if args.storage:
        storage(lib, args)
        return
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    ref_idx, ref_val = reference(rows, queries, args.k)

    index = P()
    check(lib, lib.jaclip_index_create(ctypes.byref(index), args.dim), "create")
    labels = (ctypes.c_char_p * args.rows)(*[f"img/{i:06d}.jpg".encode() for i in range(args.rows)])
    t = tensor(lib, rows)
    t0 = time.perf_counter()
    check(lib, lib.jaclip_index_add(index, t, labels), "add")
    add_ms = (time.perf_counter() - t0) * 1000
    lib.jaclip_tensor_free(t)
    print(f"{args.rows} x {args.dim} rows, {args.queries} queries, k={args.k}, {os.cpu_count()} CPUs; "
          f"add {add_ms:.0f} ms")
    ok = measure(lib, index, queries, args.k, "in memory", ref_idx, ref_val)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.jci").encode()
        t0 = time.perf_counter()
        check(lib, lib.jaclip_index_save(index, path), "save")
        save_ms = (time.perf_counter() - t0) * 1000
        for flags, name in ((1, "mmap"), (0, "read")):
            loaded = P()
            t0 = time.perf_counter()
            check(lib, lib.jaclip_index_load(ctypes.byref(loaded), path, flags), "load")
            load_ms = (time.perf_counter() - t0) * 1000
            print(f"save {save_ms:.0f} ms, load ({name}, checksums verified) {load_ms:.0f} ms")
            ok &= measure(lib, loaded, queries, args.k, f"loaded ({name})", ref_idx, ref_val)
            lib.jaclip_index_free(loaded)
    lib.jaclip_index_free(index)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
