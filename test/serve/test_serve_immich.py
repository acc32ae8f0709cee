"""Immich's machine-learning protocol (docs/immich.md), spoken by immich_client.mjs exactly as Immich's
server speaks it (Node's built-in fetch, FormData, Blob), against running servers; expected features
come from the library through the Python binding in this process. Servers run under an RLIMIT_AS, on
loopback; Node and every request have timeouts."""
import http.client
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import Server

HERE = os.path.dirname(os.path.abspath(__file__))
AS = 4 << 30  # the tiny model's server maps ~0.9 GB at rest
NODE = shutil.which("node")
MODEL_NAME = "ViT-B-16__openai"
TEXTS = ["犬", "海辺の夕日", "赤い車の写真", "a photo of a cat"]

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js (`node`, tools/setup-deps: nodejs) is not installed")


def immich(server, cases, tmp_path):
    """The results of immich_client.mjs for cases, by name."""
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases, ensure_ascii=False))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    run = subprocess.run([NODE, os.path.join(HERE, "immich_client.mjs"), f"http://127.0.0.1:{server.port}",
                          str(path)], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    return {r["name"]: r for r in json.loads(run.stdout)}


def cosine(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Non-square images as Immich sends previews: a JPEG, a PNG, and a JPEG whose EXIF says rotate
    90 degrees (Immich's service decodes without applying it: the stored size is the raw one)."""
    folder = tmp_path_factory.mktemp("immich")
    rng = np.random.default_rng(26)
    out = {}
    for name, (w, h) in {"wide.jpg": (157, 61), "tall.png": (45, 130), "rotated.jpg": (140, 90)}.items():
        pixels = np.clip(rng.integers(0, 256, 3) + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        img = Image.fromarray(pixels)
        path = str(folder / name)
        if name == "rotated.jpg":
            exif = Image.Exif()
            exif[0x0112] = 6
            img.save(path, format="JPEG", quality=90, exif=exif)
        else:
            img.save(path, format="PNG" if name.endswith(".png") else "JPEG", quality=90)
        out[name] = (path, w, h)
    return out


@pytest.fixture(scope="module")
def any_name():
    s = Server("--timeout", 10, address_space=AS)
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def named():
    s = Server("--timeout", 10, "--immich-model", MODEL_NAME, "--allow-host", "jaclip-ml", address_space=AS)
    yield s
    assert s.stop() == 0


def text_batches(server):
    status, _, data = server.request("GET", "/metrics")
    assert status == 200
    return int(re.search(rb'jaclip_batched_queries_total\{kind="text"\} (\d+)', data).group(1))


def test_ping(any_name, tmp_path):
    r = immich(any_name, [{"name": "ping", "path": "/ping"}], tmp_path)["ping"]
    assert (r["status"], r["body"]) == (200, "pong")
    assert r["type"].startswith("text/plain")


def test_textual_equals_library(any_name, model, tmp_path):
    batched = text_batches(any_name)
    entries = lambda name: {"clip": {"textual": {"modelName": name, "options": {"language": "ja"}}}}  # noqa: E731
    cases = [{"name": t, "entries": entries(["ViT-B-16__openai", "XLM-Roberta-Large-Vit-B-16Plus"][i % 2]), "text": t}
             for i, t in enumerate(TEXTS)]
    got = immich(any_name, cases, tmp_path)
    want = model.encode_texts(TEXTS)
    for i, t in enumerate(TEXTS):
        r = got[t]
        assert r["status"] == 200, r
        assert set(r["body"]) == {"clip", "vector"} and isinstance(r["body"]["clip"], str)
        v = np.asarray(r["body"]["vector"])
        assert v.shape == (model.embedding_dim,)
        assert cosine(v, want[i]) >= 0.99999
        assert abs(np.linalg.norm(v) - 1) < 1e-5  # L2-normalised, as documented
    # Each single text went through the batcher (counted there even as a batch of one).
    assert text_batches(any_name) - batched == len(TEXTS)


def test_visual_equals_library_with_decoded_size(any_name, model, images, tmp_path):
    cases = [{"name": n, "entries": {"clip": {"visual": {"modelName": "ViT-B-16__openai"}}}, "image": p}
             for n, (p, w, h) in images.items()]
    got = immich(any_name, cases, tmp_path)
    names = list(images)
    want = model.encode_images([images[n][0] for n in names])
    for i, n in enumerate(names):
        r = got[n]
        assert r["status"] == 200, r
        assert set(r["body"]) == {"clip", "imageHeight", "imageWidth", "vector"}
        _, w, h = images[n]
        assert (r["body"]["imageWidth"], r["body"]["imageHeight"]) == (w, h)
        assert cosine(r["body"]["vector"], want[i]) >= 0.99999
        assert abs(np.linalg.norm(r["body"]["vector"]) - 1) < 1e-5


def test_errors(any_name, images, tmp_path):
    image = images["wide.jpg"][0]
    visual = {"clip": {"visual": {"modelName": MODEL_NAME}}}
    faces = {"facial-recognition": {"detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
                                    "recognition": {"modelName": "buffalo_l"}}}
    ocr = {"ocr": {"detection": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.5, "maxResolution": 736}},
                   "recognition": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.8}}}}
    cases = [
        {"name": "not json", "entries": "{clip", "text": "犬"},
        {"name": "no modelName", "entries": {"clip": {"textual": {"options": {"language": "ja"}}}}, "text": "犬"},
        {"name": "not an object", "entries": '["clip"]', "image": image},
        {"name": "no entries", "text": "犬"},
        {"name": "neither", "entries": visual},
        {"name": "assetId only", "entries": visual, "assetId": "6b1c0bd4-6f8a-4f44-9bd9-2b2a3f5c6d7e"},
        {"name": "faces", "entries": faces, "image": image},
        {"name": "ocr", "entries": ocr, "image": image},
        {"name": "visual without image", "entries": visual, "text": "犬"},
        {"name": "not an image", "entries": visual, "image": os.path.join(HERE, "immich_client.mjs")},
    ]
    got = immich(any_name, cases, tmp_path)
    for name in ("not json", "no modelName", "not an object", "no entries"):
        assert got[name]["status"] == 422, got[name]
    assert got["neither"]["status"] == 400
    assert "either 'image' or 'text'" in got["neither"]["body"]["error"]["message"]
    assert got["assetId only"]["status"] == 400 and "assetId" in got["assetId only"]["body"]["error"]["message"]
    for name, task in (("faces", "facial-recognition"), ("ocr", "ocr")):
        err = got[name]["body"]["error"]
        assert got[name]["status"] == 400 and err["status"] == "IMMICH_UNSUPPORTED_TASK", got[name]
        assert f"task '{task}' is not supported" in err["message"]
    assert got["visual without image"]["status"] == 400
    assert got["not an image"]["status"] == 400
    assert got["not an image"]["body"]["error"]["status"] == "JACLIP_ERROR_IMAGE_DECODE"
    # The server is still well after all of it.
    assert immich(any_name, [{"name": "ping", "path": "/ping"}], tmp_path)["ping"]["status"] == 200


def test_immich_model_and_allow_host(named, any_name, model, tmp_path):
    cases = [{"name": "match", "entries": {"clip": {"textual": {"modelName": MODEL_NAME}}}, "text": TEXTS[1]},
             {"name": "other", "entries": {"clip": {"textual": {"modelName": "ViT-L-14__openai"}}}, "text": "犬"}]
    got = immich(named, cases, tmp_path)
    assert got["match"]["status"] == 200
    assert cosine(got["match"]["body"]["vector"], model.encode_texts([TEXTS[1]])[0]) >= 0.99999
    err = got["other"]["body"]["error"]
    assert got["other"]["status"] == 400 and err["status"] == "IMMICH_MODEL_MISMATCH"
    assert "ViT-L-14__openai" in err["message"] and MODEL_NAME in err["message"]

    # The Host rule: Immich's server reaching this one by a container name, with no token.
    def status(server, host, path="/ping"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": host})
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    assert status(named, "jaclip-ml:3003") == 200
    assert status(any_name, "jaclip-ml:3003") == 403  # only with --allow-host
    assert status(named, "JACLIP-ML") == 200
    assert status(named, "jaclip-ml.evil.example:3003") == 403
    assert status(named, "evil.example:3003") == 403


def test_non_loopback_needs_token_or_trust_network():
    import conftest
    run = subprocess.run([conftest.CLI, "serve", "--model", conftest.TINY_MODEL, "--host", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--trust-network" in run.stderr


def test_with_token_ping_is_public_and_predict_is_not(tmp_path):
    s = Server("--token", "immich-test-token", "--timeout", 10, address_space=AS)
    try:
        got = immich(s, [{"name": "ping", "path": "/ping"},
                         {"name": "predict", "entries": {"clip": {"textual": {"modelName": MODEL_NAME}}}, "text": "犬"}],
                     tmp_path)
        assert got["ping"]["status"] == 200
        # Immich sends no token (docs/immich.md). serve refuses before reading the body, so the client
        # may get the 401 or, still writing its form, a closed connection: never an answer.
        r = got["predict"]
        assert r["status"] == 401 or (r["status"] == 0 and r["error"] in ("EPIPE", "ECONNRESET")), r
    finally:
        assert s.stop() == 0
