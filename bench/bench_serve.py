#!/usr/bin/env python3
"""`jaclip serve` under load on loopback: text search over a 100k-row index and image embedding, with
N = 1, 4 and 16 concurrent clients (keep-alive connections) for a fixed number of requests each.

usage: bench_serve.py --model MODEL [--rows 100000] [--text-requests 96] [--image-requests 24]
                      [--threads 1] [--out FILE.json]

Reports p50/p99 latency, throughput and errors per N, the server's RSS before and after, and as the
reference measured in the same run the same work done by the library in this process (Python binding:
encode_texts + Index.search, encode_images), so the HTTP overhead reads as a ratio. Bounded: a fixed
request count, every socket with a timeout, 127.0.0.1 only; the server is stopped with SIGTERM.
"""
import argparse
import http.client
import io
import json
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import jaclip  # noqa: E402

QUERIES = ["犬の写真", "海辺の夕日", "赤い車", "桜の木の下で遊ぶ子供", "雪山", "猫", "東京の夜景", "ラーメン"]


def cpu():
    model, flags = platform.processor(), set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and model in ("", "x86_64"):
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    have = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} cores, {' '.join(have)}"


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, p):
    return float(np.percentile(np.asarray(values) * 1000, p))


def run_clients(port, n_clients, total, make_request):
    """n_clients threads share `total` requests; each keeps one connection. Returns latencies, errors, s."""
    lock = threading.Lock()
    state = {"next": 0, "errors": 0, "lat": []}

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= total:
                break
            method, path, body, headers = make_request(i)
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                ok = r.status == 200 and data.startswith(b"{")
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            dt = time.perf_counter() - t0
            with lock:
                state["lat"].append(dt)
                state["errors"] += not ok
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return state["lat"], state["errors"], time.perf_counter() - t0


def measure_server(args, index_path, max_batch, vectors, photo, with_images):
    """One server run (--max-batch max_batch): rows of results, (RSS before, after), exit status. Image
    embeds are not batched, so they run only with_images."""
    server = subprocess.Popen([args.cli, "serve", "--model", args.model, "--index", f"gen={index_path}",
                               "--port", "0", "--threads", str(args.threads), "--max-requests", "64",
                               "--timeout", "300", "--max-batch", str(max_batch)],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        search = lambda i: ("POST", "/v1/search",  # noqa: E731
                            json.dumps({"text": QUERIES[i % len(QUERIES)] + str(i), "k": 10}).encode(),
                            {"Content-Type": "application/json"})
        by_vector = lambda i: ("POST", "/v1/search",  # noqa: E731  (no model call: the HTTP layer + scan)
                               json.dumps({"embedding": vectors[i % 64].tolist(), "k": 10}).encode(),
                               {"Content-Type": "application/json"})
        embed = lambda i: ("POST", "/v1/embed/image", photo, {"Content-Type": "image/jpeg"})  # noqa: E731
        run_clients(port, 1, 2, search)  # warm-up
        run_clients(port, 1, 1, embed)
        rss_before = rss_mib(server.pid)
        rows = []
        for kind, make, total in [("vector search", by_vector, 2 * args.text_requests),
                                  ("text search", search, args.text_requests),
                                  ("image embed", embed, args.image_requests if with_images else 0)]:
            if total == 0:
                continue
            for n in [int(x) for x in args.clients.split(",")]:
                lat, errors, wall = run_clients(port, n, total, make)
                rows.append({"kind": kind, "max_batch": max_batch, "clients": n, "requests": total, "errors": errors,
                             "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "per_s": total / wall})
        rss_after = rss_mib(server.pid)
    finally:
        server.terminate()
        rc = server.wait(timeout=60)
    return rows, (rss_before, rss_after), rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--cli", default=os.environ.get("JACLIP_CLI", os.path.join(ROOT, "build", "jaclip")))
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--text-requests", type=int, default=96)
    ap.add_argument("--image-requests", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1, help="the server's --threads")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--max-batch", default="16,1", help="the server's --max-batch, one run each (1: off)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench-serve"))
    ap.add_argument("--out")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)

    model = jaclip.Model(args.model)
    dim = model.embedding_dim
    index_path = os.path.join(args.work, f"generated-{args.rows}x{dim}.jaclip-index")
    if not os.path.exists(index_path):
        rng = np.random.default_rng(0)
        index = jaclip.Index(dim)
        for first in range(0, args.rows, 20000):
            n = min(20000, args.rows - first)
            index.add(rng.standard_normal((n, dim), dtype=np.float32), [f"generated/{first + i:06d}" for i in range(n)])
        index.save(index_path)
        index.close()
    index = jaclip.Index.load(index_path, mmap=True)
    rng = np.random.default_rng(1)
    photo = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(photo, format="JPEG", quality=90)
    photo = photo.getvalue()

    # The reference: the same work in this process, one call at a time.
    ref = {}
    model.encode_texts([QUERIES[0]])
    t = []
    for i in range(16):
        t0 = time.perf_counter()
        index.search(model.encode_texts([QUERIES[i % len(QUERIES)]]), 10)
        t.append(time.perf_counter() - t0)
    ref["text_search_p50_ms"] = pct(t, 50)
    vectors = rng.standard_normal((64, dim), dtype=np.float32)
    t = []
    for i in range(32):
        t0 = time.perf_counter()
        index.search(vectors[i:i + 1], 10)
        t.append(time.perf_counter() - t0)
    ref["embedding_search_p50_ms"] = pct(t, 50)
    t = []
    for i in range(6):
        t0 = time.perf_counter()
        model.encode_images([photo])
        t.append(time.perf_counter() - t0)
    ref["image_embed_p50_ms"] = pct(t, 50)
    model.close()
    index.close()

    rows, rss = [], {}
    for i, max_batch in enumerate(int(x) for x in args.max_batch.split(",")):
        server_rows, rss[max_batch], rc = measure_server(args, index_path, max_batch, vectors, photo, i == 0)
        rows += server_rows
        if rc != 0:
            break
    report = {"cpu": cpu(), "model": os.path.basename(args.model), "index_rows": args.rows, "dim": dim,
              "server_threads": args.threads, "reference_in_process": ref, "results": rows,
              "rss_mib": {str(b): {"before": r[0], "after": r[1]} for b, r in rss.items()}, "server_exit": rc}
    print(f"CPU: {report['cpu']}")
    print(f"model {report['model']} (dim {dim}), index {args.rows} rows, server --threads {args.threads}")
    print(f"reference (library in-process, one at a time): text search {ref['text_search_p50_ms']:.1f} ms, "
          f"vector search {ref['embedding_search_p50_ms']:.1f} ms, image embed {ref['image_embed_p50_ms']:.1f} ms")
    print(f"{'work':12} {'batch':>5} {'N':>3} {'reqs':>5} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} {'p50/ref':>8}")
    for r in rows:
        base = ref[r["kind"].replace(" ", "_").replace("vector", "embedding") + "_p50_ms"]
        print(f"{r['kind']:12} {r['max_batch']:>5} {r['clients']:>3} {r['requests']:>5} {r['errors']:>4} {r['p50_ms']:>8.1f} "
              f"{r['p99_ms']:>8.1f} {r['per_s']:>7.1f} {r['p50_ms'] / base:>8.2f}")
    for b, (before, after) in rss.items():
        print(f"server RSS (--max-batch {b}): {before:.0f} MiB before, {after:.0f} MiB after")
    print(f"exit status {rc}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if rc == 0 and all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
