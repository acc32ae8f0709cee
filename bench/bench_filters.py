#!/usr/bin/env python3
"""Filter-then-rank search (jaclip_index_search_with) against the plain exact search of the same index,
measured in the same run: ms per query (one query per call) for no filter, a folder holding 1% of the
rows, a file type holding a third, an offset of 1000 (page 51 of 20) and a score threshold. Rows are
random unit vectors with labels spread over 100 folders and 3 extensions.

usage: bench_filters.py [--rows 100000] [--dim 512] [--queries 20]
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("JACLIP_LIBRARY", os.path.join(ROOT, "build", "libjaclip.so"))
import jaclip  # noqa: E402


def per_query_ms(ix, queries, **filters):
    ix.search(queries[:1], 20, **filters)  # warm
    start = time.perf_counter()
    for q in queries:
        ix.search(q[None, :], 20, **filters)
    return (time.perf_counter() - start) * 1000 / len(queries)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    labels = [f"/photos/{i % 100:02d}/img{i}.{('jpg', 'png', 'heic')[i % 3]}" for i in range(args.rows)]
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"{args.rows} rows x {args.dim}, {args.queries} queries, k 20; CPU {cpu}, {os.cpu_count()} cores, "
          f"load average {' '.join(load)} (shared machine)")
    with jaclip.Index(args.dim) as ix:
        ix.add(rows, labels)
        base = per_query_ms(ix, queries)
        print(f"{'no filter':<28} {base:8.2f} ms/query  1.00")
        for name, kw in (("folder (1% of rows)", {"folder": "/photos/07"}),
                         ("type png (33%)", {"types": ["png"]}),
                         ("offset 1000", {"offset": 1000}),
                         ("threshold 0.1", {"threshold": 0.1})):
            ms = per_query_ms(ix, queries, **kw)
            print(f"{name:<28} {ms:8.2f} ms/query  {ms / base:.2f}")


if __name__ == "__main__":
    main()
