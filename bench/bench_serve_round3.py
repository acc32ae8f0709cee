"""Figures of issue 24's server classes (1-4, 6-9) for one `jaclip serve` binary: seconds and the server's
peak RSS growth (VmHWM) per hostile request, and what was answered. Run it against the binary before and
after a change (not in make test; the bounded checks are test/serve/test_serve_round3.py):

    JACLIP_LIBRARY=build/libjaclip.so PYTHONPATH=bindings/python \\
        python3 bench/bench_serve_round3.py --cli build/jaclip --model build/models/tiny.jaclip
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import numpy as np
from PIL import Image

import jaclip


class Server:
    def __init__(self, cli, model, *args):
        self.proc = subprocess.Popen([cli, "serve", "--model", model, "--port", "0", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = int(self.proc.stdout.readline().split("127.0.0.1:")[1].split("/")[0])

    def hwm(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

    def request(self, method, path, body=None, headers=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            return type(e).__name__, b""
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def multipart(fields):
    b = "b7d3f"
    out = []
    for f in fields:
        if len(f) == 2:
            out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{f[0]}\"\r\n\r\n".encode()
                       + f[1].encode() + b"\r\n")
        else:
            out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{f[0]}\"; filename=\"{f[1]}\"\r\n"
                       f"Content-Type: image/jpeg\r\n\r\n".encode() + f[2] + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={b}"


def measure(s, fn):
    before, t0 = s.hwm(), time.monotonic()
    answer = fn()
    return {"seconds": round(time.monotonic() - t0, 2), "rss_growth_mb": round((s.hwm() - before) / 2**20, 1),
            "answer": answer}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    model = jaclip.Model(a.model)
    lib = os.path.join(tmp, "lib", "trip")
    os.makedirs(lib)
    other = os.path.join(tmp, "other")
    os.makedirs(other)
    rng = np.random.default_rng(3)
    paths = []
    for i in range(4):
        p = os.path.join(lib, f"p{i}.jpg")
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(p, quality=90)
        shutil.copy(p, os.path.join(other, f"p{i}.jpg"))
        paths.append(p)
    index = jaclip.Index(model.embedding_dim)
    index.add(model.encode_images(paths), paths)
    idx = os.path.join(tmp, "live.jci")
    index.save(idx)
    raw = open(paths[0], "rb").read()
    out = {}

    s = Server(a.cli, a.model, "--index", idx, "--timeout", 30)
    n = ((16 << 20) - 64) // 3  # just under the default --max-body
    out["1 json [{},...] 16 MiB"] = measure(s, lambda: s.request(
        "POST", "/v1/embed/text", b"[" + b"{}," * n + b"{}]", {"Content-Type": "application/json"})[0])
    texts = b'{"texts":[' + b"0," * (n * 3 // 2) + b'0]}'
    out["1 json {texts:[0,...]} 16 MiB"] = measure(s, lambda: s.request(
        "POST", "/v1/embed/text", texts, {"Content-Type": "application/json"})[0])
    out["1 json {texts:[0,...]} 1 MB"] = measure(s, lambda: s.request(
        "POST", "/v1/embed/text", b'{"texts":[' + b"0," * 500_000 + b'0]}', {"Content-Type": "application/json"})[0])
    body, ctype = multipart([("image", "p.jpg", raw), ("template", "x" * (1 << 20) + "{}")]
                            + [("label", f"l{i}") for i in range(1000)])
    out["2 classify 1 MiB template x 1000 labels"] = measure(s, lambda: s.request(
        "POST", "/v1/classify", body, {"Content-Type": ctype})[0])
    out["4 Host: evil.example"] = s.request("GET", "/v1/indexes", headers={"Host": "evil.example"})[0]
    body, ctype = multipart([("image", f"p{i}.jpg", raw) for i in range(65)])
    st, data = s.request("POST", "/v1/embed/image", body, {"Content-Type": ctype})
    out["7 65 image parts"] = [st, len(json.loads(data)["embeddings"]) if st == 200 else None]
    q = "&".join(f"label=%E3%83%A9%E3%83%99%E3%83%AB{i}" for i in range(1000))
    out["7 1000 labels in the query"] = s.request("POST", "/v1/classify?" + q, raw, {"Content-Type": "image/jpeg"})[0]
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
        c.sendall(b"POST /v1/embed/text HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                  b"GET /v1/indexes HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = b""
        try:
            while chunk := c.recv(65536):
                got += chunk
        except socket.timeout:
            pass
    out["8 CL + TE: responses"] = got.count(b"HTTP/1.1 ")
    shutil.rmtree(lib)
    os.symlink(other, lib)
    out["3 thumbnail, folder swapped for a symlink"] = s.request("GET", "/v1/thumbnail?row=0")[0]
    with open(idx, "r+b") as f:
        f.truncate(os.path.getsize(idx) // 2)
    st, data = s.request("POST", "/v1/search", json.dumps({"row": 0, "k": 2}).encode(),
                         {"Content-Type": "application/json"})
    out["9 index truncated in place: search"] = [st, data[:80].decode(errors="replace"), s.proc.poll()]
    s.stop()

    s = Server(a.cli, a.model, "--timeout", 2, "--model-threads", 1)
    labels = [("label", f"長いラベル{i} " + "犬 猫 " * 100) for i in range(1000)]
    body, ctype = multipart([("image", "p.jpg", raw)] + labels + [("template", "{}の写真"), ("template", "{}のイラスト")])
    answer = {}
    t = threading.Thread(target=lambda: answer.update(code=s.request("POST", "/v1/classify", body,
                                                                      {"Content-Type": ctype})[0]))
    t.start()
    time.sleep(2)
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    s.proc.wait(120)
    out["6 SIGTERM 2 s into a classify, --timeout 2: exit after s"] = [round(time.monotonic() - t0, 2)]
    t.join(120)
    out["6 SIGTERM 2 s into a classify, --timeout 2: exit after s"].append(answer.get("code"))
    shutil.rmtree(tmp)
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
