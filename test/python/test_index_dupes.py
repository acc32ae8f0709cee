"""Index.duplicates (jaclip_index_duplicates, issue 25) against brute force: near duplicates of generated
rows (numpy cosine over all pairs, connected components), exact duplicates of copied photo files through
jaclip.sync_index (their content hash), pages, and the CLI `jaclip index dupes`. Bounded: 1 200 rows."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import LIBRARY, PROJECT_DATA, ROOT, TINY_MODEL

os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import jaclip  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "test", "tools"))
from brute_dupes import components  # noqa: E402

CLI = os.path.join(os.path.dirname(LIBRARY), "jaclip")
THRESHOLD = 0.95


def generated(n=1200, dim=48, seed=7):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, dim)).astype(np.float32)
    for b in range(40):  # three copies of rows 10b at cosines 0.98 .. 0.999
        base = 10 * b
        for c in (1, 2, 3):
            data[base + c] = data[base] / np.linalg.norm(data[base]) + 0.006 * c * rng.standard_normal(dim)
    for f in range(20):  # far pairs at cosine about 0.9
        data[601 + 2 * f] = data[600 + 2 * f] / np.linalg.norm(data[600 + 2 * f]) + 0.07 * rng.standard_normal(dim)
    return data


def test_near_duplicates_match_brute_force():
    data = generated()
    want, sim = components(data, THRESHOLD)
    assert not np.any(np.abs(sim[np.triu_indices(len(data), 1)] - THRESHOLD) < 1e-3)  # no float coin flips
    assert len(want) == 40
    with jaclip.Index(data.shape[1]) as ix:
        ix.add(data, [f"p/{i}.jpg" for i in range(len(data))])
        got = ix.duplicates(THRESHOLD)
        assert got.total == len(want)
        assert [[h.row for h in g.hits] for g in got.groups] == want
        for g in got.groups:
            assert not g.exact  # no stamps recorded: nothing is an exact duplicate
            first = g.hits[0].row
            assert g.hits[0].score == 1.0
            for h in g.hits:
                assert h.label == f"p/{h.row}.jpg"
                assert abs(h.score - sim[first, h.row]) < 1e-5
        # pages of 6 concatenate to the whole, in the same order
        paged, offset = [], 0
        while True:
            page = ix.duplicates(THRESHOLD, offset=offset, limit=6)
            assert page.total == got.total
            paged += page.groups
            if len(page.groups) < 6:
                break
            offset += 6
        assert paged == got.groups
        # a lower threshold joins the far pairs (cosine 0.90) too, with LSH's lower recall there: each
        # pair is found with probability 1 - (1 - p^16)^24 = 0.875, p = 1 - acos(0.9) / pi
        want_low, _ = components(data, 0.85)
        low = ix.duplicates(0.85)
        where = {h.row: n for n, g in enumerate(low.groups) for h in g.hits}
        found = sum(where.get(600 + 2 * f, -1) == where.get(601 + 2 * f, -2) for f in range(20))
        assert found >= 14
        for g in low.groups:  # never a false join: each group lies in one brute-force component
            assert any(set(h.row for h in g.hits) <= set(c) for c in want_low)
        assert ix.duplicates(exact_only=True) == (0, [])
        for bad in (0.2, 1.5, float("nan")):
            with pytest.raises(jaclip.InvalidArgumentError):
                ix.duplicates(bad)
        with pytest.raises(jaclip.InvalidArgumentError):
            ix.duplicates(offset=-1)


def test_exact_duplicates_by_content_hash_and_cli(tmp_path):
    photos = tmp_path / "photos"
    (photos / "a").mkdir(parents=True)
    (photos / "b").mkdir()
    dog = os.path.join(PROJECT_DATA, "dog.jpeg")
    shutil.copy(dog, photos / "a" / "dog.jpeg")
    shutil.copy(dog, photos / "b" / "犬 のコピー.jpeg")
    with open(dog, "rb") as f:  # the same picture, other bytes: a near duplicate, not an exact one
        (photos / "a" / "dog-tail.jpeg").write_bytes(f.read() + b"\0trailer")
    index = str(tmp_path / "lib.jci")
    with jaclip.Model(TINY_MODEL) as m:
        jaclip.sync_index([str(photos)], index, m, root=str(photos))
    with jaclip.Index.load(index) as ix:
        exact = ix.duplicates(exact_only=True)
        labels = ix.labels()
    assert exact.total == 1
    (g,) = exact.groups
    assert g.exact and sorted(h.label for h in g.hits) == ["a/dog.jpeg", "b/犬 のコピー.jpeg"]
    assert [h.row for h in g.hits] == sorted(labels.index(h.label) for h in g.hits)
    with jaclip.Index.load(index) as ix:
        both = ix.duplicates()
    assert both.total == 1 and not both.groups[0].exact
    assert sorted(h.label for h in both.groups[0].hits) == ["a/dog-tail.jpeg", "a/dog.jpeg", "b/犬 のコピー.jpeg"]
    out = subprocess.run([CLI, "index", "dupes", index, "--exact-only", "--json"], capture_output=True,
                         timeout=60, check=True)
    doc = json.loads(out.stdout)
    assert doc["total"] == 1 and doc["groups"][0]["exact"] is True
    assert sorted(r["label"] for r in doc["groups"][0]["rows"]) == ["a/dog.jpeg", "b/犬 のコピー.jpeg"]
    text = subprocess.run([CLI, "index", "dupes", index], capture_output=True, timeout=60, check=True).stdout.decode()
    assert "group 1 (similar, 3 files)" in text and "犬 のコピー.jpeg" in text and "a/dog-tail.jpeg" in text
    text = subprocess.run([CLI, "index", "dupes", index, "--exact-only"], capture_output=True, timeout=60,
                          check=True).stdout.decode()
    assert "group 1 (same content, 2 files)" in text and "dog-tail" not in text
    page = json.loads(subprocess.run([CLI, "index", "dupes", index, "--offset", "5", "--limit", "2", "--json"],
                                     capture_output=True, timeout=60, check=True).stdout)
    assert page["groups"] == [] and page["total"] >= 1
    bad = subprocess.run([CLI, "index", "dupes", index, "--threshold", "2"], capture_output=True, timeout=60)
    assert bad.returncode == 2 and b"threshold" in bad.stderr
