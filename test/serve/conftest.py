"""Fixtures for `jaclip serve`: generated photos, an index of them built with the Python binding, and
servers started on a free loopback port (--port 0; the port is read from the first line of stdout)."""
import http.client
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("JACLIP_CLI", os.path.join(ROOT, "build", "jaclip"))
TINY_MODEL = os.path.abspath(os.environ.get("JACLIP_TEST_MODEL", os.path.join(ROOT, "build", "models", "tiny.jaclip")))

import jaclip  # noqa: E402  (PYTHONPATH=bindings/python, JACLIP_LIBRARY=build/libjaclip.so)


class Server:
    def __init__(self, *args, env=None, address_space=None):
        """address_space: an RLIMIT_AS for the server process, in bytes."""
        if not os.path.exists(CLI):
            pytest.fail(f"{CLI} is missing: run `make` first")

        def limit():
            if address_space:
                import resource
                resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

        self.proc = subprocess.Popen([CLI, "serve", "--model", TINY_MODEL, "--port", "0", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})), preexec_fn=limit)
        line = self.proc.stdout.readline()  # blocks until listening (or exit)
        if "listening on http://127.0.0.1:" not in line:
            self.proc.kill()
            pytest.fail(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split("127.0.0.1:")[1].split("/")[0])

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body, ensure_ascii=False).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, expect=200):
        status, hdrs, data = self.request(method, path, body, headers)
        assert status == expect, (status, data[:500])
        assert hdrs.get("Content-Type", "").startswith("application/json"), hdrs
        return json.loads(data)

    def peak_rss(self):
        """The server's peak resident set (VmHWM), in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


def multipart(fields):
    """(body, content type) of multipart/form-data: fields is a list of (name, value) or
    (name, filename, bytes, type)."""
    boundary = "jaclipBoundary7d3f"
    out = []
    for f in fields:
        if len(f) == 2:
            out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{f[0]}\"\r\n\r\n".encode()
                       + f[1].encode() + b"\r\n")
        else:
            out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{f[0]}\"; filename=\"{f[1]}\"\r\n"
                       f"Content-Type: {f[3]}\r\n\r\n".encode() + f[2] + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="session")
def model():
    with jaclip.Model(TINY_MODEL) as m:
        yield m


@pytest.fixture(scope="session")
def photos(tmp_path_factory, model):
    """Eight generated photos of distinct colours and textures, the photos index (built with the binding)
    and a second index of generated vectors."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(16)
    paths = []
    for i in range(8):
        h, w = 60 + 7 * i, 90 - 3 * i
        base = rng.integers(0, 256, 3)
        pixels = np.clip(base + rng.normal(0, 20 + 10 * i, (h, w, 3)), 0, 255).astype(np.uint8)
        path = folder / (f"photo{i}.png" if i % 2 else f"photo{i}.jpg")
        Image.fromarray(pixels).save(path, format="PNG" if i % 2 else "JPEG", quality=90)
        paths.append(str(path))
    features = model.encode_images(paths)
    index = jaclip.Index(model.embedding_dim)
    index.add(features, paths)
    index_path = str(folder / "photos.jaclip-index")
    index.save(index_path)
    vectors = jaclip.Index(model.embedding_dim)
    vectors.add(rng.normal(size=(50, model.embedding_dim)).astype(np.float32), [f"vec{i}" for i in range(50)])
    vectors_path = str(folder / "vectors.jaclip-index")
    vectors.save(vectors_path)
    return {"folder": folder, "paths": paths, "index": index, "index_path": index_path,
            "vectors": vectors, "vectors_path": vectors_path}


@pytest.fixture(scope="module")
def server(photos):
    s = Server("--index", f"photos={photos['index_path']}", "--index", photos["vectors_path"],
               "--threads", "2", "--max-body", 1 << 20, "--timeout", 3)
    yield s
    assert s.stop() == 0
