#!/usr/bin/env python3
"""libjaclip against ONNX Runtime on the same CPU, in one run (make bench-peers).

Peers: ONNX Runtime (onnxruntime-node, graphs exported from the reference model at opset 17 by
export_onnx.py) in fp32 and in int8 as quantize_dynamic makes it; libjaclip fp32, bf16, int8 and int8-weights through
its Python binding. Each engine is a long-lived process of its own; the rounds are interleaved (every
task, every engine, in a rotating order, round after round), and each figure is the median over
rounds, each ratio the median of the per-round ratios (paired), so load from other processes hits
both sides of a ratio alike. Inputs are the same for every engine; single queries are new to every
engine (each query text is sent once). Prints a report; --write-docs writes it into docs/benchmarks.md.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))


class Worker:
    """A peer in a process of its own: JSON request lines in, JSON answer lines out."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.hello = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.name}: worker exited (status {self.proc.wait()})")
        return json.loads(line)

    def ask(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()["s"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def jaclip_worker(model_path, precision, threads):
    """The libjaclip side: the same requests as ort_worker.js, through the Python binding (ctypes)."""
    import jaclip

    model = jaclip.Model(model_path, num_threads=threads, precision=None if precision == "default" else precision)
    cache = {}

    def load(path, dtype, shape):
        if path not in cache:
            cache[path] = np.fromfile(path, dtype=dtype).reshape(shape)
        return cache[path]

    print(json.dumps({"ready": True, "precision": model.precision, "reason": model.precision_reason}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "images":
            pixels = load(req["pixels"], np.float32, (req["n"], 3, req["size"], req["size"]))
            t0 = time.perf_counter()
            out = model.encode_image_pixels(pixels)
        elif op == "files":
            t0 = time.perf_counter()
            out = model.encode_images(req["paths"])
        else:  # texts: strings, tokenised by the library as a caller's would be
            t0 = time.perf_counter()
            out = model.encode_texts(req["texts"])
        s = time.perf_counter() - t0
        if req.get("save"):
            np.asarray(out, np.float32).tofile(req["save"])
        print(json.dumps({"s": s}), flush=True)


def pil_preprocess(paths, size, mean, std):
    """Immich's CLIP preprocessing in Python (PIL decode, bilinear resize of the short side, centre crop,
    normalise with numpy): what feeds ONNX Runtime end to end."""
    from PIL import Image

    out = np.empty((len(paths), 3, size, size), np.float32)
    for i, p in enumerate(paths):
        im = Image.open(p).convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
        left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
        a = np.asarray(im.crop((left, top, left + size, top + size)), np.float32) / 255.0
        out[i] = ((a - mean) / std).transpose(2, 0, 1)
    return out


def query_texts(shared_data, skip, n):
    """n distinct short phrases (3-16 characters) from Aozora Bunko texts, none of the labels."""
    seen, skip = [], set(skip)
    for name in ("lemon.txt", "wagahaiwa_nekodearu.txt"):
        path = os.path.join(shared_data, "text", name)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for piece in re.split(r"[、。「」『』（）\s《》｜［］＃]+", f.read()):
                if 3 <= len(piece) <= 16 and piece not in skip and piece not in seen:
                    seen.append(piece)
                    if len(seen) == n:
                        return seen
    raise SystemExit(f"only {len(seen)} distinct queries in {shared_data}/text")


def lscpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU", set()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown CPU").strip()
    family = fields.get("CPU family", "?").strip()
    return f"{name} (family {family}, {os.cpu_count()} cores)", set(fields.get("Flags", "").split())


def cos_rows(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--onnx-dir", required=True)
    p.add_argument("--ort-modules", required=True, help="folder holding node_modules/onnxruntime-node")
    p.add_argument("--model", required=True)
    p.add_argument("--model-bf16", required=True)
    p.add_argument("--model-int8", required=True)
    p.add_argument("--shared-data", required=True)
    p.add_argument("--work", default=os.path.join(ROOT, "build", "bench", "peers"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--queries", type=int, default=4, help="new single queries per engine per round")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--label", default="", help="a word for the docs section (e.g. before, after)")
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--worker", nargs=3, metavar=("MODEL", "PRECISION", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return jaclip_worker(args.worker[0], args.worker[1], int(args.worker[2]))

    import jaclip
    from bench_model import make_photos, short_labels

    os.makedirs(args.work, exist_ok=True)
    w = lambda name: os.path.join(args.work, name)  # noqa: E731
    cpu, flags = lscpu()
    load_before = os.getloadavg()
    photos = make_photos(os.path.join(ROOT, "build", "bench", "images"))
    labels = short_labels(args.shared_data)
    queries = query_texts(args.shared_data, labels, args.rounds * args.queries + 1)
    repeated_query, queries = queries[0], queries[1:]
    size = 224  # rinna's image size, mean and std (the model file holds the same)
    mean = np.array((0.48145466, 0.4578275, 0.40821073), np.float32)
    std = np.array((0.26862954, 0.26130258, 0.27577711), np.float32)
    pixels = np.asarray(jaclip.preprocess_images(photos, size, tuple(mean), tuple(std)), np.float32)
    pixels.tofile(w("pixels-b8.f32"))
    for i in range(len(photos)):
        pixels[i:i + 1].tofile(w(f"pixels-b1-{i}.f32"))
    tok = jaclip.Tokenizer(os.path.join(ROOT, "data", "rinna-japanese-spiece.model"))

    def write_ids(texts, name):
        ids, mask = (np.asarray(x, np.int64) for x in tok.encode(texts, 77))
        length = int(mask.sum(1).max())  # ORT gets the batch trimmed to its longest text
        np.ascontiguousarray(ids[:, :length]).tofile(w(name + ".ids"))
        np.ascontiguousarray(mask[:, :length]).tofile(w(name + ".mask"))
        return {"ids": w(name + ".ids"), "mask": w(name + ".mask"), "n": len(texts), "length": length}

    label_ids = write_ids(labels, "labels")
    query_ids = [write_ids([q], f"query-{i}") for i, q in enumerate(queries)]
    repeat_ids = write_ids([repeated_query], "query-repeated")

    ort_dir = os.path.abspath(os.path.join(args.ort_modules, "node_modules"))
    node = lambda suffix: ["node", os.path.join(HERE, "ort_worker.js"), ort_dir,  # noqa: E731
                           os.path.join(args.onnx_dir, f"image{suffix}.onnx"),
                           os.path.join(args.onnx_dir, f"text{suffix}.onnx"), str(args.threads)]
    me = lambda path, prec: [sys.executable, os.path.abspath(__file__), "--onnx-dir", "-", "--ort-modules", "-",  # noqa: E731
                             "--model", "-", "--model-bf16", "-", "--model-int8", "-", "--shared-data", "-",
                             "--worker", path, prec, str(args.threads)]
    print("starting the peers ...", flush=True)
    engines = {"ORT fp32": Worker("ORT fp32", node("")), "ORT int8": Worker("ORT int8", node("-int8")),
               "libjaclip fp32": Worker("libjaclip fp32", me(args.model, "fp32")),
               "libjaclip bf16": Worker("libjaclip bf16", me(args.model, "bf16")),
               "libjaclip int8": Worker("libjaclip int8", me(args.model_int8, "default")),
               "libjaclip int8-weights": Worker("libjaclip int8-weights", me(args.model, "int8-weights"))}
    ort = [e for e in engines if e.startswith("ORT")]

    def request(engine, task, r, k=0, save=None):
        is_ort = engine.startswith("ORT")
        if task in ("images b1", "images b8"):
            n = 1 if task == "images b1" else len(photos)
            path = w("pixels-b8.f32") if n > 1 else w(f"pixels-b1-{r % len(photos)}.f32")
            return engines[engine].ask(op="images", pixels=path, n=n, size=size, save=save)
        if task == "images b8, from JPEG":
            if is_ort:
                t0 = time.perf_counter()
                px = pil_preprocess(photos, size, mean, std)
                prep = time.perf_counter() - t0
                px.tofile(w("pixels-pil.f32"))
                return prep + engines[engine].ask(op="images", pixels=w("pixels-pil.f32"), n=len(photos), size=size,
                                                  cache=False)
            return engines[engine].ask(op="files", paths=photos, save=save)
        if task == "texts b64":
            return engines[engine].ask(op="texts", **label_ids, save=save) if is_ort else \
                engines[engine].ask(op="texts", texts=labels, save=save)
        if task == "new query":
            i = r * args.queries + k
            return engines[engine].ask(op="texts", cache=False, **query_ids[i]) if is_ort else \
                engines[engine].ask(op="texts", texts=[queries[i]])
        return engines[engine].ask(op="texts", **repeat_ids) if is_ort else \
            engines[engine].ask(op="texts", texts=[repeated_query])

    tasks = ["images b1", "images b8", "images b8, from JPEG", "texts b64", "new query", "repeated query"]
    print("warming up ...", flush=True)
    for name in engines:  # one pass of everything but new queries; features saved for the checks
        for t in tasks:
            if t != "new query":
                request(name, t, 0, save=w(f"{name.replace(' ', '-')}-{t.split()[0]}.f32")
                        if t in ("images b8", "texts b64") else None)
    times = {(e, t): [] for e in engines for t in tasks}
    names = list(engines)
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", flush=True)
        for ti, t in enumerate(tasks):
            order = names[(r + ti) % len(names):] + names[:(r + ti) % len(names)]
            for e in order:
                if t == "new query":
                    times[(e, t)].append(statistics.median(request(e, t, r, k) for k in range(args.queries)))
                else:
                    times[(e, t)].append(request(e, t, r))
    load_after = os.getloadavg()
    info = {e: engines[e].hello for e in engines}
    for e in engines.values():
        e.close()

    feats = {(e, kind): np.fromfile(w(f"{e.replace(' ', '-')}-{kind}.f32"), np.float32).reshape(-1, 512)
             for e in engines for kind in ("images", "texts")}
    per = {"images b1": 1, "images b8": len(photos), "images b8, from JPEG": len(photos), "texts b64": len(labels)}
    lines = [f"Machine: {cpu}; AVX2 {'yes' if 'avx2' in flags else 'no'}, AVX-512 "
             f"{'yes' if 'avx512f' in flags else 'no'}, AVX512-VNNI {'yes' if 'avx512_vnni' in flags else 'no'}, "
             f"AVX512-BF16 {'yes' if 'avx512_bf16' in flags else 'no'}, AMX {'yes' if 'amx_tile' in flags else 'no'}; "
             f"libjaclip detects: {jaclip.cpu_features() or 'none'}. Load average (1/5/15 min) "
             f"{'/'.join(f'{x:.2f}' for x in load_before)} before, {'/'.join(f'{x:.2f}' for x in load_after)} after "
             f"(the machine is shared with other work). ONNX Runtime {info['ORT fp32'].get('version')} "
             f"(onnxruntime-node, intra-op {args.threads}, graph optimisation 'all'); libjaclip num_threads "
             f"{args.threads}; {args.rounds} interleaved rounds, medians.", "",
             "| | " + " | ".join(engines) + " |", "|---" * (len(engines) + 1) + "|"]
    for t in tasks:
        if t in per:
            cells = [f"{per[t] / statistics.median(times[(e, t)]):.2f}" for e in engines]
            lines.append(f"| {t.replace('images', 'images/s').replace('texts', 'texts/s')} | " + " | ".join(cells) + " |")
        else:
            cells = [f"{1e3 * statistics.median(times[(e, t)]):.1f}" for e in engines]
            lines.append(f"| {t}, ms | " + " | ".join(cells) + " |")
    lines += ["", "Paired speed ratios (median over rounds of time(ORT) / time(libjaclip); > 1 is libjaclip faster):",
              "", "| | " + " | ".join(f"{e} vs {o}" for e in names[2:] for o in ort) + " |",
              "|---" * (1 + 2 * len(names[2:])) + "|"]
    for t in tasks:
        cells = [f"{statistics.median(a / b for a, b in zip(times[(o, t)], times[(e, t)])):.2f}×"
                 for e in names[2:] for o in ort]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    rep = {e: statistics.median(times[(e, 'new query')]) / statistics.median(times[(e, 'repeated query')])
           for e in engines}
    lines += ["", "New / repeated single-query latency: " + ", ".join(f"{e} {v:.2f}×" for e, v in rep.items()) + ".",
              "", "Agreement (cosine per row, minimum): ORT fp32 vs libjaclip fp32 images "
              f"{cos_rows(feats[('ORT fp32', 'images')], feats[('libjaclip fp32', 'images')]).min():.7f}, texts "
              f"{cos_rows(feats[('ORT fp32', 'texts')], feats[('libjaclip fp32', 'texts')]).min():.7f}; to libjaclip fp32: " +
              ", ".join(f"{e} {min(cos_rows(feats[(e, k)], feats[('libjaclip fp32', k)]).min() for k in ('images', 'texts')):.5f}"
                        for e in names if e != "libjaclip fp32") + ".", ""]
    lines += [f"- {e}: runs {i['precision']}: {i['reason']}" for e, i in info.items() if "reason" in i]
    report = "\n".join(lines)
    print(report)
    if args.write_docs:
        write_docs(report, flags, args.label)


def write_docs(report, flags, label):
    # One section per CPU kind, named as make bench names it (Zen 4, Zen 5 and the AMX Xeon share flags).
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from bench_model import cpu_kind
    kind = cpu_kind()
    key = f"{kind}-{label}" if label else kind
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    begin, end = f"<!-- peers:begin:{key} -->", f"<!-- peers:end:{key} -->"
    if begin not in text:
        text += f"\n### ONNX Runtime as a peer: {kind}{', ' + label if label else ''}\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + begin + "\n" + report + "\n" + end + rest.split(end, 1)[1])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
