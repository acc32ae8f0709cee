#!/usr/bin/env python3
"""Immich's Smart Search job against `jaclip serve`: images/s through POST /predict (CLIP visual, one
image per request, as Immich sends them) with 1 and 4 concurrent clients, against the same images
encoded in this process through the Python binding one at a time, in one run.

usage: bench_immich.py --model MODEL [--images 24] [--size 1440x1080] [--threads 1] [--out FILE.json]

The images are generated JPEG previews of Immich's default preview size (1440 px on the long side).
Each client keeps one connection and sends the form Immich's server builds (entries + image part).
Bounded: a fixed request count, every socket with a timeout, 127.0.0.1 only; the server is stopped
with SIGTERM.
"""
import argparse
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jaclip  # noqa: E402
from bench_serve import cpu, pct, rss_mib  # noqa: E402

ENTRIES = json.dumps({"clip": {"visual": {"modelName": "ViT-B-16__openai"}}})


def form(image):
    boundary = "----formdata-undici-0123456789"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"entries\"\r\n\r\n{ENTRIES}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"blob\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def run_clients(port, n_clients, images):
    lock = threading.Lock()
    state = {"next": 0, "errors": 0, "lat": []}

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= len(images):
                break
            body, ctype = form(images[i])
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
                r = conn.getresponse()
                ok = r.status == 200 and b'"imageWidth"' in r.read()
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            with lock:
                state["lat"].append(time.perf_counter() - t0)
                state["errors"] += not ok
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return state["lat"], state["errors"], time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--cli", default=os.environ.get("JACLIP_CLI", os.path.join(ROOT, "build", "jaclip")))
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--size", default="1440x1080")
    ap.add_argument("--threads", default="1", help="the server's --threads")
    ap.add_argument("--out")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    rng = np.random.default_rng(26)
    images = []
    for i in range(args.images):
        # Smooth colour fields with noise: compress like photos, not like white noise.
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * (i + 1) / w) * 255, (y / h) * 255, np.full((h, w), 37 * i % 256)], -1)
        pixels = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=80)
        images.append(buf.getvalue())
    load_before = os.getloadavg()
    print(f"CPU: {cpu()}; load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(f"model: {args.model}; {len(images)} JPEG previews {w}x{h}, {np.mean([len(b) for b in images]) / 1024:.0f} KiB"
          " on average")

    with jaclip.Model(args.model) as m:
        m.encode_images(images[:2])  # warm-up
        t0 = time.perf_counter()
        for b in images:
            m.encode_images([b])
        ref_s = time.perf_counter() - t0
    ref = len(images) / ref_s
    print(f"in-process (binding, one image a call): {ref:.2f} images/s, {1000 * ref_s / len(images):.1f} ms each")

    proc = subprocess.Popen([args.cli, "serve", "--model", args.model, "--port", "0", "--threads", args.threads,
                             "--timeout", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rows = []
    try:
        line = proc.stdout.readline()
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        run_clients(port, 1, images[:2])  # warm-up
        rss_before = rss_mib(proc.pid)
        for n in (1, 4):
            lat, errors, seconds = run_clients(port, n, images)
            rate = len(images) / seconds
            rows.append({"clients": n, "requests": len(images), "errors": errors, "p50_ms": pct(lat, 50),
                         "p99_ms": pct(lat, 99), "images_per_s": rate, "ratio_to_in_process": rate / ref})
        rss_after = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=330)
    load_after = os.getloadavg()
    print("| clients | requests | errors | p50 ms | p99 ms | images/s | / in-process |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['clients']} | {r['requests']} | {r['errors']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['images_per_s']:.2f} | {r['ratio_to_in_process']:.2f} |")
    print(f"server RSS {rss_before:.0f} -> {rss_after:.0f} MiB; load average after: {load_after[0]:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"cpu": cpu(), "model": args.model, "load_before": load_before, "load_after": load_after,
                       "in_process_images_per_s": ref, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
