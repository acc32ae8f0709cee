"""The `jaclip` command end to end on generated images and the tiny model: classify, embed, index build
(with skipping, resuming and interruption), search, damaged indexes and usage errors. Expected values
come from numpy over `jaclip embed` outputs, never from the command under test."""
import json
import os
import pty
import select
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, TINY_MODEL, assert_features_close

CLI = os.environ.get("JACLIP_CLI", os.path.join(ROOT, "build", "jaclip"))


def run(*args, check=None, **kw):
    result = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=120, **kw)
    if check is not None:
        assert result.returncode == check, f"rc {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def embed(kind, inputs, tmp_path, name="emb.npy"):
    out = tmp_path / name
    run("embed", "--model", TINY_MODEL, f"--{kind}", "-o", out, "--", *inputs, check=0)
    return np.load(out)


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def write_images(folder, count, seed, size=(40, 48)):
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        sub = folder / ("sub" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size[0] + i % 5, size[1], 3), dtype=np.uint8)
        ext = ".png" if i % 2 else ".JPG"
        path = sub / f"img{i:04d}{ext}"
        Image.fromarray(pixels).save(path, format="PNG" if ext == ".png" else "JPEG")
        paths.append(str(path.resolve()))
    return sorted(paths)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of 7 images (nested), plus a broken JPEG, a hidden image and a non-image."""
    if not os.path.exists(CLI):
        pytest.fail(f"{CLI} is missing: run `make` first")
    folder = tmp_path_factory.mktemp("photos")
    paths = write_images(folder, 7, seed=1)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (folder / "notes.txt").write_text("not an image")
    Image.new("RGB", (8, 8)).save(folder / ".hidden.png")
    return folder, paths


@pytest.fixture(scope="module")
def built_index(photos, tmp_path_factory):
    folder, _ = photos
    path = tmp_path_factory.mktemp("index") / "photos.jci"
    result = run("index", "build", "--model", TINY_MODEL, folder, "-o", path, "--batch", "3", check=0)
    return path, result


# ---- help and usage ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"], ["classify", "--help"], ["embed", "--help"], ["index", "--help"],
                                  ["index", "build", "--help"], ["search", "--help"]])
def test_help(args):
    result = run(*args, check=0)
    assert result.stdout.startswith("usage: jaclip")
    assert result.stderr == ""


def test_version():
    assert run("--version", check=0).stdout.startswith("jaclip 0.1.0")


@pytest.mark.parametrize("args, message", [
    ([], "missing COMMAND"),
    (["frobnicate"], "unknown command"),
    (["classify", "--model", TINY_MODEL, "x.jpg"], "--labels is required"),
    (["classify", "--model", TINY_MODEL, "--labels", "犬,猫", "--template", "写真", "x.jpg"], "{}"),
    (["classify", "--model", TINY_MODEL, "--labels", "犬,,猫", "x.jpg"], "empty label"),
    (["classify", "--model", TINY_MODEL, "--labels", "犬", "--scale", "lots", "x.jpg"], "--scale"),
    (["classify", "--model", TINY_MODEL, "--labels", "犬"], "no IMAGE"),
    (["classify", "--bogus"], "unknown option '--bogus'"),
    (["embed", "--model", TINY_MODEL, "犬"], "exactly one of --image and --text"),
    (["embed", "--model", TINY_MODEL, "--text", "--image", "犬"], "exactly one of --image and --text"),
    (["embed", "--model", TINY_MODEL, "--text", "--format", "xml", "犬"], "--format"),
    (["embed", "--model", TINY_MODEL, "--text"], "no TEXT"),
    (["index"], "missing subcommand"),
    (["index", "frob"], "unknown subcommand"),
    (["index", "build", "--model", TINY_MODEL, "."], "-o INDEX is required"),
    (["index", "build", "--model", TINY_MODEL, ".", "-o", "x.jci", "--batch", "0"], "--batch"),
    (["index", "build", "--model", TINY_MODEL, "-o", "x.jci"], "no DIR"),
    (["index", "info"], "exactly one INDEX"),
    (["search", "--model", TINY_MODEL, "犬"], "--index"),
    (["search", "--model", TINY_MODEL, "--index", "x.jci"], "no query"),
    (["search", "--model", TINY_MODEL, "--index", "x.jci", "-k", "0", "犬"], "-k"),
    (["search", "-k"], "needs a value"),
])
def test_usage_errors_exit_2(args, message, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("jaclip: ")
    assert message in result.stderr
    assert result.stdout == ""


def test_model_is_required(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JACLIP_MODEL"}
    result = run("embed", "--text", "犬", "--format", "json", env=env)
    assert result.returncode == 2 and "--model" in result.stderr


def test_model_from_environment():
    env = dict(os.environ, JACLIP_MODEL=TINY_MODEL)
    result = run("embed", "--text", "犬", "--format", "json", env=env, check=0)
    assert len(json.loads(result.stdout)) == 1


def test_runtime_errors_exit_1(photos, tmp_path):
    folder, paths = photos
    result = run("embed", "--model", tmp_path / "missing.jaclip", "--text", "犬", "--format", "json")
    assert result.returncode == 1
    assert result.stderr.startswith(f"jaclip: {tmp_path / 'missing.jaclip'}: ")
    result = run("classify", "--model", TINY_MODEL, "--labels", "犬,猫", folder / "broken.jpg")
    assert result.returncode == 1
    assert result.stderr.startswith("jaclip: ") and "broken.jpg" in result.stderr
    result = run("index", "build", "--model", TINY_MODEL, tmp_path / "no-such-dir", "-o", tmp_path / "x.jci")
    assert result.returncode == 1 and "no-such-dir" in result.stderr


# ---- embed ---------------------------------------------------------------------------------------

def test_embed_npy_and_json_agree_with_the_library(lib, tiny_model, photos, tmp_path):
    _, paths = photos
    texts = ["犬", "猫の写真", "-先頭がハイフン"]
    text_npy = embed("text", texts, tmp_path, "t.npy")
    assert text_npy.dtype == np.float32 and text_npy.shape == (3, 32)
    # The library in this process may run another OpenBLAS pool than the command's: close, not equal.
    assert_features_close(text_npy, lib.encode_texts(tiny_model, texts))
    as_json = json.loads(run("embed", "--model", TINY_MODEL, "--text", "--format", "json", "--", *texts,
                             check=0).stdout)
    assert [row["text"] for row in as_json] == texts
    # Two runs of the command with the same settings: the same bytes (docs/determinism.md), so the
    # JSON's floats read back exactly.
    np.testing.assert_array_equal(np.array([row["embedding"] for row in as_json], dtype=np.float32), text_npy)

    image_npy = embed("image", paths[:3], tmp_path, "i.npy")
    import ctypes
    arr = (ctypes.c_char_p * 3)(*[p.encode() for p in paths[:3]])
    out = ctypes.c_void_p()
    lib.check(lib.c.jaclip_model_encode_image_files(ctypes.byref(out), tiny_model, arr, 3))
    assert_features_close(image_npy, lib.to_numpy(out))

    normed = tmp_path / "n.npy"
    run("embed", "--model", TINY_MODEL, "--image", "--normalize", "-o", normed, *paths[:3], check=0)
    np.testing.assert_allclose(np.load(normed), unit(image_npy), atol=1e-6)


def test_embed_refuses_binary_to_a_terminal():
    main, sub = pty.openpty()
    try:
        result = subprocess.run([CLI, "embed", "--model", TINY_MODEL, "--text", "犬"], stdout=sub,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(main)
        os.close(sub)
    assert result.returncode == 2 and "terminal" in result.stderr


# ---- classify ------------------------------------------------------------------------------------

def expected_probabilities(paths, labels, template, scale, tmp_path):
    text = embed("text", [template.replace("{}", label) for label in labels], tmp_path, "labels.npy")
    image = embed("image", paths, tmp_path, "images.npy")
    logits = scale * unit(image) @ unit(text).T
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("template, scale", [("{}", None), ("{}の写真", "100"), ("これは{}です", "30")])
def test_classify_json_is_softmax_of_scaled_cosine(photos, tmp_path, template, scale):
    _, paths = photos
    labels = ["犬", "猫", "象", "ラーメン"]
    args = ["classify", "--model", TINY_MODEL, "--labels", ",".join(labels), "--json", "--template", template,
            *paths[:4]]
    if scale:
        args += ["--scale", scale]
    out = json.loads(run(*args, check=0).stdout)
    want = expected_probabilities(paths[:4], labels, template, float(scale or 100), tmp_path)
    assert [item["image"] for item in out] == paths[:4]
    for i, item in enumerate(out):
        probs = [entry["probability"] for entry in item["labels"]]
        assert sorted(entry["label"] for entry in item["labels"]) == sorted(labels)
        assert probs == sorted(probs, reverse=True)
        assert abs(sum(probs) - 1) < 1e-5
        got = {entry["label"]: entry["probability"] for entry in item["labels"]}
        np.testing.assert_allclose([got[label] for label in labels], want[i], atol=2e-5)


def test_classify_table(photos, tmp_path):
    _, paths = photos
    result = run("classify", "--model", TINY_MODEL, "--labels", "犬, 猫 ,象", paths[0], paths[1], check=0)
    blocks = result.stdout.strip().split("\n\n")
    assert len(blocks) == 2
    want = expected_probabilities(paths[:2], ["犬", "猫", "象"], "{}", 100, tmp_path)
    for block, path, probs in zip(blocks, paths, want):
        lines = block.splitlines()
        assert lines[0] == path
        rows = [line.split() for line in lines[1:]]
        assert sorted(r[1] for r in rows) == sorted(["犬", "猫", "象"])
        percents = [float(r[0].rstrip("%")) for r in rows]
        assert percents == sorted(percents, reverse=True)
        assert abs(sum(percents) - 100) < 0.05
        assert abs(percents[0] - 100 * probs.max()) < 0.006


# ---- index build and search ---------------------------------------------------------------------

def index_rows(path):
    return run("index", "list", path, check=0).stdout.splitlines()


def test_index_build_skips_unreadable_and_hidden_files(built_index, photos):
    path, result = built_index
    _, paths = photos
    assert index_rows(path) == paths
    warnings = [line for line in result.stderr.splitlines() if "broken.jpg" in line]
    assert len(warnings) == 1 and warnings[0].startswith("jaclip: ") and "skipped" in warnings[0]
    assert "7 images added" in result.stderr and "1 skipped" in result.stderr
    info = json.loads(run("index", "info", "--json", path, check=0).stdout)
    assert {k: info[k] for k in ("rows", "dim", "storage")} == {"rows": 7, "dim": 32, "storage": "float32"}
    assert info["fingerprint"].startswith("cloob-32-")


def test_index_build_again_adds_only_new_files(built_index, photos, tmp_path):
    path, _ = built_index
    folder, paths = photos
    copy = tmp_path / "copy.jci"
    copy.write_bytes(path.read_bytes())
    result = run("index", "build", "--model", TINY_MODEL, folder, "-o", copy, check=0)
    assert "0 images added, 7 already indexed" in result.stderr
    assert index_rows(copy) == paths
    extra = folder.parent / (folder.name + "-extra")
    new = write_images(extra, 2, seed=5)
    run("index", "build", "--model", TINY_MODEL, folder, extra, "-o", copy, check=0)
    rows = index_rows(copy)
    assert rows == paths + new and len(set(rows)) == len(rows)


def brute_force(query, rows, k):
    scores = unit(rows) @ unit(query)
    order = np.argsort(-scores, kind="stable")[:k]
    return order, scores[order]


@pytest.mark.parametrize("k", [1, 3, 50])
def test_search_by_text_and_image_equals_brute_force(built_index, photos, tmp_path, k):
    path, _ = built_index
    _, paths = photos
    stored = embed("image", paths, tmp_path, "stored.npy")
    texts = ["犬の写真", "海辺の夕日"]
    text_q = embed("text", texts, tmp_path, "q.npy")
    image_q = embed("image", [paths[2]], tmp_path, "qi.npy")
    out = json.loads(run("search", "--model", TINY_MODEL, "--index", path, *texts, "--image", paths[2],
                         "-k", k, "--json", check=0).stdout)
    assert [(q["query"], q["kind"]) for q in out] == [(texts[0], "text"), (texts[1], "text"), (paths[2], "image")]
    for q, vector in zip(out, [*text_q, *image_q]):
        order, scores = brute_force(vector, stored, k)
        assert [r["row"] for r in q["results"]] == list(order)
        assert [r["label"] for r in q["results"]] == [paths[i] for i in order]
        assert [r["rank"] for r in q["results"]] == list(range(1, len(order) + 1))
        np.testing.assert_allclose([r["score"] for r in q["results"]], scores, atol=1e-5)
    assert out[2]["results"][0]["label"] == paths[2]  # an image finds itself first


def test_search_table(built_index, photos, tmp_path):
    path, _ = built_index
    _, paths = photos
    result = run("search", "--model", TINY_MODEL, "--index", path, "犬", "-k", "3", check=0)
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    stored = embed("image", paths, tmp_path, "stored.npy")
    order, scores = brute_force(embed("text", ["犬"], tmp_path, "q.npy")[0], stored, 3)
    for line, i, score in zip(lines, order, scores):
        rank, shown, label = line.split(None, 2)
        assert label == paths[i] and abs(float(shown) - score) < 6e-5


def test_damaged_index_is_refused_with_a_clear_message(built_index, photos, tmp_path):
    path, _ = built_index
    _, paths = photos
    good = path.read_bytes()
    cases = {
        "truncated.jci": (good[:len(good) - 100], "truncated"),
        "flipped.jci": (good[:300] + bytes([good[300] ^ 4]) + good[301:], "corrupted"),
        "foreign.jci": (open(paths[1], "rb").read(), "not a jaclip index"),
        "empty.jci": (b"", "not a jaclip index"),
    }
    for name, (data, reason) in cases.items():
        bad = tmp_path / name
        bad.write_bytes(data)
        for args in (["search", "--model", TINY_MODEL, "--index", bad, "犬"], ["index", "info", bad],
                     ["index", "build", "--model", TINY_MODEL, photos[0], "-o", bad]):
            result = run(*args)
            assert result.returncode == 1, (name, args, result.stderr)
            assert result.stderr.startswith(f"jaclip: {bad}: ") and reason in result.stderr, result.stderr
        assert bad.read_bytes() == data  # a failed build leaves the file alone
    result = run("search", "--model", TINY_MODEL, "--index", tmp_path / "absent.jci", "犬")
    assert result.returncode == 1 and "absent.jci" in result.stderr


def test_interrupted_build_resumes_without_duplicates(tmp_path):
    folder = tmp_path / "many"
    paths = write_images(folder, 240, seed=9, size=(24, 24))
    index = tmp_path / "many.jci"
    args = [CLI, "index", "build", "--model", TINY_MODEL, str(folder), "-o", str(index), "--batch", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()  # the first progress line: the loop has started
    assert "indexed" in first, first
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "interrupted" in err
    done = index_rows(index)
    assert 0 < len(done) < len(paths), "the build finished before the signal; use more images"
    assert done == paths[:len(done)]

    result = run("index", "build", "--model", TINY_MODEL, folder, "-o", index, check=0)
    assert f"{len(paths) - len(done)} images added, {len(done)} already indexed" in result.stderr
    rows = index_rows(index)
    assert rows == paths and len(set(rows)) == len(rows)
    stored = embed("image", paths, tmp_path)
    out = json.loads(run("search", "--model", TINY_MODEL, "--index", index, "--image", paths[100], "-k", 5, "--json",
                         check=0).stdout)
    order, _ = brute_force(stored[100], stored, 5)
    assert [r["row"] for r in out[0]["results"]] == list(order)


def test_sigterm_also_stops_cleanly(tmp_path):
    folder = tmp_path / "some"
    paths = write_images(folder, 150, seed=11, size=(24, 24))
    index = tmp_path / "some.jci"
    proc = subprocess.Popen([CLI, "index", "build", "--model", TINY_MODEL, str(folder), "-o", str(index), "-b", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "indexed" in proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    done = index_rows(index)
    assert done == paths[:len(done)]


def test_progress_bar_on_a_terminal(photos, tmp_path):
    folder, paths = photos
    main, sub = pty.openpty()
    proc = subprocess.Popen([CLI, "index", "build", "--model", TINY_MODEL, str(folder), "-o",
                             str(tmp_path / "tty.jci"), "-b", "2"], stdout=subprocess.DEVNULL, stderr=sub)
    os.close(sub)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode()
    assert "\r" in text and "images/s" in text and f"{len(paths) + 1}/{len(paths) + 1}" in text and "left" in text
    assert "broken.jpg: skipped" in text  # counted in the total (8 files), then skipped


# ---- convert -------------------------------------------------------------------------------------

def test_convert_forwards_to_jaclip_convert():
    result = run("convert", "--help", check=0)
    assert "jaclip-convert" in result.stdout and "checkpoint_dir" in result.stdout
    result = run("convert")
    assert result.returncode == 2 and "jaclip-convert" in result.stderr
