"""Hostile input, round three (issue 24), the parts outside the HTTP server: forged classifier files
(item 10), temporaries of killed writers (item 11), pixel limit of the image API (item 14). Each case
runs in a child under an address-space limit and a timeout (helpers of test_hostile_bounds.py)."""
import glob
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest

from conftest import PYTHON, TINY_MODEL
from test_hostile_bounds import BINDING, JACLIP, PRELUDE, python_cases, run_bounded

# ---- item 10: classifier files validated like index files -----------------------------------------


def _saved_classifier(path):
    python_cases(f"""
import jaclip
with jaclip.Model({TINY_MODEL!r}) as m:
    jaclip.Classifier(m, ["犬", "猫", "象"], ["{{}}の写真", "{{}}のイラスト"]).save({str(path)!r})
print("{{}}")
""")
    return bytearray(path.read_bytes())


def _forge(good, edit):
    """good with edit(bytes) applied and the CRC32 (zlib's, not the library's) recomputed."""
    b = bytearray(good)
    b = edit(b) or b
    b[-4:] = struct.pack("<I", zlib.crc32(bytes(b[:-4])))
    return bytes(b)


def _forgeries(good):
    fp, strings = struct.unpack_from("<II", good, 32)
    weights = 40 + fp + strings
    nan, inf = struct.pack("<f", float("nan")), struct.pack("<f", float("inf"))

    def at(offset, value):
        return lambda b: b.__setitem__(slice(offset, offset + len(value)), value)

    def halve_first_row(b):
        dim = struct.unpack_from("<I", b, 12)[0]
        row = struct.unpack_from(f"<{dim}f", b, weights)
        struct.pack_into(f"<{dim}f", b, weights, *(v / 2 for v in row))

    def small_file(b):
        """100 bytes whose lengths add up (dim 1, 1 label, 51 bytes of strings) but claim 2^32-1
        templates: was a 32 GiB calloc (OUT_OF_MEMORY under a 4 GB RLIMIT_AS)."""
        head = bytearray(b[:40])
        struct.pack_into("<IQIIII", head, 12, 1, 1, 0xFFFFFFFF, struct.unpack_from("<I", b, 28)[0], 1, 51)
        return head + b"x" + b"a\0{}" + b"\0" * 47 + struct.pack("<f", 1.0) + b"\0" * 4
    brace = good.index(b"{", 40 + fp)
    return {
        "NaN weight": (at(weights + 20, nan), "not finite"),
        "inf weight": (at(weights, inf), "not finite"),
        "first row halved": (halve_first_row, "unit length"),
        "label byte 0xFF": (at(40 + fp + 1, b"\xff"), "not valid UTF-8"),
        "templates 2^32-1": (at(24, struct.pack("<I", 0xFFFFFFFF)), "do not add up"),
        "100 bytes claiming 2^32-1 templates": (small_file, "do not add up"),
        "template without {}": (at(brace, b"x"), "exactly one {}"),
    }


def test_forged_classifier_files_are_refused_in_python_and_the_cli(tmp_path):
    good = _saved_classifier(tmp_path / "good.jcz")
    cases = _forgeries(good)
    paths = {}
    for i, (name, (edit, _)) in enumerate(cases.items()):
        paths[name] = tmp_path / f"forged{i}.jcz"
        paths[name].write_bytes(_forge(good, edit))
    got = python_cases(PRELUDE + f"""
m = jaclip.Model({TINY_MODEL!r})
for name, path in {({k: str(v) for k, v in paths.items()})!r}.items():
    case(name, lambda: jaclip.Classifier.load(path, m))
print(json.dumps(results))
""", as_mb=2048, timeout=60)
    for name, (_, needle) in cases.items():
        assert got[name].startswith("IndexFormatError") and needle in got[name], (name, got[name])
    dog = os.path.join(os.environ.get("JACLIP_PROJECT_DATA", "data"), "dog.jpeg")
    for name, path in paths.items():
        rc, out, err, _ = run_bounded([JACLIP, "classify", "-m", TINY_MODEL, "--classifier", str(path), "--json",
                                       dog], 4096, 60)
        assert rc == 1 and out == b"" and cases[name][1] in err, (name, rc, err)


# ---- item 11: temporaries of killed writers -------------------------------------------------------

WRITER = """
import sys, numpy as np, jaclip
ix = jaclip.Index(256)
ix.add(np.random.default_rng(0).standard_normal((60000, 256)).astype(np.float32), [f"row{i}" for i in range(60000)])
print("ready", flush=True)
while True:
    ix.save(sys.argv[1])
"""


def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_killed_writers_temporaries_are_removed_by_the_next_writer(tmp_path):
    """Real writers (60 000 x 256 float32 saves, 61 MB each) killed with SIGKILL while a temporary
    exists; the next save removes every one of them, and nothing of a living writer."""
    target = str(tmp_path / "live.jci")
    env = dict(os.environ, PYTHONPATH=BINDING)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen([PYTHON, "-c", WRITER, target], stdout=subprocess.PIPE, env=env, preexec_fn=_limit)
        try:
            assert proc.stdout.readline().strip() == b"ready"
            deadline = time.monotonic() + 30
            while not glob.glob(f"{target}.tmp-{proc.pid}-*") and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        mine = glob.glob(f"{target}.tmp-{proc.pid}-*")
        kills += bool(mine)
        # Each writer removed the temporaries of the writers killed before it (was: all 6 left, 366 MB).
        assert sorted(glob.glob(f"{target}.tmp-*")) == mine
    assert kills >= 3, "fewer than 3 writers died with a temporary behind them"
    # Beside them: a temporary of a living, locking writer; names that only look like temporaries.
    held = f"{target}.tmp-{_dead_pid()}-0badc0de"
    holder = subprocess.Popen([PYTHON, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", held],
                              stdout=subprocess.PIPE, preexec_fn=_limit)
    try:
        assert holder.stdout.readline().strip() == b"held"
        alive = f"{target}.tmp-{os.getppid()}-00000001"
        other = [f"{target}.tmp-{_dead_pid()}-xyz", str(tmp_path / f"other.jci.tmp-{_dead_pid()}-00000002"), alive]
        for path in other:
            open(path, "w").close()
        got = python_cases(PRELUDE + f"""
import numpy as np
ix = jaclip.Index(4)
ix.add(np.eye(4, dtype=np.float32), list("abcd"))
ix.save({target!r})
print(json.dumps({{"rows": len(jaclip.Index.load({target!r}))}}))
""", timeout=60)
        assert got["rows"] == 4
        left = sorted(glob.glob(f"{target}.tmp-*") + glob.glob(str(tmp_path / "other.jci.tmp-*")))
        assert left == sorted([held] + other)
    finally:
        holder.kill()
        holder.wait()


def test_classifier_ann_and_merge_writers_remove_dead_temporaries(tmp_path):
    """The same cleanup in the classifier, ANN and merge writers (one shared writer,
    common/file_output.c): a temporary named after a process that has exited is removed by the next
    write of the same target."""
    cls, ann, merged = str(tmp_path / "c.jcz"), str(tmp_path / "i.jci.ann"), str(tmp_path / "m.jci")
    stale = [f"{cls}.tmp-{_dead_pid()}-12345678", f"{ann}.tmp-{_dead_pid()}-9abcdef0",
             f"{merged}.tmp-{_dead_pid()}-00c0ffee"]
    for path in stale:
        with open(path, "wb") as f:
            f.write(b"\0" * 4096)
    python_cases(PRELUDE + f"""
import numpy as np
with jaclip.Model({TINY_MODEL!r}) as m:
    jaclip.Classifier(m, ["犬", "猫"]).save({cls!r})
ix = jaclip.Index(8)
ix.add(np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32), [str(i) for i in range(300)])
ix.save({str(tmp_path / "shard.jci")!r})
jaclip.Index.merge({merged!r}, [{str(tmp_path / "shard.jci")!r}])
try:
    jaclip.Ann.build(ix, "hnsw").save({ann!r})
except jaclip.Error as e:  # no faiss plugin in this build
    print(json.dumps({{"ann": str(e)}}))
    raise SystemExit
print(json.dumps({{"ann": "saved"}}))
""")
    assert not os.path.exists(stale[0]) and not os.path.exists(stale[2])
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n and n not in map(os.path.basename, stale)]
    if os.path.exists(ann):
        assert not os.path.exists(stale[1])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


# ---- item 13: the Python client never carries the token across a redirect ---------------------------

def test_client_sends_no_token_across_a_redirect():
    """Two loopback servers on different ports: A answers every request with a redirect to B, B records
    what it receives. The client with a token refuses each redirect (ServeError with the 3xx status) and
    B never sees the token (was: urllib followed 302/307 and resent `Authorization: Bearer ...`)."""
    import http.server
    import threading
    sys.path.insert(0, BINDING)
    from jaclip.client import Client, ServeError
    seen = []

    class B(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_POST = do_GET

        def log_message(self, *args):
            pass

    b = http.server.ThreadingHTTPServer(("127.0.0.1", 0), B)

    class A(B):
        def do_GET(self):
            code = int(self.path.rsplit("code=", 1)[1]) if "code=" in self.path else 302
            self.send_response(code)
            self.send_header("Location", f"http://127.0.0.1:{b.server_port}/healthz")
            self.send_header("Content-Length", "0")
            self.end_headers()
        do_POST = do_GET

    a = http.server.ThreadingHTTPServer(("127.0.0.1", 0), A)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (a, b)]
    for t in threads:
        t.start()
    try:
        c = Client(f"http://127.0.0.1:{a.server_port}", token="s3cret", timeout=10)
        assert Client(f"http://127.0.0.1:{b.server_port}", token="s3cret", timeout=10).healthz()
        assert seen == ["Bearer s3cret"]  # the same origin gets it
        for code in (301, 302, 303, 307, 308):
            with pytest.raises(ServeError) as caught:
                c._request("GET", "/healthz", query={"code": code})
            assert caught.value.http == code
        with pytest.raises(ServeError):
            c.healthz()
        with pytest.raises(ServeError):
            c.embed_texts(["犬"])
        assert seen == ["Bearer s3cret"], seen
    finally:
        for s in (a, b):
            s.shutdown()
            s.server_close()


# ---- item 14: the image API's pixel limit without a model ------------------------------------------

def _header_png(path, width, height):
    def chunk(name, data):
        return struct.pack(">I", len(data)) + name + data + struct.pack(">I", zlib.crc32(name + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_image_api_pixel_limit_from_the_header(tmp_path):
    """jaclip.Image refuses one pixel over the default limit (2 x PIL's MAX_IMAGE_PIXELS) from the
    header; JACLIP_MAX_IMAGE_PIXELS lowers the default for a process; an explicit max_pixels wins. Under
    a 512 MB address space: nothing is decoded (the 1 x 178 956 970 image at the limit took 19 s and
    1.6 GB, now 10 s and 0.2 GB: test_bounds and docs/reliability.md)."""
    over, mid = tmp_path / "over.png", tmp_path / "mid.png"
    _header_png(over, 1, 178956971)
    _header_png(mid, 2000, 1000)
    got = python_cases(PRELUDE + f"""
import os
case("over, file", lambda: jaclip.Image({str(over)!r}))
case("over, bytes", lambda: jaclip.Image.from_bytes(open({str(over)!r}, "rb").read()))
os.environ["JACLIP_MAX_IMAGE_PIXELS"] = "1000000"
case("2000x1000 under the variable", lambda: jaclip.Image({str(mid)!r}))
case("2000x1000, explicit 1", lambda: jaclip.Image({str(mid)!r}, max_pixels=1))
os.environ["JACLIP_MAX_IMAGE_PIXELS"] = "a lot"
case("a malformed variable", lambda: jaclip.Image({str(mid)!r}))
print(json.dumps(results))
""", as_mb=512, timeout=30)
    for name in ("over, file", "over, bytes", "2000x1000 under the variable", "2000x1000, explicit 1"):
        assert got[name].startswith("ImageTooLargeError"), (name, got[name])
    assert "limit of 1000000 pixels" in got["2000x1000 under the variable"]
    assert got["a malformed variable"].startswith("InvalidArgumentError") and "JACLIP_MAX_IMAGE_PIXELS" in \
        got["a malformed variable"]
