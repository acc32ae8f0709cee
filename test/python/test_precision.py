"""Precision chosen by what the CPU can do (issue: a bf16 file must not run 75x slower than fp32 on a CPU
without native bf16), int8 files, and what `jaclip info` reports. The expectations come from
/proc/cpuinfo, read here independently of the library's cpuid detection."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import LIBRARY, PYTHON, ROOT, TINY_MODEL, TINY_MODEL_BF16, TINY_MODEL_INT8, cosine_rows, cpuinfo_flags

sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
import jaclip  # noqa: E402

CLI = os.path.join(ROOT, "build", "jaclip")
DOG = os.path.join(ROOT, "data", "dog.jpeg")
TEXTS = ["犬", "猫の写真", "海辺を走る犬"]


def test_cpu_features_agree_with_proc_cpuinfo():
    flags, ours = cpuinfo_flags(), set(jaclip.cpu_features().split())
    for name in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"):
        assert (name in ours) == (name in flags), f"{name}: library {name in ours}, /proc/cpuinfo {name in flags}"


def test_bf16_file_runs_bf16_only_where_bf16_is_native():
    flags = cpuinfo_flags()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    with jaclip.Model(TINY_MODEL_BF16) as m:
        assert m.precision == ("bf16" if native else "fp32"), m.precision_reason
        if not native:
            assert "widened to fp32" in m.precision_reason and "JACLIP_PRECISION_BF16" in m.precision_reason


def int8_kernel_here(flags):
    """Where auto picks int8-weights: libjaclip's AVX512-VNNI kernel runs, and no AMX."""
    return "avx512_vnni" in flags and "amx_bf16" not in flags


def load_in_subprocess(native_bf16, path, precision="None", portable="1"):
    # JACLIP_Q8_PORTABLE=1 (the default here) takes int8-weights out of auto's choice, so the bf16 / fp32
    # branch is what these tests see on any CPU; test_auto_picks_int8_weights_where_vnni_runs the other.
    code = (f"import jaclip; m = jaclip.Model({path!r}, precision={precision}); "
            "print(m.precision); print(m.precision_reason)")
    env = dict(os.environ, JACLIP_NATIVE_BF16=native_bf16, JACLIP_Q8_PORTABLE=portable,
               PYTHONPATH=os.path.join(ROOT, "bindings", "python"), JACLIP_LIBRARY=LIBRARY)
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.mark.parametrize("native", ["0", "1"])
def test_both_paths_on_any_cpu_through_the_override(native):
    # JACLIP_NATIVE_BF16 lets each path run whatever this CPU is.
    precision, reason = load_in_subprocess(native, TINY_MODEL_BF16)
    if native == "1":
        assert precision == "bf16" and reason.startswith("bf16: as stored")
    else:
        assert precision == "fp32" and reason.startswith("fp32: the file stores bf16")
    # Asked for explicitly, bf16 runs everywhere, and says when it is slow.
    precision, reason = load_in_subprocess(native, TINY_MODEL_BF16, '"bf16"')
    assert precision == "bf16" and (("not native" in reason) == (native == "0"))


@pytest.mark.parametrize("native", ["0", "1"])
def test_auto_runs_bf16_exactly_where_bf16_is_native(native):
    # "auto": bf16 for an fp32 file where bf16 is native; fp32 elsewhere; an int8 file stays int8.
    precision, reason = load_in_subprocess(native, TINY_MODEL, '"auto"')
    assert precision == ("bf16" if native == "1" else "fp32")
    assert reason.startswith(f"{precision}: chosen by JACLIP_PRECISION_AUTO"), reason
    precision, reason = load_in_subprocess(native, TINY_MODEL_BF16, '"auto"')
    assert precision == ("bf16" if native == "1" else "fp32"), reason
    precision, reason = load_in_subprocess(native, TINY_MODEL_INT8, '"auto"')
    assert precision == "int8" and reason.startswith("int8: as stored"), reason


@pytest.mark.parametrize("native", ["0", "1"])
def test_auto_picks_int8_weights_where_vnni_runs(native):
    if not int8_kernel_here(cpuinfo_flags()):
        pytest.skip("this CPU has no AVX512-VNNI, or has AMX: auto never picks int8-weights here (tested above)")
    for path in (TINY_MODEL, TINY_MODEL_BF16):
        precision, reason = load_in_subprocess(native, path, '"auto"', portable="0")
        assert precision == "int8-weights" and reason.startswith("int8-weights: chosen by JACLIP_PRECISION_AUTO")
    precision, reason = load_in_subprocess(native, TINY_MODEL_INT8, '"auto"', portable="0")
    assert precision == "int8" and reason.startswith("int8: as stored"), reason


def expected_auto(flags):
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    return "int8-weights" if int8_kernel_here(flags) else "bf16" if native else "fp32"


def test_auto_on_this_cpu_follows_proc_cpuinfo_and_stays_near_fp32():
    flags = cpuinfo_flags()
    with jaclip.Model(TINY_MODEL, precision="auto") as a, jaclip.Model(TINY_MODEL) as f:
        assert a.precision == expected_auto(flags), a.precision_reason
        ours, ref = np.asarray(a.encode_texts(TEXTS)), np.asarray(f.encode_texts(TEXTS))
        # bf16 or int8-weights on the tiny random model, as in test_widened_bf16_file_gives_the_bf16_weights_in_fp32
        # and test_int8_weights.py; the full-size figures (0.9998, 0.9996) are measured by make bench-peers.
        assert cosine_rows(ours, ref).min() > 0.99
    out = subprocess.run([CLI, "info", "--json", "--precision", "auto", TINY_MODEL], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["precision"] == expected_auto(flags)
    bad = subprocess.run([CLI, "embed", "--model", TINY_MODEL, "--precision", "fastest", "--text", "犬",
                          "--format", "json"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "auto" in bad.stderr


def test_widened_bf16_file_gives_the_bf16_weights_in_fp32():
    # Widening is exact (bf16 -> fp32), so the widened model equals the bf16 file asked for fp32.
    with jaclip.Model(TINY_MODEL_BF16, precision="fp32") as asked, \
            jaclip.Model(TINY_MODEL_BF16) as default, jaclip.Model(TINY_MODEL) as fp32:
        if default.precision != "fp32":
            pytest.skip("this CPU has native bf16: the default runs bf16 here (checked above)")
        a, b = np.asarray(asked.encode_texts(TEXTS)), np.asarray(default.encode_texts(TEXTS))
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(a).max())
        assert cosine_rows(b, np.asarray(fp32.encode_texts(TEXTS))).min() > 0.99


def test_int8_file_runs_int8_close_to_fp32():
    with jaclip.Model(TINY_MODEL_INT8) as q, jaclip.Model(TINY_MODEL) as f:
        assert q.precision == "int8" and q.precision_reason.startswith("int8: ")
        for encode in (lambda m: m.encode_texts(TEXTS), lambda m: m.encode_images([DOG])):
            ours, ref = np.asarray(encode(q)), np.asarray(encode(f))
            assert ours.shape == ref.shape
            # Measured on the tiny random model: 0.9998 (texts and the dog photo); docs/benchmarks.md gives
            # the full-size figure.
            assert cosine_rows(ours, ref).min() > 0.98
            assert not np.array_equal(ours, ref), "int8 should not be bit-identical to fp32"


@pytest.mark.parametrize("path,precision,needle", [
    (TINY_MODEL_INT8, "fp32", "holds int8 weights"),
    (TINY_MODEL_INT8, "bf16", "holds int8 weights"),
    (TINY_MODEL, "int8", "--dtype int8"),
])
def test_mismatched_precision_requests_are_refused(path, precision, needle):
    with pytest.raises(jaclip.InvalidArgumentError, match=needle.replace("-", r"\-")):
        jaclip.Model(path, precision=precision)


def test_jaclip_info_says_what_runs_and_why():
    out = subprocess.run([CLI, "info", "--json", TINY_MODEL_BF16], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    with jaclip.Model(TINY_MODEL_BF16) as m:
        assert info["precision"] == m.precision and info["precision_reason"] == m.precision_reason
        assert info["fingerprint"] == m.fingerprint and info["embedding_dim"] == 32
    assert set(info["cpu_features"].split()) <= {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                                                 "amx_bf16", "amx_int8"}
    text = subprocess.run([CLI, "info", TINY_MODEL_INT8, "--precision", "default"], capture_output=True,
                          text=True, timeout=120)
    assert text.returncode == 0 and "precision:        int8" in text.stdout
    bad = subprocess.run([CLI, "info", TINY_MODEL, "--precision", "fp16"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--precision" in bad.stderr
