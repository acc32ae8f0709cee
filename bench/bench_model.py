#!/usr/bin/env python3
"""libjaclip against the reference pipeline, in one run (make bench).

Reference: PIL + torchvision preprocessing, an eager fp32 PyTorch forward of the same checkpoint
written from its Hugging Face keys (test/python/reference_cloob.py, the same function rinna's
package computes), texts tokenised by the Python reference tokenizer and padded to 77, torch using
every core. libjaclip: bench/jaclip_bench (the C API) in each precision, in a process of its own so
its memory is its own. Prints a report; --write-docs also writes docs/benchmarks.md.
"""
import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "python"))
from reference_cloob import ReferenceCloob  # noqa: E402

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
TRANSFORM = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(224),
                       lambda im: im.convert("RGB"), T.ToTensor(), T.Normalize(MEAN, STD)])
PHOTO_SIZES = [(3375, 2250), (1920, 1080), (1280, 960), (1024, 768), (800, 600), (640, 480), (2048, 1536),
               (1600, 1200)]


def make_photos(out_dir):
    """Eight JPEG photos of common sizes, re-encoded from the reference photo."""
    os.makedirs(out_dir, exist_ok=True)
    src = Image.open(os.path.join(ROOT, "data", "dog.jpeg")).convert("RGB")
    paths = []
    for i, size in enumerate(PHOTO_SIZES):
        path = os.path.join(out_dir, f"photo{i}-{size[0]}x{size[1]}.jpg")
        if not os.path.exists(path):
            src.resize(size, Image.BILINEAR).save(path, quality=90)
        paths.append(path)
    return paths


def short_labels(shared_data, n=64):
    """Short Japanese phrases cut from an Aozora Bunko text at punctuation."""
    path = os.path.join(shared_data, "text", "lemon.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    seen = []
    for piece in re.split(r"[、。「」『』（）\s《》｜［］＃]+", text):
        if 2 <= len(piece) <= 6 and piece not in seen:
            seen.append(piece)
        if len(seen) == n:
            return seen
    raise SystemExit(f"only {len(seen)} labels in {path}")


def rate(count, fn, repeat):
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return count * repeat / (time.perf_counter() - start)


def reference_run(checkpoint, photos, labels, repeat):
    import test_tokenizer_parity as tok  # the Python reference tokenizer (sentencepiece + rinna's steps)

    torch.set_num_threads(os.cpu_count())
    start = time.perf_counter()
    model = ReferenceCloob(checkpoint)
    load_s = time.perf_counter() - start
    tokenizer = tok.Reference(os.path.join(ROOT, "data", "rinna-japanese-spiece.model"))

    def images(paths):
        return model.image_features(torch.stack([TRANSFORM(Image.open(p)) for p in paths]))

    def texts(batch):
        rows, masks = zip(*(tokenizer.frame(tokenizer.tokenize(t)) for t in batch))
        return model.text_features(torch.tensor(rows), torch.tensor(masks))

    def trimmed_texts(batch):
        rows, masks = zip(*(tokenizer.frame(tokenizer.tokenize(t)) for t in batch))
        length = max(sum(m) for m in masks)
        return model.text_features(torch.tensor(rows)[:, :length], torch.tensor(masks)[:, :length])

    with torch.inference_mode():
        for _ in range(2):  # warm-up, as for libjaclip
            images(photos[:1]), texts(labels[:1])
        result = {
            "load_s": load_s,
            "image_b1_per_s": rate(len(photos), lambda: [images([p]) for p in photos], repeat),
            "image_batch_per_s": rate(len(photos), lambda: images(photos), repeat),
            "text_b1_per_s": rate(len(labels), lambda: [texts([t]) for t in labels], repeat),
            "text_batch_per_s": rate(len(labels), lambda: texts(labels), repeat),
            "text_trimmed_per_s": rate(len(labels), lambda: trimmed_texts(labels), repeat),
        }
        image_features = images(photos).numpy()
        text_features = texts(labels).numpy()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    return result, image_features, text_features


def jaclip_run(bench_bin, model_file, precision, photos, labels_file, repeat, prefix, library_dir, threads=None):
    env = dict(os.environ, LD_LIBRARY_PATH=library_dir)
    if threads:
        env["JACLIP_BENCH_THREADS"] = str(threads)
    out = subprocess.run([bench_bin, model_file, precision, str(repeat), prefix, labels_file, *photos],
                         capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout)
    result["image_features"] = np.fromfile(prefix + "images.f32", dtype=np.float32).reshape(len(photos), -1)
    result["text_features"] = np.fromfile(prefix + "texts.f32", dtype=np.float32).reshape(result["text_batch"], -1)
    return result


def levers(args, photos, labels, labels_file, runs, ref):
    """Each speed lever alone, measured in this run."""
    lines = ["", "### Levers, one at a time", "",
             "| lever | without | with | gain |", "|---|---|---|---|"]
    f32 = runs["libjaclip fp32"]
    one = jaclip_run(args.bench_bin, args.model, "fp32", photos, labels_file, args.repeat,
                     os.path.join(args.work, "fp32-1thread-"), args.library_dir, threads=1)
    lines.append(f"| cores: num_threads 1 → 0 (all {os.cpu_count()}), images/s b8 | "
                 f"{one['image_batch_per_s']:.2f} | {f32['image_batch_per_s']:.2f} | "
                 f"{f32['image_batch_per_s'] / one['image_batch_per_s']:.2f}× |")
    lines.append(f"| cores: num_threads 1 → 0 (all {os.cpu_count()}), texts/s b64 | {one['text_batch_per_s']:.1f} | "
                 f"{f32['text_batch_per_s']:.1f} | {f32['text_batch_per_s'] / one['text_batch_per_s']:.2f}× |")
    lines.append(f"| batching: images b1 → b8 (libjaclip fp32) | {f32['image_b1_per_s']:.2f} | "
                 f"{f32['image_batch_per_s']:.2f} | {f32['image_batch_per_s'] / f32['image_b1_per_s']:.2f}× |")
    lines.append(f"| batching: texts b1 → b64 (libjaclip fp32) | {f32['text_b1_per_s']:.1f} | "
                 f"{f32['text_batch_per_s']:.1f} | {f32['text_batch_per_s'] / f32['text_b1_per_s']:.2f}× |")
    lines.append(f"| trimming texts to the longest in the batch instead of 77 (reference eager model, b64) | "
                 f"{ref['text_batch_per_s']:.1f} | {ref['text_trimmed_per_s']:.1f} | "
                 f"{ref['text_trimmed_per_s'] / ref['text_batch_per_s']:.2f}× |")
    for name in ("libjaclip bf16 file", "libjaclip int8 file"):
        r = runs.get(name)
        if not r:
            continue
        what = f"{name.split()[1]} file (runs {r['model_precision']})"
        lines.append(f"| {what}, images/s b8 | {f32['image_batch_per_s']:.2f} | "
                     f"{r['image_batch_per_s']:.2f} | {r['image_batch_per_s'] / f32['image_batch_per_s']:.2f}× |")
        lines.append(f"| {what}, texts/s b64 | {f32['text_batch_per_s']:.1f} | {r['text_batch_per_s']:.1f} | "
                     f"{r['text_batch_per_s'] / f32['text_batch_per_s']:.2f}× |")
    q8 = runs.get("libjaclip int8 file")
    if q8:
        # int8 runs oneDNN on libtorch's pool: its thread layout measured the same way as fp32's.
        q1 = jaclip_run(args.bench_bin, args.model_int8, "default", photos, labels_file, args.repeat,
                        os.path.join(args.work, "int8-1thread-"), args.library_dir, threads=1)
        lines.append(f"| int8: num_threads 1 → 0 (all {os.cpu_count()}), images/s b8 | "
                     f"{q1['image_batch_per_s']:.2f} | {q8['image_batch_per_s']:.2f} | "
                     f"{q8['image_batch_per_s'] / q1['image_batch_per_s']:.2f}× |")
    lines += torchscript_levers(args.model)
    return lines


def torchscript_levers(model_file):
    """The very module libjaclip runs, timed here: its thread layout, then freezing / optimising."""
    methods = ["encode_image", "encode_text"]
    lines = []
    plain = torch.jit.load(model_file).eval()
    one_image, texts = torch.randn(1, 3, 224, 224), torch.randint(5, 32000, (64, 8))
    mask = torch.ones(64, 8, dtype=torch.long)
    layout = {}
    with torch.inference_mode():
        for threads in (os.cpu_count(), 1):
            torch.set_num_threads(threads)
            for _ in range(2):
                plain.encode_image(one_image), plain.encode_text(texts, mask)
            start = time.perf_counter()
            for _ in range(5):
                plain.encode_image(one_image)
            image_s = (time.perf_counter() - start) / 5
            start = time.perf_counter()
            for _ in range(10):
                plain.encode_text(texts, mask)
            layout[threads] = (image_s, (time.perf_counter() - start) / 10)
    many, one = layout[os.cpu_count()], layout[1]
    lines.append(f"| fp32 thread layout: {os.cpu_count()} torch threads over OpenBLAS's pool → 1 torch thread "
                 f"over it (s per image b1 / per 64 texts) | {many[0]:.3f} / {many[1]:.3f} | {one[0]:.3f} / {one[1]:.3f} | "
                 f"{many[0] / one[0]:.2f}× / {many[1] / one[1]:.2f}× |")
    torch.set_num_threads(1)  # the layout libjaclip uses for fp32
    variants = {"as saved": plain, "frozen": torch.jit.freeze(plain, preserved_attrs=methods)}
    try:
        variants["frozen + optimize_for_inference"] = torch.jit.optimize_for_inference(
            torch.jit.freeze(plain, preserved_attrs=methods), other_methods=methods)
    except Exception as e:  # noqa: BLE001 - report whatever the pass refuses
        print(f"optimize_for_inference failed: {e}")
    pixels = torch.randn(8, 3, 224, 224)
    ids, mask = torch.randint(5, 32000, (64, 8)), torch.ones(64, 8, dtype=torch.long)
    times = {}
    with torch.inference_mode():
        for name, module in variants.items():
            for _ in range(2):
                module.encode_image(pixels), module.encode_text(ids, mask)
        for name, module in variants.items():
            start = time.perf_counter()
            for _ in range(3):
                module.encode_image(pixels)
            image_s = (time.perf_counter() - start) / 3
            start = time.perf_counter()
            for _ in range(10):
                module.encode_text(ids, mask)
            times[name] = (image_s, (time.perf_counter() - start) / 10)
    base = times["as saved"]
    return lines + [f"| TorchScript {name} (fp32, s per batch of 8 images / 64 texts) | {base[0]:.3f} / {base[1]:.3f} | "
            f"{t[0]:.3f} / {t[1]:.3f} | {base[0] / t[0]:.2f}× / {base[1] / t[1]:.2f}× |"
            for name, t in times.items() if name != "as saved"]


def agreement(ours, ref):
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    rel = np.abs(ours - ref).max() / np.abs(ref).max()
    return float(cos.min()), float(rel)


FEATURES = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX512-VNNI"),
            ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16"))


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def machine(library_features):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    flags = cpu_flags()
    have = ", ".join(f"{label} {'yes' if flag in flags else 'no'}" for flag, label in FEATURES)
    return (f"{cpu}, {os.cpu_count()} cores ({have}; libjaclip detects: {library_features or 'none'}), "
            f"{platform.system()} {platform.release()}, torch {torch.__version__} (Debian), "
            f"{os.cpu_count()} threads for both sides; load average {' / '.join(map(str, os.getloadavg()))} "
            f"when the report was written (other work on the machine slows both sides, not alike)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--model", required=True, help="fp32 model file")
    p.add_argument("--model-bf16", required=True, help="bf16 model file")
    p.add_argument("--model-int8", help="int8 model file (jaclip-convert --dtype int8)")
    p.add_argument("--bench-bin", required=True)
    p.add_argument("--library-dir", required=True)
    p.add_argument("--shared-data", default=os.path.join(ROOT, "..", "shared", "data"))
    p.add_argument("--work", default=os.path.join(ROOT, "build", "bench"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args()

    photos = make_photos(os.path.join(args.work, "images"))
    labels = short_labels(args.shared_data)
    labels_file = os.path.join(args.work, "labels.txt")
    with open(labels_file, "w", encoding="utf-8") as f:
        f.write("\n".join(labels) + "\n")

    flags = cpu_flags()
    native_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    plan = [("libjaclip fp32", args.model, "fp32"), ("libjaclip bf16 file", args.model_bf16, "default")]
    if native_bf16:
        plan.append(("libjaclip bf16 forced", args.model, "bf16"))
    if args.model_int8:
        plan.append(("libjaclip int8 file", args.model_int8, "default"))
    runs = {}
    for name, model_file, precision in plan:
        print(f"running {name} ...", flush=True)
        runs[name] = jaclip_run(args.bench_bin, model_file, precision, photos, labels_file, args.repeat,
                                os.path.join(args.work, "-".join(name.split()[1:]) + "-"), args.library_dir)
    print("running the reference ...", flush=True)
    ref, ref_images, ref_texts = reference_run(args.checkpoint, photos, labels, args.repeat)

    weights_mb = os.path.getsize(args.model) / 1e6
    f32 = runs["libjaclip fp32"]
    lines = [f"Machine: {machine(f32['cpu_features'])}.", "",
             f"Images: {len(photos)} JPEG photos from 640×480 to 3375×2250, end to end from files. "
             f"Texts: {len(labels)} short labels from lemon.txt (2–6 characters). "
             f"Each figure is the mean over {args.repeat} passes after 2 warm-up passes.", "",
             "| | load s | images/s b1 | images/s b8 | texts/s b1 | texts/s b64 | peak RSS MB |",
             "|---|---|---|---|---|---|---|",
             f"| reference (PIL + torchvision + eager fp32, padded to 77) | {ref['load_s']:.2f} | "
             f"{ref['image_b1_per_s']:.2f} | {ref['image_batch_per_s']:.2f} | {ref['text_b1_per_s']:.1f} | "
             f"{ref['text_batch_per_s']:.1f} | {ref['peak_rss_mb']:.0f} |"]
    for name, r in runs.items():
        lines.append(f"| {name} (runs {r['model_precision']}) | {r['load_s']:.2f} | {r['image_b1_per_s']:.2f} | {r['image_batch_per_s']:.2f} | "
                     f"{r['text_b1_per_s']:.1f} | {r['text_batch_per_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "| ratio to the reference | images b1 | images b8 | texts b1 | texts b64 | image cosine min | "
              "text cosine min | max abs diff / max abs |", "|---|---|---|---|---|---|---|---|"]
    checks = []
    for name, r in runs.items():
        ic, irel = agreement(r["image_features"], ref_images)
        tc, trel = agreement(r["text_features"], ref_texts)
        r.update(image_cos=ic, image_rel=irel, text_cos=tc, text_rel=trel)
        lines.append(f"| {name} | {r['image_b1_per_s'] / ref['image_b1_per_s']:.2f}× | "
                     f"{r['image_batch_per_s'] / ref['image_batch_per_s']:.2f}× | "
                     f"{r['text_b1_per_s'] / ref['text_b1_per_s']:.2f}× | "
                     f"{r['text_batch_per_s'] / ref['text_batch_per_s']:.2f}× | {ic:.6f} | {tc:.6f} | "
                     f"{max(irel, trel):.2e} |")
    b16 = runs["libjaclip bf16 file"]
    lines += ["", "Which precision ran, and why (jaclip_model_precision_reason):", ""]
    lines += [f"- {name}: {r['precision_reason']}" for name, r in runs.items()]
    checks = [
        ("fp32 images b8 ≥ 1.2× reference", f32["image_batch_per_s"] / ref["image_batch_per_s"], 1.2),
        ("fp32 texts b64 ≥ 5× reference", f32["text_batch_per_s"] / ref["text_batch_per_s"], 5.0),
    ]
    if native_bf16:
        checks.append(("native bf16: bf16 file images b8 ≥ 2× fp32",
                       b16["image_batch_per_s"] / f32["image_batch_per_s"], 2.0))
    else:
        checks.append(("no native bf16: bf16 file images b8 ≥ 0.9× fp32",
                       b16["image_batch_per_s"] / f32["image_batch_per_s"], 0.9))
    q8 = runs.get("libjaclip int8 file")
    if q8:
        checks.append(("int8 file images b8 ≥ 1.1× fp32 (to adopt int8)",
                       q8["image_batch_per_s"] / f32["image_batch_per_s"], 1.1))
    lines += ["", "| criterion | measured | target | |", "|---|---|---|---|"]
    for what, value, target in checks:
        lines.append(f"| {what} | {value:.2f}× | {target}× | {'met' if value >= target else 'NOT met'} |")
    accuracy = [("fp32 features: max abs diff ≤ 1e-4 × max |feature|", max(f32["image_rel"], f32["text_rel"]), 1e-4,
                 lambda v, t: v <= t),
                ("bf16 file: image and text cosine to the reference ≥ 0.99", min(b16["image_cos"], b16["text_cos"]),
                 0.99, lambda v, t: v >= t),
                ("RSS after load ≤ 1.3× fp32 weight bytes", f32["rss_loaded_mb"] / weights_mb, 1.3, lambda v, t: v <= t),
                ("RSS after encoding ≤ 1.3× fp32 weight bytes", f32["rss_after_mb"] / weights_mb, 1.3,
                 lambda v, t: v <= t),
                ("bf16 file / fp32 file", os.path.getsize(args.model_bf16) / os.path.getsize(args.model), 0.55,
                 lambda v, t: v <= t)]
    if q8:
        accuracy.append(("int8 file: image and text cosine to the reference ≥ 0.99",
                         min(q8["image_cos"], q8["text_cos"]), 0.99, lambda v, t: v >= t))
    for what, value, target, ok in accuracy:
        lines.append(f"| {what} | {value:.6g} | {target} | {'met' if ok(value, target) else 'NOT met'} |")
    lines += ["", f"fp32 model file {weights_mb:.0f} MB, bf16 {os.path.getsize(args.model_bf16) / 1e6:.0f} MB; "
              f"libjaclip fp32 RSS {f32['rss_loaded_mb']:.0f} MB after load, {f32['rss_after_mb']:.0f} MB after "
              f"encoding (peak {f32['peak_rss_mb']:.0f} MB during the batch of 8)."]
    lines += levers(args, photos, labels, labels_file, runs, ref)
    report = "\n".join(lines)
    print(report)
    if args.write_docs:
        write_docs(report)


def cpu_info_field(name):
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":")[0].strip() == name), "")
    except OSError:
        return ""


def cpu_kind():
    """The section of docs/benchmarks.md this CPU's figures go to: one table per kind of CPU. The AMX
    Xeon keeps the marker it was first written under; the AMD kinds are told apart by family (26 is
    Zen 5; 25 is Zen 3 without AVX-512, Zen 4 with it), since their flags alone overlap."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "avx512-bf16"
    if cpu_info_field("vendor_id") == "AuthenticAMD" and cpu_info_field("cpu family") == "26":
        return "zen5"
    if "avx512_bf16" in flags:
        return "avx512-bf16-no-amx"
    return "avx512" if "avx512f" in flags else "avx2"


def write_docs(report):
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    begin, end = f"<!-- bench:begin:{cpu_kind()} -->", f"<!-- bench:end:{cpu_kind()} -->"
    if begin not in text:
        text += f"\n## Measured on another CPU kind ({cpu_kind()})\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + begin + "\n" + report + "\n" + end + tail)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
