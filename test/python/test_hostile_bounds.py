"""Hostile input, round two (issue 13): each case runs in a child process under an address-space limit
and a timeout, and asserts the clean error, that the process survived (no signal) and its peak memory.
Binding calls run in children because a wrong pointer and size crash the interpreter itself."""
import json
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from conftest import LIBRARY, PYTHON, ROOT, TINY_MODEL

BINDING = os.path.join(ROOT, "bindings", "python")
JACLIP = os.path.join(ROOT, "build", "jaclip")
MB = 1 << 20


def run_bounded(argv, as_mb, timeout, env=None, stdin=None):
    """(returncode, stdout bytes, stderr text, peak RSS in MB) of argv under RLIMIT_AS = as_mb."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (as_mb * MB, as_mb * MB))
    full = dict(os.environ, PYTHONPATH=BINDING, JACLIP_LIBRARY=LIBRARY, **(env or {}))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full, preexec_fn=limit,
                            stdin=stdin)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{argv[:3]}... ran past its {timeout} s bound")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
    return proc.returncode, out, err.decode("utf-8", "replace"), peak


def python_cases(code, as_mb=2048, timeout=60):
    """Runs code (which prints one JSON object) in a child interpreter; a crash fails the test."""
    rc, out, err, _ = run_bounded([PYTHON, "-c", textwrap.dedent(code)], as_mb, timeout)
    assert rc == 0, f"the interpreter died (status {rc}): {err[-2000:]}"
    return json.loads(out.decode().strip().splitlines()[-1])


PRELUDE = """
import json, jaclip
results = {}
def case(name, fn):
    try:
        fn()
        results[name] = "no error"
    except Exception as e:
        results[name] = type(e).__name__ + ": " + str(e)
"""


def test_python_pixel_buffers_are_checked_against_their_declared_size():
    got = python_cases(PRELUDE + """
import numpy as np
case("16 bytes as 20000x8000 RGBA", lambda: jaclip.Image.from_pixels(b"x" * 16, 20000, 8000, "RGBA"))
case("16 bytes as 64x64 RGB", lambda: jaclip.Image.from_pixels(b"x" * 16, 64, 64, "RGB"))
case("stride past the buffer", lambda: jaclip.Image.from_pixels(b"x" * 300, 10, 10, "RGB", stride=1 << 40))
case("numpy with a stride", lambda: jaclip.Image.from_pixels(np.zeros((64, 64, 3), np.uint8), stride=1 << 30))
case("numpy strided view", lambda: jaclip.Image.from_pixels(np.zeros((64, 128, 3), np.uint8)[:, ::2]).width)
case("exact buffer", lambda: jaclip.Image.from_pixels(b"x" * (9 * 40 + 30), 10, 10, "RGB", stride=40))
t = jaclip.Tensor(b"\\0" * 8, "float32", (1, 2))
t.shape = (100000, 512)
case("tensor shape reassigned", lambda: jaclip.normalize(t))
case("mean of 1 value", lambda: jaclip.preprocess_images([jaclip.Image.from_pixels(b"x" * 12, 2, 2, "RGB")], 4, [0.5], [0.5, 0.5, 0.5]))
print(json.dumps(results))
""")
    for name in ("16 bytes as 20000x8000 RGBA", "16 bytes as 64x64 RGB", "stride past the buffer",
                 "numpy with a stride", "mean of 1 value"):
        assert got[name].startswith("InvalidArgumentError"), (name, got[name])
    assert got["tensor shape reassigned"].startswith("ShapeError"), got
    assert got["numpy strided view"] == "no error" and got["exact buffer"] == "no error", got


def test_python_out_of_range_integers_raise_instead_of_wrapping():
    got = python_cases(PRELUDE + f"""
index = jaclip.Index(4)
index.add([[1, 0, 0, 0], [0, 1, 0, 0]], ["a", "b"])
case("label 2**64 + 1", lambda: index.label(2 ** 64 + 1))
case("label 2**64", lambda: index.label(2 ** 64))
case("label -1", lambda: index.label(-1))
case("topk k=-1", lambda: jaclip.topk([[1.0, 2.0, 3.0]], -1))
case("topk k=2**64+1", lambda: jaclip.topk([[1.0, 2.0, 3.0]], 2 ** 64 + 1))
case("search k=-1", lambda: index.search([[1, 0, 0, 0]], k=-1))
case("Image max_pixels=-1", lambda: jaclip.Image({ROOT + '/data/dog.jpeg'!r}, max_pixels=-1))
case("from_bytes max_pixels=2**64", lambda: jaclip.Image.from_bytes(b"\\xff\\xd8\\xff", max_pixels=2 ** 64))
case("Model max_image_pixels=-1", lambda: jaclip.Model({TINY_MODEL!r}, max_image_pixels=-1))
case("Model num_threads=2**32", lambda: jaclip.Model({TINY_MODEL!r}, num_threads=2 ** 32))
case("width 2**32 + 4", lambda: jaclip.Image.from_pixels(b"x" * 48, 2 ** 32 + 4, 4, "RGB"))
case("resize_crop -1", lambda: jaclip.Image.from_pixels(b"x" * 12, 2, 2, "RGB").resize_crop(-1))
case("id_to_piece 2**63", lambda: jaclip.Model({TINY_MODEL!r}).tokenizer.id_to_piece(2 ** 63))
print(json.dumps(results))
""")
    for name in ("label 2**64 + 1", "label 2**64", "label -1"):
        assert got[name].startswith("NotFoundError"), (name, got[name])
    for name in ("topk k=-1", "topk k=2**64+1", "search k=-1", "Image max_pixels=-1", "from_bytes max_pixels=2**64",
                 "Model max_image_pixels=-1", "Model num_threads=2**32", "width 2**32 + 4", "resize_crop -1"):
        assert got[name].startswith("InvalidArgumentError"), (name, got[name])
    assert "Error" in got["id_to_piece 2**63"], got
