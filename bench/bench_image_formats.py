#!/usr/bin/python3
"""Decode speed per image format: libjaclip (ctypes) against PIL 9.4 (+ torchvision for the full
preprocessing), in one run, on the same files. The photo is data/dog.jpeg (3375x2250) scaled to
2000x1333 and saved as WebP (lossy q80, lossless), GIF (adaptive palette), BMP (24-bit), TIFF (raw, LZW)
and, when heif-enc is installed, HEIC (x265 q80) and AVIF (aom q60). PIL 9.4 cannot read HEIF: those
rows have no peer. Each figure is the best of --rounds timings of --repeat calls, one image at a time.
Usage: bench/bench_image_formats.py [--repeat N] [--rounds N]. Not part of the tests."""
import argparse
import ctypes
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image

# The ctypes table and the reference preprocessing are bench_image.py's (same folder).
from bench_image import P, REFERENCE, ROOT, jaclip_preprocess, load_library

PHOTO = os.path.join(ROOT, os.environ.get("JACLIP_PROJECT_DATA", "data"), "dog.jpeg")


def jaclip_decode(c, path):
    image = P()
    if c.jaclip_image_load(ctypes.byref(image), path.encode(), 0, 0) != 0:
        raise RuntimeError(c.jaclip_last_error().decode())
    return image


def jaclip_full(c, path):
    return jaclip_preprocess(c, jaclip_decode(c, path))


def pil_decode(path):
    with Image.open(path) as image:
        image.load()


def pil_full(path):
    with Image.open(path) as image:
        return REFERENCE(image).numpy()


def rate(fn, repeat, rounds):
    fn()  # warm up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, time.perf_counter() - start)
    return repeat / best


def make_files(folder):
    photo = Image.open(PHOTO).convert("RGB").resize((2000, 1333), Image.BILINEAR)
    files = []

    def save(name, fmt, **options):
        path = os.path.join(folder, name)
        photo_for = photo.convert("P", palette=Image.Palette.ADAPTIVE) if fmt == "GIF" else photo
        photo_for.save(path, fmt, **options)
        files.append((name, path, True))

    save("WebP lossy q80", "WEBP", quality=80)
    save("WebP lossless", "WEBP", lossless=True)
    save("GIF adaptive palette", "GIF")
    save("BMP 24-bit", "BMP")
    save("TIFF uncompressed", "TIFF")
    save("TIFF LZW", "TIFF", compression="tiff_lzw")
    save("JPEG q90 (for comparison)", "JPEG", quality=90)
    if shutil.which("heif-enc"):
        png = os.path.join(folder, "photo.png")
        photo.save(png)
        for name, args in [("HEIC x265 q80", ["-q", "80"]), ("AVIF aom q60", ["-q", "60", "-A"])]:
            path = os.path.join(folder, name)
            subprocess.run(["heif-enc", *args, "-o", path, png], check=True, capture_output=True)
            files.append((name, path, False))
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    c = load_library()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| file (2000x1333) | size | decode: libjaclip | PIL | ratio | decode + preprocess: libjaclip | "
          "PIL + torchvision | ratio | identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, pil_reads in make_files(tmp):
            size = f"{os.path.getsize(path) / 1e6:.2f} MB"

            def ours_decode():
                c.jaclip_image_free(jaclip_decode(c, path))

            ours_d = rate(ours_decode, args.repeat, args.rounds)
            ours_f = rate(lambda: jaclip_full(c, path), args.repeat, args.rounds)
            if not pil_reads:
                print(f"| {name} | {size} | {ours_d:.1f}/s | — | — | {ours_f:.1f}/s | — | — | (no PIL reader) |")
                continue
            same = np.array_equal(jaclip_full(c, path), pil_full(path))
            theirs_d = rate(lambda: pil_decode(path), args.repeat, args.rounds)
            theirs_f = rate(lambda: pil_full(path), args.repeat, args.rounds)
            print(f"| {name} | {size} | {ours_d:.1f}/s | {theirs_d:.1f}/s | {ours_d / theirs_d:.2f}x | "
                  f"{ours_f:.1f}/s | {theirs_f:.1f}/s | {ours_f / theirs_f:.2f}x | {same} |")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
