#!/usr/bin/env python3
"""The fp32/bf16 levers of issue 23, each alone, on the very TorchScript module libjaclip runs (make
bench-levers): thread layouts (libtorch intra-op threads x OpenBLAS's pool) and fp32 products through
oneDNN with prepacked weights (torch.jit.freeze + optimize_for_inference). Interleaved rounds; each
ratio is the median of per-round ratios to today's fp32 layout (1 torch thread over OpenBLAS's pool of
one thread per core). Prints a markdown table with the load average.

    levers.py MODEL.jaclip [ROUNDS]
"""
import ctypes
import os
import statistics
import sys
import time

import torch


def main():
    path, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
    blas = ctypes.CDLL("libblas.so.3")  # Debian's alternative: OpenBLAS, the one libtorch uses
    cores = os.cpu_count()
    methods = ["encode_image", "encode_text"]
    plain = torch.jit.load(path).eval()
    onednn = torch.jit.optimize_for_inference(torch.jit.freeze(plain, preserved_attrs=methods), other_methods=methods)
    bf16 = torch.jit.load(path).eval()
    bf16.to(torch.bfloat16)
    img = torch.randn(1, 3, 224, 224)
    ids, mask = torch.randint(5, 32000, (64, 8)), torch.ones(64, 8, dtype=torch.long)
    cfgs = {f"fp32: 1 torch thread x OpenBLAS {cores} (today)": (plain, 1, cores),
            "fp32: 1 torch thread x OpenBLAS 1": (plain, 1, 1),
            "fp32: oneDNN prepacked (optimize_for_inference), 1 thread": (onednn, 1, 1),
            f"fp32: oneDNN prepacked, {cores} torch threads, OpenBLAS 1": (onednn, cores, 1),
            f"bf16: {cores} torch threads (today)": (bf16, cores, 1),
            "bf16: 1 torch thread": (bf16, 1, 1)}

    def run(mod, torch_threads, blas_threads):
        torch.set_num_threads(torch_threads)
        blas.openblas_set_num_threads(blas_threads)
        t0 = time.perf_counter()
        mod.encode_image(img)
        t1 = time.perf_counter()
        mod.encode_text(ids, mask)
        return t1 - t0, time.perf_counter() - t1

    load = os.getloadavg()
    with torch.inference_mode():
        for c in cfgs.values():
            run(*c)
        res = {k: [] for k in cfgs}
        for _ in range(rounds):
            for k, c in cfgs.items():
                res[k].append(run(*c))
    base = next(iter(res.values()))
    print(f"Load average {'/'.join(f'{x:.2f}' for x in load)} before, "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())} after; {rounds} interleaved rounds, medians.\n")
    print("| layout | s per image (b1) | s per 64 texts | images gain | texts gain |\n|---|---|---|---|---|")
    for k, v in res.items():
        gi = statistics.median(b[0] / x[0] for b, x in zip(base, v))
        gt = statistics.median(b[1] / x[1] for b, x in zip(base, v))
        print(f"| {k} | {statistics.median(x[0] for x in v):.3f} | {statistics.median(x[1] for x in v):.3f} | "
              f"{gi:.2f}× | {gt:.2f}× |")


if __name__ == "__main__":
    main()
