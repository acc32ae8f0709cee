"""jaclip.Index of the Python binding: every call, its error paths, files (saved, appended, mapped,
damaged), ownership and threads, checked against a brute-force numpy cosine top-k."""
import gc
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import LIBRARY, PROJECT_DATA, PYTHON, ROOT, TINY_MODEL

os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
BINDING = os.path.join(ROOT, "bindings", "python")
sys.path.insert(0, BINDING)
import jaclip  # noqa: E402

DOG = os.path.join(PROJECT_DATA, "dog.jpeg")


@pytest.fixture(scope="module")
def model():
    with jaclip.Model(TINY_MODEL) as m:
        yield m


def rows(n, dim, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def unit(x):
    x = np.asarray(x, np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def brute_topk(data, queries, k):
    """Cosine top-k by numpy: best first, ties to the lower row."""
    scores = unit(queries) @ unit(data).T
    order = np.array([np.lexsort((np.arange(len(row)), -row))[:k] for row in scores])
    return order, np.take_along_axis(scores, order, axis=1)


def make_index(n=6, dim=8, seed=0):
    ix = jaclip.Index(dim)
    data = rows(n, dim, seed)
    ix.add(data, [f"row{i}" for i in range(n)])
    return ix, data


# ---- building and reading ------------------------------------------------------------------------

def test_create_add_and_getters():
    with jaclip.Index(4) as ix:
        assert (len(ix), ix.dim, ix.labels()) == (0, 4, [])
        data = np.array([[3, 4, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], np.float32)
        ix.add(data, ["犬.jpg", "zero", "犬.jpg"])
        ix.add([[0.0, 0.0, 2.0, 0.0]], [b"bytes label"])
        assert (len(ix), ix.dim) == (4, 4)
        assert ix.labels() == ["犬.jpg", "zero", "犬.jpg", "bytes label"]
        assert [ix.label(i) for i in range(4)] == ix.labels()
        assert ix.find("犬.jpg") == 0 and ix.find("bytes label") == 3  # duplicates: the lowest row
        stored = ix.embeddings()
        assert stored.dtype == np.float32 and stored.shape == (4, 4)
        assert np.allclose(stored, unit(np.vstack([data, [[0, 0, 2, 0]]])), atol=1e-7)
        assert not stored[1].any()  # a zero row stays zero
        assert np.array_equal(ix.embeddings(1, 2), stored[1:3])
        assert ix.embeddings(4).shape == (0, 4)
        ix.add(np.zeros((0, 4), np.float32), [])  # nothing to add is fine
        assert len(ix) == 4 and repr(ix) == "<jaclip.Index dim=4 rows=4>"


def test_search_equals_brute_force_cosine_topk():
    data, queries = rows(300, 24, seed=1), rows(5, 24, seed=2)
    data[17] = data[3]  # an exact tie: the lower row must come first
    queries[4] = data[3] * 2.5
    with jaclip.Index(24) as ix:
        ix.add(data[:100], [str(i) for i in range(100)])
        ix.add(data[100:], [str(i) for i in range(100, 300)])  # across two blocks of rows
        idx, scores = ix.search(queries, 7)
        ref_idx, ref_scores = brute_topk(data, queries, 7)
        assert idx.dtype == np.int64 and scores.dtype == np.float32 and idx.shape == (5, 7)
        assert np.array_equal(idx, ref_idx)
        assert np.allclose(scores, ref_scores, atol=1e-5)
        assert list(idx[4][:2]) == [3, 17]
        # k larger than the index gives every row, ordered.
        small_idx, _ = ix.search(queries[:1], 1000)
        assert np.array_equal(small_idx, brute_topk(data, queries[:1], 300)[0])


def test_search_of_an_empty_index_gives_no_rows():
    with jaclip.Index(3) as ix:
        idx, scores = ix.search([[1.0, 0.0, 0.0]], 5)
        assert idx.shape == (1, 0) and scores.shape == (1, 0)


def test_search_text_and_search_image(model, tmp_path):
    from PIL import Image as PILImage
    red = tmp_path / "red.png"
    PILImage.new("RGB", (40, 30), (200, 30, 10)).save(red)
    texts = ["犬", "赤い四角", "海辺の夕日"]
    with jaclip.Index(model.embedding_dim) as ix:
        ix.add(model.encode_images([DOG, str(red)]), [DOG, str(red)])
        ix.add(model.encode_texts(texts), texts)
        hits = ix.search_text(model, "犬の写真", k=3)
        idx, scores = ix.search(model.encode_texts(["犬の写真"]), 3)
        assert [h.row for h in hits] == idx.tolist()[0]
        assert [h.label for h in hits] == [ix.label(i) for i in idx.tolist()[0]]
        assert [h.score for h in hits] == pytest.approx(scores.tolist()[0])
        assert isinstance(hits[0], jaclip.Hit) and isinstance(hits[0].score, float)
        for image in (DOG, open(DOG, "rb").read(), jaclip.Image(DOG)):
            best = ix.search_image(model, image, k=2)[0]
            assert (best.label, best.row) == (DOG, 0) and best.score == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(TypeError):
            ix.search_text(model, ["犬"])
    with jaclip.Index(8) as other, pytest.raises(jaclip.ShapeError):
        other.search_text(model, "犬")  # the model's width is not the index's


# ---- errors ----------------------------------------------------------------------------------------

def test_create_errors():
    for dim in (0, -1, 65537):
        with pytest.raises(jaclip.InvalidArgumentError):
            jaclip.Index(dim)
    assert jaclip.Index(65536).dim == 65536


def test_add_errors_leave_the_index_unchanged():
    ix, data = make_index(3, 8)
    cases = [
        (jaclip.ShapeError, rows(2, 7), ["a", "b"]),                         # dim mismatch
        (jaclip.ShapeError, rows(1, 8)[0], ["a"]),                          # 1-D
        (jaclip.ShapeError, rows(2, 8).astype(np.float64), ["a", "b"]),    # float64 is not cast
        (jaclip.InvalidArgumentError, rows(2, 8), ["a"]),                   # fewer labels than rows
        (jaclip.InvalidArgumentError, rows(1, 8), ["a", "b"]),              # more labels than rows
        (jaclip.InvalidArgumentError, rows(1, 8), ["a\0b"]),                # would be cut at the NUL
        (jaclip.InvalidUTF8Error, rows(1, 8), [b"\xff"]),
        (jaclip.InvalidUTF8Error, rows(1, 8), ["\udc80"]),                  # lone surrogate
        (jaclip.InvalidArgumentError, np.vstack([rows(1, 8), [[np.nan] * 8]]).astype(np.float32), ["a", "b"]),
        (TypeError, rows(1, 8), "a"),
        (TypeError, rows(1, 8), [1]),
    ]
    for exc, emb, labels in cases:
        with pytest.raises(exc):
            ix.add(emb, labels)
        assert len(ix) == 3 and ix.labels() == ["row0", "row1", "row2"]
    assert np.allclose(ix.embeddings(), unit(data), atol=1e-7)


def test_search_and_lookup_errors():
    ix, _ = make_index(3, 8)
    q = rows(1, 8)
    with pytest.raises(jaclip.InvalidArgumentError, match="k"):
        ix.search(q, 0)
    with pytest.raises(jaclip.InvalidArgumentError):
        ix.search(q, -1)
    with pytest.raises(jaclip.ShapeError):
        ix.search(rows(1, 9), 2)
    with pytest.raises(jaclip.ShapeError):
        ix.search(q[0], 2)
    with pytest.raises(jaclip.InvalidArgumentError):
        ix.search([[np.inf] + [0.0] * 7], 2)
    for i in (3, -1, 2**40):
        with pytest.raises(jaclip.NotFoundError):
            ix.label(i)
    with pytest.raises(TypeError):
        ix.label(1.0)
    for missing in ("row9", "row", "a\0b"):
        with pytest.raises(jaclip.NotFoundError):
            ix.find(missing)
    with pytest.raises(jaclip.InvalidArgumentError):
        ix.embeddings(2, 2)
    with pytest.raises(jaclip.InvalidArgumentError):
        ix.embeddings(4)
    with pytest.raises(jaclip.InvalidArgumentError):
        ix.embeddings(-1)


# ---- files -----------------------------------------------------------------------------------------

def test_save_load_and_append_file(tmp_path):
    path = tmp_path / "x.jci"
    ix, data = make_index(5, 8)
    ix.save(path)
    queries = rows(3, 8, seed=9)
    expected = ix.search(queries, 4)
    for kw in ({}, {"mmap": True}, {"verify": False}, {"mmap": True, "verify": False}):
        with jaclip.Index.load(str(path), **kw) as loaded:
            assert (len(loaded), loaded.dim, loaded.labels()) == (5, 8, ix.labels())
            assert np.array_equal(loaded.embeddings(), ix.embeddings())
            got = loaded.search(queries, 4)
            assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    # Rows added to a mapped index live in memory; saving writes them all.
    with jaclip.Index.load(path, mmap=True) as loaded:
        loaded.add(rows(2, 8, seed=3), ["new0", "new1"])
        assert loaded.find("new1") == 6
        loaded.save(tmp_path / "y.jci")
    with jaclip.Index.load(tmp_path / "y.jci") as y:
        assert len(y) == 7 and y.labels()[5:] == ["new0", "new1"]

    more = rows(3, 8, seed=4)
    jaclip.Index.append_file(path, more, ["a0", "a1", "a2"])
    jaclip.Index.append_file(path, np.zeros((0, 8), np.float32), [])  # a no-op
    with jaclip.Index.load(path) as appended:
        assert len(appended) == 8 and appended.labels() == ix.labels() + ["a0", "a1", "a2"]
        ref_idx, _ = brute_topk(np.vstack([data, more]), queries, 4)
        assert np.array_equal(appended.search(queries, 4)[0], ref_idx)
    size = path.stat().st_size
    with pytest.raises(jaclip.ShapeError):
        jaclip.Index.append_file(path, rows(1, 7), ["x"])
    with pytest.raises(jaclip.InvalidArgumentError):
        jaclip.Index.append_file(path, rows(2, 8), ["x"])
    assert path.stat().st_size == size
    foreign = tmp_path / "foreign.jci"
    foreign.write_bytes(b"not an index at all" * 10)
    with pytest.raises(jaclip.IndexFormatError):
        jaclip.Index.append_file(foreign, rows(1, 8), ["x"])
    with pytest.raises(jaclip.InputOutputError):
        jaclip.Index.append_file(tmp_path / "missing.jci", rows(1, 8), ["x"])
    with pytest.raises(jaclip.InputOutputError):
        ix.save(tmp_path / "no" / "such" / "dir.jci")


def test_damaged_files_are_index_format_errors(tmp_path):
    path = tmp_path / "good.jci"
    ix, _ = make_index(4, 8)
    ix.save(path)
    good = path.read_bytes()

    def write(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return p

    cases = {
        "truncated": good[:-70],
        "header-only": good[:64],
        "short": good[:40],
        "empty": b"",
        "foreign": b"GIF89a" + bytes(200),
        "version": good[:8] + (9).to_bytes(4, "little") + good[12:],
        "header-crc": good[:20] + b"\x01" + good[21:],
    }
    for name, data in cases.items():
        for mmap in (False, True):
            with pytest.raises(jaclip.IndexFormatError) as e:
                jaclip.Index.load(write(name + ".jci", data), mmap=mmap)
            assert e.value.status == 12 and name + ".jci" in e.value.message
    with pytest.raises(jaclip.IndexFormatError, match="version 9"):
        jaclip.Index.load(tmp_path / "version.jci")
    # A flipped bit in the vectors (row 0 starts at byte 192: a 128-byte file header, a 64-byte segment
    # header) fails the data CRC unless verify=False.
    bad_data = write("data.jci", good[:194] + bytes([good[194] ^ 0x40]) + good[195:])
    with pytest.raises(jaclip.IndexFormatError, match="CRC"):
        jaclip.Index.load(bad_data)
    with jaclip.Index.load(bad_data, verify=False) as unchecked:
        assert len(unchecked) == 4 and unchecked.labels() == ix.labels()
    with pytest.raises(jaclip.InputOutputError):
        jaclip.Index.load(tmp_path / "missing.jci")


# ---- ownership and threads --------------------------------------------------------------------------

def test_use_after_close_raises():
    ix, _ = make_index(2, 4)
    ix.close()
    ix.close()  # twice is harmless
    assert ix.closed and repr(ix) == "<jaclip.Index (closed)>"
    calls = [lambda: len(ix), lambda: ix.dim, lambda: ix.label(0), lambda: ix.labels(), lambda: ix.find("row0"),
             lambda: ix.embeddings(), lambda: ix.search(rows(1, 4), 1), lambda: ix.add(rows(1, 4), ["x"]),
             lambda: ix.save("/tmp/never-written.jci")]
    for call in calls:
        with pytest.raises(jaclip.ClosedError, match="index is closed"):
            call()
    assert not os.path.exists("/tmp/never-written.jci")
    with jaclip.Index(4) as scoped:
        pass
    assert scoped.closed


def test_index_is_freed_by_the_garbage_collector():
    ix, _ = make_index(2, 4)
    finalizer = ix._h._finalizer
    assert finalizer.alive
    del ix
    gc.collect()
    assert not finalizer.alive


def test_searches_in_threads_while_another_thread_adds():
    dim, batches = 16, 40
    data = rows(batches * 25, dim, seed=5)
    queries = rows(4, dim, seed=6)
    ix = jaclip.Index(dim)
    ix.add(data[:25], [f"r{i}" for i in range(25)])
    errors, stop = [], threading.Event()

    def search():
        try:
            while not stop.is_set():
                idx, _ = ix.search(queries, 5)
                n = len(ix)
                assert idx.shape == (4, 5) and idx.max() < n
                assert ix.label(int(idx[0, 0])).startswith("r")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def add():
        try:
            for b in range(1, batches):
                ix.add(data[b * 25:(b + 1) * 25], [f"r{i}" for i in range(b * 25, (b + 1) * 25)])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    readers = [threading.Thread(target=search) for _ in range(3)]
    writer = threading.Thread(target=add)
    for t in readers + [writer]:
        t.start()
    writer.join(120)
    stop.set()
    for t in readers:
        t.join(120)
    assert not errors
    assert len(ix) == batches * 25
    assert np.array_equal(ix.search(queries, 5)[0], brute_topk(data, queries, 5)[0])
    ix.close()


def test_add_waits_for_running_searches_and_holds_off_new_ones():
    ix, _ = make_index(2, 4)
    added, seen = threading.Event(), []
    writer = threading.Thread(target=lambda: (ix.add(rows(1, 4), ["late"]), added.set()))
    reader = threading.Thread(target=lambda: seen.append(len(ix)))
    with ix._lock.shared():  # stands for a search in flight (search() holds it around its C call)
        writer.start()
        for _ in range(3000):
            if ix._lock._writers:
                break
            threading.Event().wait(0.01)
        assert ix._lock._writers == 1 and not added.wait(0.2)  # add() must not move rows being read
        reader.start()  # a read that starts now queues behind the waiting add(), so add() is not starved
        reader.join(0.2)
        assert reader.is_alive() and not seen
    assert added.wait(30)
    reader.join(30)
    writer.join(30)
    assert seen == [3] and ix.labels() == ["row0", "row1", "late"]
    ix.close()


def test_without_numpy(tmp_path):
    path = tmp_path / "n.jci"
    code = f"""
import sys
sys.modules["numpy"] = None
import jaclip
ix = jaclip.Index(3)
ix.add([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0]], ["x", "y", "xy"])
idx, scores = ix.search([[1.0, 0.1, 0.0]], 2)
assert isinstance(idx, jaclip.Tensor) and idx.dtype == "int64" and idx.tolist() == [[0, 2]]
assert abs(scores.tolist()[0][0] - 0.99503719) < 1e-6
assert ix.embeddings(1, 1).tolist() == [[0.0, 1.0, 0.0]]
ix.save({str(path)!r})
m = jaclip.Model({TINY_MODEL!r})
with jaclip.Index(m.embedding_dim) as j:
    j.add(m.encode_texts(["犬", "猫"]), ["犬", "猫"])
    print([h.label for h in j.search_text(m, "犬", k=1)][0], jaclip.Index.load({str(path)!r}).labels())
"""
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=BINDING))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["犬", "['x',", "'y',", "'xy']"]
