"""JACLIP_PRECISION_INT8_WEIGHTS ("int8-weights"): every Linear layer's weights quantized at load and run
by libjaclip's own kernel (lib/qlinear; its arithmetic is checked exactly by make test-qlinear). Here: the
whole model through the bindings and the CLI, against fp32 on real texts and photos, what it reports, what
it refuses, and that the portable and the AVX512-VNNI kernels give the same features. Which kernel runs is
read from /proc/cpuinfo here, independently of the library."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import (LIBRARY, PYTHON, ROOT, TINY_MODEL, TINY_MODEL_BF16, TINY_MODEL_INT8, assert_features_close,
                      cosine_rows, cpuinfo_flags)

sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
import jaclip  # noqa: E402

CLI = os.path.join(ROOT, "build", "jaclip")
SHARED = os.environ.get("JACLIP_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
PHOTOS = [os.path.join(ROOT, "data", "dog.jpeg")] + [
    os.path.join(SHARED, "images", "libjpeg-turbo", name) for name in ("testorig.jpg", "monkey16.png")]
TEXTS = ["犬", "猫の写真", "海辺を走る犬", "夕焼けの京都、雪の降る寺の屋根", "赤い自転車と青い空"]


def photos():
    # The project's dog photo always; libjpeg-turbo's test images where ../shared is present.
    return [p for p in PHOTOS if os.path.exists(p)]


def vnni_here():
    flags = cpuinfo_flags()
    return all(f in flags for f in ("avx512f", "avx512bw", "avx512_vnni"))


def test_reports_itself_and_which_kernel_runs():
    with jaclip.Model(TINY_MODEL, precision="int8-weights") as m:
        assert m.precision == "int8-weights"
        assert m.precision_reason.startswith("int8-weights: asked for")
        assert ("AVX512-VNNI" in m.precision_reason) == vnni_here(), m.precision_reason
        if not vnni_here():
            assert "many times slower" in m.precision_reason


@pytest.mark.parametrize("path", [TINY_MODEL, TINY_MODEL_BF16])
def test_features_stay_within_the_bar_of_fp32(path):
    # The bar auto holds any precision to (docs/precision.md): cosine >= 0.999 to the same file in fp32.
    # Measured on the tiny random model: 0.99988 (texts); the full-size figure is make bench-peers'.
    with jaclip.Model(path, precision="int8-weights") as q, jaclip.Model(path, precision="fp32") as f:
        for encode in (lambda m: m.encode_texts(TEXTS), lambda m: m.encode_images(photos())):
            ours, ref = np.asarray(encode(q)), np.asarray(encode(f))
            assert ours.shape == ref.shape
            assert cosine_rows(ours, ref).min() >= 0.999
            assert not np.array_equal(ours, ref), "int8 weights should not give fp32's bytes"


def test_a_new_input_and_a_repeated_one_run_the_same_way():
    # No state kept between calls (oneDNN's int8 re-creates primitives per activation scale; this kernel
    # quantizes each row as it comes): a repeat gives the same bytes, whatever ran in between.
    with jaclip.Model(TINY_MODEL, precision="int8-weights") as m:
        first = np.asarray(m.encode_texts(TEXTS[:2]))
        m.encode_texts(["まったく別の文を間に挟む"] * 7)
        assert np.array_equal(first, np.asarray(m.encode_texts(TEXTS[:2])))


def test_portable_kernel_gives_the_same_features():
    # JACLIP_Q8_PORTABLE=1 forces the plain C kernel (what a CPU without AVX512-VNNI runs): its integer
    # sums and scaling are the VNNI kernel's bit for bit (test-qlinear); across processes the rest of the
    # model keeps to the cross-process contract (docs/determinism.md).
    code = ("import json, sys, jaclip; m = jaclip.Model(sys.argv[1], precision='int8-weights'); "
            "print(json.dumps([m.precision_reason, m.encode_texts(sys.argv[2:]).tolist()]))")
    runs = []
    for portable in ("0", "1"):
        env = dict(os.environ, JACLIP_Q8_PORTABLE=portable, JACLIP_LIBRARY=LIBRARY,
                   PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
        out = subprocess.run([PYTHON, "-c", code, TINY_MODEL, *TEXTS], capture_output=True, text=True, env=env,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout))
    assert_features_close(np.asarray(runs[1][1], np.float32), np.asarray(runs[0][1], np.float32))


@pytest.mark.parametrize("path,device,error,needle", [
    (TINY_MODEL_INT8, "cpu", jaclip.InvalidArgumentError, "already int8"),
    (TINY_MODEL, "cuda", jaclip.DeviceUnavailableError, "cuda"),
])
def test_refused_where_it_cannot_run(path, device, error, needle):
    with pytest.raises(error, match=needle):
        jaclip.Model(path, precision="int8-weights", device=device)


def test_cli_runs_it_and_says_so():
    info = subprocess.run([CLI, "info", "--json", "--precision", "int8-weights", TINY_MODEL], capture_output=True,
                          text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["precision"] == "int8-weights"
    out = subprocess.run([CLI, "embed", "--model", TINY_MODEL, "--precision", "int8-weights", "--text", TEXTS[2],
                          "--format", "json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with jaclip.Model(TINY_MODEL, precision="int8-weights") as m:
        ours = np.asarray(m.encode_texts([TEXTS[2]]))
    printed = json.loads(out.stdout)
    row = printed[0]["embedding"] if isinstance(printed, list) else printed["embedding"]
    assert_features_close(np.asarray([row], np.float32), ours)
