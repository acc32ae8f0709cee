#!/usr/bin/env python3
"""jaclip.distributed against `jaclip index build`, measured in one run on the same generated JPEGs.

usage: bench_distributed.py --model full.jaclip [--images 32] [--partition-size 8] [--cli build/jaclip]

Reports images/s of the embedding itself (model loading and cluster start-up excluded on both sides:
`jaclip index build` times its own loop, jaclip.distributed reports its set-up time separately) for
  - jaclip index build, 1 thread and all cores (the single-process reference),
  - a LocalCluster of 1 worker with 1 thread (num_threads 1),
  - a LocalCluster of 2 workers with 1 thread each (num_threads 1),
and the per-image overhead of the distributed path (scheduling, shard files, checksums) against the
reference at the same core count, with the CPU model and flags.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))


def cpu_description():
    info = open("/proc/cpuinfo").read()
    model = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
    flags = set(re.search(r"^flags\s*:\s*(.*)$", info, re.M).group(1).split())
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model.group(1) if model else 'unknown CPU'}, {os.cpu_count()} cores, flags: {' '.join(simd)}"


def make_images(folder, count):
    """Photo-sized JPEGs (640x480) with smooth content plus noise, so decoding costs what a photo does."""
    from PIL import Image
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:480, 0:640]
    for i in range(count):
        base = np.stack([(x * (i + 1)) % 256, (y * 3 + i * 20) % 256, ((x + y) // 3) % 256], axis=-1)
        noise = rng.integers(-20, 21, base.shape)
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, f"photo{i:04d}.jpg"), quality=90)


def index_build(cli, model, folder, out, threads, batch):
    """Seconds of jaclip index build's own loop (it prints them), model load excluded."""
    if os.path.exists(out):
        os.unlink(out)
    r = subprocess.run([cli, "index", "build", "--model", model, "--threads", str(threads), "--batch", str(batch),
                        folder, "-o", out], capture_output=True, text=True, check=True)
    return float(re.search(r"in ([0-9.]+) s", r.stderr.strip().splitlines()[-1]).group(1))


def distributed_run(jd, model, folder, out, workers, partition_size, batch):
    """Seconds of the embedding on a warm LocalCluster, its set-up (plugin, model loads) excluded."""
    from distributed import Client
    shutil.rmtree(out, ignore_errors=True)
    with jd.local_cluster(workers=workers, worker_threads=1) as cluster, Client(cluster) as client:
        summary = jd.embed([folder], out, model, client=client, partition_size=partition_size, batch_size=batch,
                           num_threads=1, progress=False)
    assert summary["embedded"] == summary["partitions"] and summary["reused"] == 0
    return summary["seconds"] - summary["setup_seconds"], summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--partition-size", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "jaclip"))
    args = ap.parse_args()
    from jaclip import distributed as jd
    import jaclip

    n = args.images
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="jaclip-bench-dist-") as tmp:
        folder = os.path.join(tmp, "photos")
        os.makedirs(folder)
        make_images(folder, n)
        ref1 = index_build(args.cli, args.model, folder, os.path.join(tmp, "ref1.jci"), 1, args.batch)
        ref_all = index_build(args.cli, args.model, folder, os.path.join(tmp, "ref.jci"), os.cpu_count(), args.batch)
        one, s1 = distributed_run(jd, args.model, folder, os.path.join(tmp, "d1"), 1, args.partition_size, args.batch)
        two, s2 = distributed_run(jd, args.model, folder, os.path.join(tmp, "d2"), 2, args.partition_size, args.batch)
        # The same numbers either way (the bench would be meaningless otherwise).
        jd.merge(os.path.join(tmp, "d2"), os.path.join(tmp, "d2.jci"))
        with jaclip.Index.load(os.path.join(tmp, "ref1.jci")) as a, jaclip.Index.load(os.path.join(tmp, "d2.jci")) as b:
            same_labels = a.labels() == b.labels()
            diff = float(np.abs(a.embeddings() - b.embeddings()).max())

    rows = [
        ("jaclip index build, 1 thread", ref1),
        (f"jaclip index build, {os.cpu_count()} threads", ref_all),
        ("jaclip.distributed, 1 worker x 1 thread", one),
        ("jaclip.distributed, 2 workers x 1 thread", two),
    ]
    print(f"CPU: {cpu_description()}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"(above 0 means other programs shared the cores)")
    print(f"model: {args.model}; {n} JPEGs 640x480; batch {args.batch}; partitions of {args.partition_size}; "
          f"set-up (cluster + model loads) excluded: {s1['setup_seconds']:.1f} s (1 worker), "
          f"{s2['setup_seconds']:.1f} s (2 workers)")
    print("| run | seconds | images/s | vs index build, 1 thread |")
    print("|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {n / seconds:.2f} | {ref1 / seconds:.2f}x |")
    print(f"2 workers / 1 worker: {one / two:.2f}x images/s")
    print(f"per-image overhead of the distributed path at 1 thread: {(one - ref1) / n * 1000:+.0f} ms "
          f"({(one / ref1 - 1) * 100:+.1f}%)")
    print(f"2 workers x 1 thread vs one process with {os.cpu_count()} threads: {ref_all / two:.2f}x images/s")
    print(f"agreement: labels equal {same_labels}, max |embedding difference| {diff:.2e}")
    return 0 if same_labels and diff <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
