"""jaclip.Ann (approximate search, faiss through libjaclip-faiss.so.1) and `jaclip index ann` /
`jaclip search` with an INDEX.ann: recall against a brute-force numpy cosine top-k on clustered data,
exact scores, damaged and stale files refused, a missing plugin reported, the command's fallback."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import LIBRARY, PYTHON, ROOT, TINY_MODEL

os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
# Before the faiss plugin loads OpenMP (here and in the commands run): waiting workers sleep instead of
# spinning on the shared cores (docs/ann.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
BINDING = os.path.join(ROOT, "bindings", "python")
sys.path.insert(0, BINDING)
import jaclip  # noqa: E402

CLI = os.environ.get("JACLIP_CLI", os.path.join(ROOT, "build", "jaclip"))
DIM = 32  # the tiny test model's width, so the command can search these indexes


def clustered(rows, clusters, seed, spread=1.0):
    """Rows around random centres with overlapping clusters (uniform noise would prove nothing)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    return (centres[rng.integers(0, clusters, rows)] + spread * rng.standard_normal((rows, DIM))).astype(np.float32)


def numpy_topk(rows, queries, k):
    r = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    s = q.astype(np.float64) @ r.T.astype(np.float64)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rows = clustered(25000, 250, 1)
    near = rows[np.random.default_rng(2).integers(0, len(rows), 100)]
    queries = near + 0.3 * np.random.default_rng(3).standard_normal((100, DIM)).astype(np.float32)
    index = jaclip.Index(DIM)
    index.add(rows, [f"p{i}.jpg" for i in range(len(rows))])
    return rows, queries.astype(np.float32), index, tmp_path_factory.mktemp("ann")


def recall(found, expected):
    return np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found.tolist(), expected.tolist())])


def test_auto_is_ivf_flat_and_finds_the_numpy_top10(data):
    rows, queries, index, _ = data
    want, want_scores = numpy_topk(rows, queries, 10)
    with jaclip.Ann.build(index) as ann:
        assert ann.kind == "ivf-flat"
        got, scores = ann.search(queries, 10)
        r = recall(got, want)
        assert r >= 0.9, r  # measured 0.95 at the defaults
        # Found rows carry their exact cosine (re-scored against the index), best first.
        exact = np.einsum("qd,qkd->qk", queries / np.linalg.norm(queries, axis=1, keepdims=True),
                          rows[got] / np.linalg.norm(rows[got], axis=2, keepdims=True))
        np.testing.assert_allclose(scores, exact, atol=1e-5)
        assert np.all(np.diff(scores, axis=1) <= 0)
        # Every list visited: the exact answer.
        ann.set_params(nprobe=128)
        got, _ = ann.search(queries, 10)
        assert recall(got, want) >= 0.999


def test_ivf_pq_and_hnsw(data):
    rows, queries, index, _ = data
    want, _ = numpy_topk(rows, queries, 10)
    with jaclip.Ann.build(index, "ivf-pq") as ann:
        r = recall(ann.search(queries, 10)[0], want)
        assert r >= 0.85, r  # 2 bytes a row at this width, 50 x k re-ranked
        ann.set_params(rerank=1)  # the codes' own ranking: clearly worse
        assert recall(ann.search(queries, 10)[0], want) < r
    small = jaclip.Index(DIM)
    small.add(rows[:3000], [str(i) for i in range(3000)])
    want_small, _ = numpy_topk(rows[:3000], queries, 10)
    with jaclip.Ann.build(small, "hnsw") as ann:
        assert recall(ann.search(queries, 10)[0], want_small) >= 0.9


def test_files_round_trip_and_refusals(data):
    rows, queries, index, tmp = data
    path = tmp / "x.jci.ann"
    with jaclip.Ann.build(index, "ivf-flat") as ann:
        ann.save(path)
        first, _ = ann.search(queries, 10)
    with jaclip.Ann.load(path, index) as back:
        assert back.kind == "ivf-flat"
        np.testing.assert_array_equal(back.search(queries, 10)[0], first)
    blob = path.read_bytes()
    for cut in (0, 30, 64, len(blob) // 2, len(blob) - 1):
        (tmp / "cut.ann").write_bytes(blob[:cut])
        with pytest.raises(jaclip.IndexFormatError):
            jaclip.Ann.load(tmp / "cut.ann", index)
    flipped = bytearray(blob)
    flipped[len(blob) // 3] ^= 4
    (tmp / "flip.ann").write_bytes(bytes(flipped))
    with pytest.raises(jaclip.IndexFormatError, match="checksum"):
        jaclip.Ann.load(tmp / "flip.ann", index)
    grown = jaclip.Index(DIM)
    grown.add(rows, [f"p{i}.jpg" for i in range(len(rows))])
    grown.add(rows[:1], ["new.jpg"])
    with pytest.raises(jaclip.IndexFormatError, match="stale"):
        jaclip.Ann.load(path, grown)
    relabelled = jaclip.Index(DIM)
    relabelled.add(rows, [f"q{i}.jpg" for i in range(len(rows))])
    with pytest.raises(jaclip.IndexFormatError, match="stale"):
        jaclip.Ann.load(path, relabelled)
    # A FIFO without a writer: refused at once (open used to block until a writer came).
    os.mkfifo(tmp / "fifo.ann")
    with pytest.raises(jaclip.InputOutputError, match="FIFO"):
        jaclip.Ann.load(tmp / "fifo.ann", index)


def test_arguments(data):
    _, queries, index, _ = data
    with pytest.raises(jaclip.InvalidArgumentError):
        jaclip.Ann.build(index, "lsh")
    with pytest.raises(TypeError):
        jaclip.Ann(index)
    tiny = jaclip.Index(DIM)
    tiny.add(queries[:10], [str(i) for i in range(10)])
    with pytest.raises(jaclip.InvalidArgumentError, match="at least"):
        jaclip.Ann.build(tiny, "ivf-pq")
    with jaclip.Ann.build(tiny) as ann:
        assert ann.kind == "exact"
        with pytest.raises(jaclip.InvalidArgumentError):
            ann.search(queries, -1)
        with pytest.raises(jaclip.ShapeError):
            ann.search(queries[:, :5], 3)
    with jaclip.Ann.build(index) as ann:
        with pytest.raises(jaclip.InvalidArgumentError):
            ann.set_params(nprobe=10**6)
        ann.close()
        with pytest.raises(jaclip.ClosedError):
            ann.search(queries, 3)


def test_missing_plugin_is_a_backend_error():
    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import jaclip\n"
            "ix = jaclip.Index(8); ix.add(np.random.rand(100, 8).astype(np.float32), [str(i) for i in range(100)])\n"
            "try:\n    jaclip.Ann.build(ix, 'ivf-flat')\nexcept jaclip.BackendError as e:\n    print('BACKEND', e)\n")
    env = dict(os.environ, JACLIP_FAISS_PLUGIN="/nonexistent/libjaclip-faiss.so.1")
    out = subprocess.run([PYTHON, "-c", code, BINDING], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "BACKEND" in out.stdout and "JACLIP_FAISS_PLUGIN" in out.stdout


def cli(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_command_builds_uses_and_falls_back(tmp_path):
    if not os.path.exists(CLI):
        pytest.fail(f"{CLI} is missing: run `make` first")
    rows = clustered(3000, 40, 5)
    index_path = tmp_path / "photos.jci"
    ix = jaclip.Index(DIM)
    ix.add(rows, [f"/photos/{i}.jpg" for i in range(len(rows))])
    ix.save(index_path)
    info = cli("index", "ann", "info", index_path)
    assert info.returncode == 0 and "absent" in info.stdout
    built = cli("index", "ann", "build", index_path, "--kind", "ivf-flat")
    assert built.returncode == 0, built.stderr
    assert "ivf-flat over 3000 rows" in built.stdout
    assert (tmp_path / "photos.jci.ann").exists()
    assert "current" in cli("index", "ann", "info", index_path).stdout
    assert cli("index", "ann", "build", index_path, "--kind", "nope").returncode == 2

    def search(*extra):
        r = cli("search", "--model", TINY_MODEL, "--index", index_path, "犬", "海", "-k", "5", "--json", *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout), r.stderr

    exact, _ = search("--exact")
    # nlist for 3000 rows is 32: visiting every list must give the exact answer, scores to rounding.
    approx, err = search("--nprobe", "32")
    assert err == ""
    for a, e in zip(approx, exact):
        assert [h["label"] for h in a["results"]] == [h["label"] for h in e["results"]]
        np.testing.assert_allclose([h["score"] for h in a["results"]], [h["score"] for h in e["results"]], atol=1e-5)
    # The index grows: INDEX.ann is stale, search says so and answers exactly.
    jaclip.Index.append_file(index_path, rows[:1], ["/photos/new.jpg"])
    after, err = search()
    assert "stale" in err and "index ann build" in err
    assert len(after[0]["results"]) == 5
    assert cli("index", "ann", "info", index_path).returncode == 1

    # Changing the index through the command rebuilds INDEX.ann: current again, deleted rows never found.
    removed = cli("index", "remove", index_path, "/photos/new.jpg", "/photos/0.jpg")
    assert removed.returncode == 0, removed.stderr
    assert "current" in cli("index", "ann", "info", index_path).stdout
    again, err = search()
    assert "stale" not in err
    labels = {h["label"] for q in again for h in q["results"]}
    assert len(again[0]["results"]) == 5 and not labels & {"/photos/new.jpg", "/photos/0.jpg"}
