#!/usr/bin/env python3
"""Repeated against novel inputs, per precision: one text or one image at a time, the same input every
call against a new one every call (what a server or an indexer sees). int8 on Debian's libtorch runs
dynamically quantized Linear layers on oneDNN, whose primitives are keyed on more than the shape, so a
benchmark that repeats its inputs can flatter int8; fp32 and bf16 should not care. Prints a markdown
table; the fp32 model is the reference measured in the same run."""
import argparse
import io
import os
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import jaclip  # noqa: E402

WORDS = ["犬", "猫", "海", "山", "車", "花", "空", "雪", "夜", "朝", "川", "森"]


def median_ms(fn, inputs, warm=2):
    times = []
    for x in inputs:
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[warm:]) * 1e3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="model files; the first is the reference")
    ap.add_argument("--texts", type=int, default=24)
    ap.add_argument("--images", type=int, default=10)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(WORDS, 4)) + "の写真" for _ in range(args.texts)]
    images = []
    for _ in range(args.images):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
        images.append(buf.getvalue())
    print(f"CPU features (libjaclip): {jaclip.cpu_features()}")
    print("| model (runs) | text repeated ms | text novel ms | image repeated ms | image novel ms |"
          " novel image / fp32 |")
    print("|---|---|---|---|---|---|")
    ref = None
    for path in args.model:
        with jaclip.Model(path) as m:
            text = lambda x: m.encode_texts([x])  # noqa: E731
            image = lambda x: m.encode_images([x])  # noqa: E731
            row = (median_ms(text, [texts[0]] * len(texts)), median_ms(text, texts),
                   median_ms(image, [images[0]] * len(images)), median_ms(image, images))
            ref = ref or row
            print(f"| {os.path.basename(path)} ({m.precision}) | {row[0]:.1f} | {row[1]:.1f} | {row[2]:.1f} | "
                  f"{row[3]:.1f} | {row[3] / ref[3]:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
