"""Request batching in `jaclip serve` (--max-batch): single text queries, and single searches of one index,
that queue while the model slot is busy are answered by one library call. Checked against the library
called directly: searches to the byte (the scan's order does not depend on the batch), text features
within the batch-composition tolerance of docs/determinism.md. The slot is held by a large image request
so that the burst queues; bounded: a few bursts, loopback only."""
import io
import json
import re
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import Server, multipart

TEXTS = ["犬", "猫の写真", "海辺の夕日", "赤い車", "桜の木の下で遊ぶ子供", "雪山", "東京の夜景", "ラーメン",
         "a photo of a dog", "夕焼けと富士山", "図書館", "自転車に乗る人"]


@pytest.fixture(scope="module")
def big_images():
    """Large JPEGs: decoding and encoding them holds the server's one model slot for a while."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:900, 0:1200]
    out = []
    for i in range(32):
        pixels = np.stack([(x + 40 * i) % 256, (y + 7 * i) % 256, (x + y) % 256], axis=2)
        pixels = np.clip(pixels + rng.normal(0, 3, pixels.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        out.append(("images", f"big{i}.jpg", buf.getvalue(), "image/jpeg"))
    return out


def batch_counts(server, kind):
    _, _, text = server.request("GET", "/metrics")
    text = text.decode()
    calls = int(re.search(rf'^jaclip_batches_total{{kind="{kind}"}} (\d+)$', text, re.M).group(1))
    queries = int(re.search(rf'^jaclip_batched_queries_total{{kind="{kind}"}} (\d+)$', text, re.M).group(1))
    return calls, queries


def burst(server, big_images, requests):
    """Holds the model slot with one large image request, sends `requests` (method, path, body) at once
    while it runs, and returns their (status, body) in order."""
    body, ctype = multipart(big_images)
    holder = threading.Thread(target=server.request, args=("POST", "/v1/embed/image", body,
                                                           {"Content-Type": ctype}), kwargs={"timeout": 120})
    holder.start()
    time.sleep(0.2)
    results = [None] * len(requests)

    def send(i):
        status, _, data = server.request(*requests[i], timeout=120)
        results[i] = (status, json.loads(data))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads + [holder]:
        t.join(timeout=180)
    assert all(r is not None for r in results), "a request of the burst did not finish"
    return results


def burst_until_batched(server, big_images, requests, kind):
    """Bursts (at most three) until one library call answered more than one query; returns the last
    burst's results and how many calls and queries it added."""
    for _ in range(3):
        calls0, queries0 = batch_counts(server, kind)
        results = burst(server, big_images, requests)
        calls, queries = batch_counts(server, kind)
        if queries - queries0 > calls - calls0:
            return results, calls - calls0, queries - queries0
    pytest.fail(f"no {kind} batch of more than one query formed in three bursts of {len(requests)}")


def close(ours, theirs):
    """docs/determinism.md: another batch composition is within 1e-5 of the largest |feature|."""
    ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-5 * max(1.0, float(np.abs(theirs).max()))


@pytest.fixture(scope="module")
def batching_server(photos):
    s = Server("--index", f"photos={photos['index_path']}", "--index", f"vectors={photos['vectors_path']}",
               "--threads", "1", "--max-batch", "8", "--timeout", "60")
    yield s
    assert s.stop() == 0


def test_text_queries_that_queue_share_one_call(batching_server, big_images, model):
    requests = [("POST", "/v1/embed/text", {"texts": [t]}) for t in TEXTS]
    results, calls, queries = burst_until_batched(batching_server, big_images, requests, "text")
    assert queries == len(TEXTS) and calls < queries
    assert calls >= len(TEXTS) / 8  # --max-batch 8
    for text, (status, body) in zip(TEXTS, results):
        assert status == 200, body
        close(body["embeddings"], model.encode_texts([text]))
    # Alone (nothing queued), a query is one call of one: the same bytes as the library's.
    body = batching_server.json("POST", "/v1/embed/text", {"texts": ["犬"]})
    assert np.array_equal(np.asarray(body["embeddings"], np.float32), model.encode_texts(["犬"]))


def test_searches_that_queue_share_one_scan_and_equal_the_library(batching_server, big_images, photos):
    rng = np.random.default_rng(3)
    queries = rng.normal(size=(10, photos["vectors"].dim)).astype(np.float32)
    ks = [1, 3, 5, 50, 2, 7, 4, 10, 6, 8]
    requests = [("POST", "/v1/search", {"index": "vectors", "embedding": q.tolist(), "k": k})
                for q, k in zip(queries, ks)]
    results, calls, total = burst_until_batched(batching_server, big_images, requests, "search")
    assert total == len(requests) and calls < total
    for q, k, (status, body) in zip(queries, ks, results):
        assert status == 200, body
        rows, scores = photos["vectors"].search(q[None], k)
        assert [r["row"] for r in body["results"]] == rows[0].tolist()
        assert [np.float32(r["score"]) for r in body["results"]] == scores[0].tolist()


def test_text_search_in_a_batch_ranks_as_the_library(batching_server, big_images, model, photos):
    requests = [("POST", "/v1/search", {"index": "photos", "text": t, "k": 8}) for t in TEXTS[:6]]
    results, _, _ = burst_until_batched(batching_server, big_images, requests, "text")
    for text, (status, body) in zip(TEXTS, results):
        assert status == 200, body
        rows, scores = photos["index"].search(model.encode_texts([text]), 8)
        got = np.asarray([r["score"] for r in body["results"]], np.float32)
        # A cosine moves by at most ~2 sqrt(D) x the features' tolerance; rows may swap only within it.
        bound = 2 * np.sqrt(model.embedding_dim) * 1e-5
        assert np.abs(got - scores[0]).max() <= bound
        for r, want in zip(body["results"], rows[0]):
            if r["row"] != want:
                assert abs(r["score"] - float(scores[0][list(rows[0]).index(r["row"])])) <= bound


def test_a_bad_query_does_not_fail_its_batch(batching_server, big_images, model):
    huge = "あ" * 30_000  # a 90 kB run without a space: over JACLIP_TOKENIZER_MAX_RUN
    texts = TEXTS[:5] + [huge] + TEXTS[5:9]
    requests = [("POST", "/v1/embed/text", {"texts": [t]}) for t in texts]
    results, _, _ = burst_until_batched(batching_server, big_images, requests, "text")
    for text, (status, body) in zip(texts, results):
        if text is huge:
            assert status == 400 and body["error"]["status"] == "JACLIP_ERROR_INVALID_ARGUMENT", body
            assert body["error"]["message"].startswith("text 0: ") and "JACLIP_TOKENIZER_MAX_RUN" in body["error"]["message"]
        else:
            assert status == 200, body
            close(body["embeddings"], model.encode_texts([text]))


def test_max_batch_1_runs_each_query_alone(photos, big_images, model):
    s = Server("--index", photos["index_path"], "--threads", "1", "--max-batch", "1", "--timeout", "60")
    try:
        results = burst(s, big_images, [("POST", "/v1/embed/text", {"texts": [t]}) for t in TEXTS[:6]])
        assert batch_counts(s, "text") == (6, 6)
        for text, (status, body) in zip(TEXTS, results):
            assert status == 200
            assert np.array_equal(np.asarray(body["embeddings"], np.float32), model.encode_texts([text]))
    finally:
        assert s.stop() == 0


def test_a_queued_query_past_the_timeout_gets_503(photos):
    y, x = np.mgrid[0:3000, 0:4000]
    pixels = np.stack([(x // 3) % 256, (y // 5) % 256, ((x + y) // 7) % 256], axis=2).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=80)
    # 64 (MAX_IMAGES) 12-megapixel photos: seconds of decoding (2.5 s on a 2-core Xeon) under a 1 s timeout.
    body, ctype = multipart([("images", f"big{i}.jpg", buf.getvalue(), "image/jpeg") for i in range(64)])
    s = Server("--index", photos["index_path"], "--threads", "1", "--timeout", "1", "--max-body", str(64 << 20))
    try:
        start = time.monotonic()
        holder = threading.Thread(target=s.request, args=("POST", "/v1/embed/image", body, {"Content-Type": ctype}),
                                  kwargs={"timeout": 120})
        holder.start()
        time.sleep(0.2)
        status, _, data = s.request("POST", "/v1/search", {"text": "犬"})
        waited = time.monotonic() - start
        holder.join(timeout=180)
        if status == 200:
            pytest.skip(f"the image request ended within the 1 s timeout here ({waited:.1f} s)")
        assert status == 503 and json.loads(data)["error"]["status"] == "SERVE_BUSY"
        assert s.json("POST", "/v1/search", {"text": "犬", "k": 1})["results"]
    finally:
        assert s.stop() == 0
