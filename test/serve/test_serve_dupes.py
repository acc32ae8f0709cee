"""GET /v1/duplicates (issue 25): the groups of a served index against numpy brute force, page by page,
and its bad parameters. Loopback, bounded (400 generated rows, RLIMIT_AS on the server)."""
import os
import sys

import numpy as np
import pytest

import jaclip
from conftest import ROOT, Server

sys.path.insert(0, os.path.join(ROOT, "test", "tools"))
from brute_dupes import components as brute_groups  # noqa: E402


@pytest.fixture(scope="module")
def dupes_server(model, tmp_path_factory):
    rng = np.random.default_rng(25)
    dim = model.embedding_dim
    data = rng.standard_normal((400, dim)).astype(np.float32)
    for b in range(12):  # copies of rows 20b at cosines above 0.98
        base = data[20 * b] / np.linalg.norm(data[20 * b])
        for c in range(1, 1 + b % 3 + 1):
            data[20 * b + c] = base + 0.004 * c * rng.standard_normal(dim)
    path = str(tmp_path_factory.mktemp("dupes") / "dupes.jci")
    with jaclip.Index(dim) as ix:
        ix.add(data, [f"album/{i:03}.jpg" for i in range(len(data))])
        ix.save(path)
    s = Server("--index", f"dupes={path}", "--threads", "1", address_space=4 << 30)
    yield s, data
    assert s.stop() == 0


def test_duplicates_pages_match_brute_force(dupes_server):
    s, data = dupes_server
    want, sim = brute_groups(data, 0.95)
    assert len(want) == 12
    got, offset = [], 0
    while True:
        page = s.json("GET", f"/v1/duplicates?index=dupes&threshold=0.95&offset={offset}&limit=5")
        assert (page["index"], page["total"], page["offset"], page["limit"]) == ("dupes", 12, offset, 5)
        got += page["groups"]
        if len(page["groups"]) < 5:
            break
        offset += 5
    assert [[r["row"] for r in g["rows"]] for g in got] == want
    for g in got:
        assert g["exact"] is False  # no file stamps: nothing is known to have equal content
        first = g["rows"][0]["row"]
        for r in g["rows"]:
            assert r["label"] == f"album/{r['row']:03}.jpg"
            assert abs(r["score"] - sim[first, r["row"]]) < 1e-5
    # the defaults (threshold 0.95, 50 groups) give the same, and exact_only none
    assert s.json("GET", "/v1/duplicates")["groups"] == got
    assert s.json("GET", "/v1/duplicates?exact_only=1")["total"] == 0


@pytest.mark.parametrize("query", ["threshold=2", "threshold=0.1", "threshold=abc", "offset=-1", "limit=0",
                                   "limit=1001", "exact_only=2"])
def test_duplicates_bad_parameters(dupes_server, query):
    s, _ = dupes_server
    status, _, body = s.request("GET", "/v1/duplicates?" + query)
    assert status == 400, body


def test_duplicates_unknown_index(dupes_server):
    s, _ = dupes_server
    assert s.request("GET", "/v1/duplicates?index=nope")[0] == 404


def test_duplicates_follow_a_reloaded_index_and_many_settings(model, tmp_path):
    # Groupings are kept per loaded view and setting: after the file changes, pages come from the new rows;
    # more settings than are kept still answer right.
    rng = np.random.default_rng(26)
    dim = model.embedding_dim
    data = rng.standard_normal((60, dim)).astype(np.float32)
    data[1] = data[0] + 0.001 * rng.standard_normal(dim)
    path = tmp_path / "live.jci"

    def save(rows):
        with jaclip.Index(dim) as ix:
            ix.add(rows, [f"p/{i:02}.jpg" for i in range(len(rows))])
            ix.save(str(tmp_path / "next.jci"))
        (tmp_path / "next.jci").replace(path)
    save(data)
    s = Server("--index", f"live={path}", "--threads", "1", address_space=4 << 30)
    try:
        first = s.json("GET", "/v1/duplicates?index=live")
        assert [[r["row"] for r in g["rows"]] for g in first["groups"]] == brute_groups(data, 0.95)[0] == [[0, 1]]
        changed = data.copy()
        changed[1] = rng.standard_normal(dim)
        changed[5] = changed[4] + 0.001 * rng.standard_normal(dim)
        save(changed)
        s.json("POST", "/v1/admin/reload", {})
        again = s.json("GET", "/v1/duplicates?index=live")
        assert [[r["row"] for r in g["rows"]] for g in again["groups"]] == brute_groups(changed, 0.95)[0] == [[4, 5]]
        for t in (0.9, 0.92, 0.94, 0.96, 0.98, 0.95):  # past the 4 kept settings, and back (LSH is sure here)
            page = s.json("GET", f"/v1/duplicates?index=live&threshold={t}&limit=1000")
            assert [[r["row"] for r in g["rows"]] for g in page["groups"]] == brute_groups(changed, t)[0]
    finally:
        assert s.stop() == 0
