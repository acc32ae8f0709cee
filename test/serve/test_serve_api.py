"""Every endpoint of `jaclip serve` against the library called directly through the Python binding in
this process: features within 1e-5 (another process may differ in the last bits), the same top-k labels
and probabilities, thumbnails as the library's own resize + centre crop."""
import io
import os
import json
import re

import numpy as np
import pytest
from PIL import Image

import jaclip
from conftest import ROOT, multipart

TOL = 1e-5


def test_healthz(server):
    assert server.json("GET", "/healthz") == {"status": "ok"}


def test_info_and_indexes(server, model, photos):
    info = server.json("GET", "/v1/info")
    assert info["model"]["dim"] == model.embedding_dim
    assert info["model"]["fingerprint"].startswith("cloob-")
    assert info["indexes"] == [{"name": "photos", "rows": 8, "dim": model.embedding_dim, "ann": None},
                               {"name": "vectors", "rows": 50, "dim": model.embedding_dim, "ann": None}]
    assert server.json("GET", "/v1/indexes") == {"indexes": info["indexes"]}
    assert server.json("GET", "/v1/indexes/vectors") == info["indexes"][1]
    err = server.json("GET", "/v1/indexes/nope", expect=404)["error"]
    assert err["status"] == "JACLIP_ERROR_NOT_FOUND"


def test_embed_text(server, model):
    texts = ["犬", "猫の写真", "a photo of a dog", "ｶﾀｶﾅ　全角"]
    got = server.json("POST", "/v1/embed/text", {"texts": texts})
    assert list(got) == ["embeddings"]
    want = model.encode_texts(texts)
    assert np.asarray(got["embeddings"]).shape == want.shape
    np.testing.assert_allclose(np.asarray(got["embeddings"], dtype=np.float32), want, rtol=0, atol=TOL)


def test_embed_image_raw_and_multipart(server, model, photos):
    raw = open(photos["paths"][0], "rb").read()
    png = open(photos["paths"][1], "rb").read()
    want = model.encode_images([raw, png])
    got = server.json("POST", "/v1/embed/image", raw, {"Content-Type": "image/jpeg"})
    np.testing.assert_allclose(np.asarray(got["embeddings"]), want[:1], rtol=0, atol=TOL)
    body, ctype = multipart([("image", "a.jpg", raw, "image/jpeg"), ("image", "b.png", png, "image/png")])
    got = server.json("POST", "/v1/embed/image", body, {"Content-Type": ctype})
    np.testing.assert_allclose(np.asarray(got["embeddings"]), want, rtol=0, atol=TOL)


def test_classify(server, model, photos):
    labels, templates = ["犬", "猫", "象", "車"], ["{}の写真", "{}のイラスト"]
    raw = open(photos["paths"][2], "rb").read()
    want = model.classify(raw, labels, template=templates)
    body, ctype = multipart([("image", "p.jpg", raw, "image/jpeg")] + [("label", x) for x in labels]
                            + [("template", t) for t in templates])
    got = server.json("POST", "/v1/classify", body, {"Content-Type": ctype})["labels"]
    assert [g["label"] for g in got] == [p.label for p in want]
    np.testing.assert_allclose([g["probability"] for g in got], [p.probability for p in want], rtol=0, atol=TOL)
    # The same as a raw body with query arguments, and with the default template "{}".
    q = "&".join("label=" + __import__("urllib.parse").parse.quote(x) for x in labels)
    got = server.json("POST", "/v1/classify?" + q, raw, {"Content-Type": "image/jpeg"})["labels"]
    want = model.classify(raw, labels)
    assert [g["label"] for g in got] == [p.label for p in want]
    np.testing.assert_allclose([g["probability"] for g in got], [p.probability for p in want], rtol=0, atol=TOL)
    # At a scale where the probabilities saturate to 0, the order is the cosines', as the library's.
    got = server.json("POST", "/v1/classify?" + q + "&scale=100000", raw, {"Content-Type": "image/jpeg"})["labels"]
    want = model.classify(raw, labels, scale=1e5)
    assert [g["label"] for g in got] == [p.label for p in want]


def check_hits(got, want):
    assert [g["label"] for g in got] == [h.label for h in want]
    assert [g["row"] for g in got] == [h.row for h in want]
    np.testing.assert_allclose([g["score"] for g in got], [h.score for h in want], rtol=0, atol=TOL)


@pytest.mark.parametrize("text", ["犬の写真", "赤い車"])
def test_search_text(server, model, photos, text):
    got = server.json("POST", "/v1/search", {"text": text, "k": 5, "index": "photos"})
    assert sorted(got) == ["results", "search"] and got["search"] == "exact"  # no INDEX.ann here
    check_hits(got["results"], photos["index"].search_text(model, text, 5))


def test_search_embedding_row_threshold_and_k(server, model, photos):
    rng = np.random.default_rng(3)
    q = rng.normal(size=model.embedding_dim).astype(np.float32)
    got = server.json("POST", "/v1/search", {"embedding": q.tolist(), "k": 7, "index": "vectors"})["results"]
    idx, val = photos["vectors"].search(q[None], 7)
    assert [g["row"] for g in got] == idx[0].tolist()
    np.testing.assert_allclose([g["score"] for g in got], val[0], rtol=0, atol=TOL)
    # threshold drops the rest; k larger than the index gives every row.
    cut = float(val[0][3])
    got = server.json("POST", "/v1/search", {"embedding": q.tolist(), "k": 7, "index": "vectors",
                                             "threshold": cut - 1e-4})["results"]
    assert [g["row"] for g in got] == idx[0][:4].tolist()
    got = server.json("POST", "/v1/search", {"embedding": q.tolist(), "k": 1000, "index": "photos"})["results"]
    assert len(got) == 8
    # "more like this": a row's own embedding finds the row first with score 1.
    got = server.json("POST", "/v1/search", {"row": 5, "k": 3, "index": "photos"})["results"]
    stored = photos["index"].embeddings(5, 1)
    idx, val = photos["index"].search(stored, 3)
    assert got[0]["row"] == 5 and abs(got[0]["score"] - 1) < TOL
    assert [g["row"] for g in got] == idx[0].tolist()


def test_search_image(server, model, photos):
    raw = open(photos["paths"][3], "rb").read()
    want = photos["index"].search_image(model, raw, 4)
    got = server.json("POST", "/v1/search?index=photos&k=4", raw, {"Content-Type": "image/png"})["results"]
    check_hits(got, want)
    body, ctype = multipart([("image", "q.png", raw, "image/png"), ("k", "4"), ("index", "photos")])
    got = server.json("POST", "/v1/search", body, {"Content-Type": ctype})["results"]
    check_hits(got, want)


def test_search_needs_index_name_when_several(server):
    err = server.json("POST", "/v1/search", {"text": "犬"}, expect=400)["error"]
    assert err["status"] == "JACLIP_ERROR_INVALID_ARGUMENT" and "index" in err["message"]
    err = server.json("POST", "/v1/search", {"text": "犬", "index": "missing"}, expect=404)["error"]
    assert err["status"] == "JACLIP_ERROR_NOT_FOUND"


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.split()[-1])
    return 0.0


def test_thumbnail_is_the_library_crop_and_cached(server, photos):
    status, hdrs, data = server.request("GET", "/v1/thumbnail?index=photos&row=4&size=96")
    assert status == 200 and hdrs["Content-Type"] == "image/jpeg"
    thumb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
    with jaclip.Image(photos["paths"][4]) as img:
        want = img.resize_crop(96).astype(np.float64)
    assert thumb.shape == want.shape == (96, 96, 3)
    # The same pixels through PIL's JPEG encoder (libjpeg too) at the same quality and subsampling.
    buf = io.BytesIO()
    Image.fromarray(want.astype(np.uint8)).save(buf, format="JPEG", quality=85, subsampling=2)
    ref = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64)
    assert np.abs(thumb - ref).mean() < 3.0  # decoders differ in chroma upsampling; another photo: > 40
    # The label of a row works too, and the second answer comes from the cache.
    hits = metric(server.request("GET", "/metrics")[2].decode(), "jaclip_thumbnail_cache_hits_total")
    status, _, again = server.request("GET", "/v1/thumbnail?index=photos&size=96&label="
                                      + __import__("urllib.parse").parse.quote(photos["paths"][4]))
    assert status == 200 and again == data
    assert metric(server.request("GET", "/metrics")[2].decode(), "jaclip_thumbnail_cache_hits_total") == hits + 1


def test_thumbnail_of_a_row_that_is_no_file(server):
    err = server.json("GET", "/v1/thumbnail?index=vectors&row=3", expect=404)["error"]
    assert err["status"] == "JACLIP_ERROR_NOT_FOUND"


def test_metrics_count_requests_and_latency(server):
    before = server.request("GET", "/metrics")[2].decode()
    n = metric(before, "jaclip_requests_total", route="embed_text", code="200")
    server.json("POST", "/v1/embed/text", {"texts": ["犬"]})
    server.json("POST", "/v1/embed/text", {"texts": []}, expect=400)
    status, hdrs, data = server.request("GET", "/metrics")
    text = data.decode()
    assert status == 200 and hdrs["Content-Type"].startswith("text/plain")
    assert metric(text, "jaclip_requests_total", route="embed_text", code="200") == n + 1
    assert metric(text, "jaclip_requests_total", route="embed_text", code="400") >= 1
    count = metric(text, "jaclip_request_duration_seconds_count", route="embed_text")
    assert count >= n + 2
    assert metric(text, "jaclip_request_duration_seconds_bucket", route="embed_text", le="+Inf") == count
    buckets = [float(m) for m in re.findall(r'bucket\{route="embed_text",le="[^"]+"\} (\d+)', text)]
    assert buckets == sorted(buckets)  # cumulative


def test_page_files(server):
    status, hdrs, data = server.request("GET", "/")
    assert status == 200 and hdrs["Content-Type"].startswith("text/html") and b"/app.js" in data
    assert server.request("GET", "/app.js")[0] == 200
    assert server.request("GET", "/style.css")[1]["Content-Type"].startswith("text/css")
    assert b"http" not in server.request("GET", "/")[2].replace(b"http-equiv", b"")  # nothing from a CDN


def test_openapi_file_lists_every_endpoint(server):
    yaml = pytest.importorskip("yaml", reason="python3-yaml is needed to read docs/serve-openapi.yaml")
    from conftest import ROOT
    import os
    spec = yaml.safe_load(open(os.path.join(ROOT, "docs", "serve-openapi.yaml")))
    assert spec["openapi"].startswith("3.")
    for path in spec["paths"]:
        probe = path.replace("{name}", "photos")
        assert server.request("GET", probe)[0] != 404 or probe == "/v1/thumbnail", path
    assert set(spec["paths"]) >= {"/healthz", "/metrics", "/v1/info", "/v1/indexes", "/v1/embed/text",
                                  "/v1/embed/image", "/v1/classify", "/v1/search", "/v1/thumbnail", "/v1/original"}


def test_classify_with_the_servers_classifier(model, photos, tmp_path):
    from conftest import Server
    labels, templates = ["犬", "猫", "象", "車", "海"], ["{}の写真", "{}のイラスト"]
    clf = jaclip.Classifier(model, labels, templates)
    path = str(tmp_path / "animals.jzs")
    clf.save(path)
    raw = open(photos["paths"][1], "rb").read()
    want = np.asarray(clf.classify([raw]))[0]
    s = Server("--classifier", path)
    try:
        got = s.json("POST", "/v1/classify", raw, {"Content-Type": "image/jpeg"})["labels"]
        order = np.argsort(-want, kind="stable")
        assert [g["label"] for g in got] == [labels[i] for i in order]
        np.testing.assert_allclose([g["probability"] for g in got], want[order], rtol=0, atol=TOL)
        # Labels in the request still win over the server's classifier.
        q = "label=%E7%8A%AC&label=%E7%8C%AB"
        assert len(s.json("POST", "/v1/classify?" + q, raw, {"Content-Type": "image/jpeg"})["labels"]) == 2
    finally:
        assert s.stop() == 0
    # A classifier made with another model is refused at start-up.
    other = jaclip.Model(os.environ.get("JACLIP_TEST_MODEL_BF16", os.path.join(ROOT, "build", "models", "tiny-bf16.jaclip")))
    jaclip.Classifier(other, labels).save(str(tmp_path / "other.jzs"))
    with pytest.raises(pytest.fail.Exception, match="built with model .*, not with this model"):
        Server("--classifier", str(tmp_path / "other.jzs"))
