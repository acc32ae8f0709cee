"""A server that follows its library (issue 25): the fingerprint rule per index, the precision that
runs, reload on demand and under load, ANN and search options. Servers run under RLIMIT_AS on loopback;
every wait has a timeout."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import CLI, TINY_MODEL, Server

AS = 4 << 30
FOREIGN = "cloob-32-0123456789abcdef"  # a fingerprint no test model has


def alive(s):
    assert s.json("GET", "/healthz") == {"status": "ok"}


def saved_with_fingerprint(tmp_path, photos, name, fingerprint):
    import jaclip
    index = jaclip.Index.load(photos["index_path"])
    index.fingerprint = fingerprint
    path = str(tmp_path / name)
    index.save(path)
    return path


def refused_start(*args):
    """rc and stderr of a server that must not start (it exits before listening)."""
    p = subprocess.run([CLI, "serve", "--model", TINY_MODEL, "--port", "0", *args], capture_output=True, text=True,
                       timeout=60)
    assert "listening" not in p.stdout, p.stdout
    return p.returncode, p.stderr


# ---- 1: consistency ----

def test_an_index_of_another_model_is_refused_unless_force(tmp_path, model, photos):
    foreign = saved_with_fingerprint(tmp_path, photos, "foreign.jaclip-index", FOREIGN)
    own = saved_with_fingerprint(tmp_path, photos, "own.jaclip-index", model.fingerprint)
    rc, err = refused_start("--index", f"own={own}", "--index", f"foreign={foreign}")
    assert rc != 0 and FOREIGN in err and "--force" in err, (rc, err)
    # --force serves it (every index), with a warning naming both fingerprints.
    s = Server("--index", f"own={own}", "--index", f"foreign={foreign}", "--force", address_space=AS)
    try:
        hits = s.json("POST", "/v1/search", {"row": 0, "k": 3, "index": "foreign"})["results"]
        assert hits[0]["row"] == 0
        assert s.json("GET", "/v1/indexes/own")["rows"] == 8
    finally:
        assert s.stop() == 0
    # The model's own fingerprint, and none recorded (indexes from before fingerprints), are served.
    s = Server("--index", f"own={own}", "--index", f"old={photos['index_path']}", address_space=AS)
    try:
        assert s.json("GET", "/v1/indexes/own")["rows"] == 8
        assert s.json("GET", "/v1/indexes/old")["rows"] == 8
    finally:
        assert s.stop() == 0


def test_a_reload_to_another_models_index_keeps_the_old_view(tmp_path, model, photos):
    live = tmp_path / "live.jaclip-index"
    shutil.copy(saved_with_fingerprint(tmp_path, photos, "own.jaclip-index", model.fingerprint), live)
    import jaclip
    small = jaclip.Index(model.embedding_dim)
    small.add(model.encode_images(photos["paths"][:3]), photos["paths"][:3])
    small.fingerprint = FOREIGN
    small.save(str(tmp_path / "small.jaclip-index"))
    s = Server("--index", f"live={live}", address_space=AS)
    try:
        os.replace(tmp_path / "small.jaclip-index", live)
        assert s.json("GET", "/v1/indexes/live")["rows"] == 8
        metrics = s.request("GET", "/metrics")[2].decode()
        assert 'jaclip_index_reloads_total{result="failed"} 1' in metrics, metrics[-400:]
        assert 'jaclip_index_reloads_total{result="ok"} 0' in metrics
    finally:
        assert s.stop() == 0
    # With --force the same change is reloaded.
    shutil.copy(saved_with_fingerprint(tmp_path, photos, "own2.jaclip-index", model.fingerprint), live)
    small.save(str(tmp_path / "small.jaclip-index"))
    s = Server("--index", f"live={live}", "--force", address_space=AS)
    try:
        os.replace(tmp_path / "small.jaclip-index", live)
        assert s.json("GET", "/v1/indexes/live")["rows"] == 3
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("name,precision", [("tiny.jaclip", "default"), ("tiny-int8.jaclip", "default"),
                                            ("tiny-bf16.jaclip", "default"), ("tiny.jaclip", "auto")])
def test_info_says_the_precision_that_runs_and_why(name, precision):
    path = os.path.join(os.path.dirname(TINY_MODEL), name)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built (make test-models)")
    # `jaclip info --json` is the reference: the same library calls, another program.
    ref = json.loads(subprocess.run([CLI, "info", path, "--json", "--precision", precision], capture_output=True,
                                    text=True, timeout=120, check=True).stdout)
    s = Server("--model", path, "--precision", precision, address_space=AS)
    try:
        m = s.json("GET", "/v1/info")["model"]
        assert m["precision"] == ref["precision"]
        assert m["precision_reason"] == ref["precision_reason"] and m["precision_reason"]
        assert m["fingerprint"] == ref["fingerprint"]
        if name == "tiny-int8.jaclip":
            assert m["precision"] == "int8"  # the old answer was "fp32"
    finally:
        assert s.stop() == 0


# ---- 2: reload on demand and under load ----

def write_photos(folder, names, seed):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    for name in names:
        pixels = np.clip(rng.integers(0, 256, 3) + rng.normal(0, 30, (40, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name, format="JPEG", quality=85)


def index_cli(*args):
    p = subprocess.run([CLI, "index", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (args, p.stderr)
    return p


def test_admin_reload_access(tmp_path, photos):
    live = tmp_path / "live.jaclip-index"
    shutil.copy(photos["index_path"], live)
    s = Server("--index", f"live={live}", address_space=AS)
    try:
        got = s.json("POST", "/v1/admin/reload", {})
        assert got["failed"] == 0 and got["indexes"][0]["name"] == "live" and got["indexes"][0]["reloaded"]
        assert s.request("GET", "/v1/admin/reload")[0] == 405
        # The Host / Origin rule of every route holds here too.
        assert s.request("POST", "/v1/admin/reload", b"", {"Origin": "http://evil.example"})[0] == 403
        assert s.request("POST", "/v1/admin/reload", b"", {"Host": "evil.example"})[0] == 403
        metrics = s.request("GET", "/metrics")[2].decode()
        assert 'jaclip_index_reloads_total{result="ok"} 1' in metrics, metrics[-400:]
    finally:
        assert s.stop() == 0
    s = Server("--index", f"live={live}", "--token", "sekrit", address_space=AS)
    try:
        assert s.request("POST", "/v1/admin/reload", b"")[0] == 401
        got = s.json("POST", "/v1/admin/reload", b"", {"Authorization": "Bearer sekrit"})
        assert got["failed"] == 0
    finally:
        assert s.stop() == 0


def test_sighup_reloads_every_index(tmp_path, photos):
    import signal
    import time
    live = tmp_path / "live.jaclip-index"
    shutil.copy(photos["index_path"], live)
    s = Server("--index", f"live={live}", "--index", f"v={photos['vectors_path']}", address_space=AS)
    try:
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            metrics = s.request("GET", "/metrics")[2].decode()
            if 'jaclip_index_reloads_total{result="ok"} 2' in metrics:
                break
            time.sleep(0.05)
        assert 'jaclip_index_reloads_total{result="ok"} 2' in metrics, metrics[-400:]
        alive(s)
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("with_ann", [False, True], ids=["exact", "ann"])
def test_reload_under_load_while_sync_removes_and_adds_rows(tmp_path, model, with_ann):
    import threading
    import time
    folder = tmp_path / "library"
    folder.mkdir()
    first = [f"p{i:02d}.jpg" for i in range(24)]
    write_photos(folder, first, 25)
    index = tmp_path / "lib.jaclip-index"
    index_cli("build", "--model", TINY_MODEL, str(folder), "-o", str(index))
    if with_ann:  # sync rebuilds it after the index; the reload takes both
        ann_build(index, "hnsw")
    s = Server("--index", f"lib={index}", "--threads", "2", address_space=AS)
    queries = [q.tolist() for q in model.encode_texts(["犬", "海", "夕日", "猫"])]
    stop, log, lock = threading.Event(), [], threading.Lock()

    def client(n):
        for i in range(3000):  # bounded (stop ends it sooner)
            if stop.is_set():
                break
            start = time.monotonic()
            try:
                code, _, data = s.request("POST", "/v1/search", {"embedding": queries[(n + i) % 4], "k": 40},
                                          timeout=30)
                got = json.loads(data) if code == 200 else {"results": [], "search": None}
                labels = [h["label"] for h in got["results"]]
            except Exception as e:  # a failed request is counted, not raised in the thread
                code, labels, got = repr(e), [], {"search": None}
            with lock:
                log.append((start, code, labels, got["search"]))
            time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.3)
        gone = first[:6]
        for name in gone:
            os.unlink(folder / name)
        added = [f"n{i:02d}.jpg" for i in range(6)]
        write_photos(folder, added, 26)
        index_cli("sync", "--model", TINY_MODEL, str(folder), "-o", str(index))
        reloaded = s.json("POST", "/v1/admin/reload", {})
        after = time.monotonic()
        assert reloaded["failed"] == 0 and reloaded["indexes"][0]["rows"] == 24
        assert reloaded["indexes"][0]["ann"] == ("hnsw" if with_ann else None)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        rc = s.stop()
    assert rc == 0
    gone_labels = {str(folder / n) for n in gone}
    added_labels = {str(folder / n) for n in added}
    failures = [c for _, c, _, _ in log if c != 200]
    late = [labels for start, c, labels, _ in log if start > after]
    paths = {p for start, _, _, p in log if start > after}  # which path answered after the reload
    stale = sum(1 for labels in late if gone_labels & set(labels))
    assert paths <= {"ann" if with_ann else "exact"}, paths
    print(f"reload under load ({'ann' if with_ann else 'exact'}): {len(log)} requests, {len(failures)} failures, {len(late)} after the reload, "
          f"{stale} of them returned a deleted row")
    assert not failures, failures[:5]
    assert late, "no search ran after the reload"
    assert stale == 0
    assert all(added_labels <= set(labels) and len(labels) == 24 for labels in late)


# ---- 3: INDEX.ann in serve ----

def ann_build(index_path, kind="ivf-flat"):
    p = subprocess.run([CLI, "index", "ann", "build", str(index_path), "--kind", kind], capture_output=True,
                       text=True, timeout=300)
    if p.returncode and "plugin" in p.stderr:
        pytest.skip(f"the faiss plugin is not available: {p.stderr.strip()}")
    assert p.returncode == 0, p.stderr


def brute_force(vectors, q, k):
    import numpy as np
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = v @ (q / np.linalg.norm(q))
    order = sorted(range(len(v)), key=lambda i: (-scores[i], i))[:k]
    return order, scores


def test_serve_uses_a_current_index_ann_and_exact_on_request(tmp_path, model):
    import jaclip
    import numpy as np
    rng = np.random.default_rng(31)
    vectors = rng.normal(size=(400, model.embedding_dim)).astype(np.float32)
    path = tmp_path / "vec.jaclip-index"
    index = jaclip.Index(model.embedding_dim)
    index.add(vectors, [f"v{i}" for i in range(400)])
    index.save(str(path))
    ann_build(path)
    s = Server("--index", f"vec={path}", address_space=AS)
    try:
        assert s.json("GET", "/v1/indexes/vec")["ann"] == "ivf-flat"
        for row in (0, 17, 399):
            got = s.json("POST", "/v1/search", {"row": row, "k": 5})
            assert got["search"] == "ann"
            assert got["results"][0]["row"] == row  # its own list is always visited
            _, scores = brute_force(vectors, vectors[row], 5)
            for h in got["results"]:  # exact cosines, whichever rows were found
                assert abs(h["score"] - scores[h["row"]]) < 1e-4
            exact = s.json("POST", "/v1/search", {"row": row, "k": 5, "exact": True})
            assert exact["search"] == "exact"
            order, _ = brute_force(vectors, vectors[row], 5)
            assert [h["row"] for h in exact["results"]] == order
        assert s.request("POST", "/v1/search", {"row": 0, "exact": "yes"})[0] == 400
        # The index grows: INDEX.ann is stale, so exact answers (and the new rows are found) ...
        more = rng.normal(size=(10, model.embedding_dim)).astype(np.float32)
        index.add(more, [f"w{i}" for i in range(10)])
        index.save(str(tmp_path / "next.jaclip-index"))
        os.replace(tmp_path / "next.jaclip-index", path)
        got = s.json("POST", "/v1/search", {"embedding": more[3].tolist(), "k": 3})
        assert got["search"] == "exact" and got["results"][0]["label"] == "w3"
        assert s.json("GET", "/v1/indexes/vec")["ann"] is None
        # ... until INDEX.ann is rebuilt: the new file is picked up by itself.
        ann_build(path)
        got = s.json("POST", "/v1/search", {"embedding": more[3].tolist(), "k": 3})
        assert got["search"] == "ann" and got["results"][0]["label"] == "w3"
    finally:
        assert s.stop() == 0
    # --exact: the ANN file is never used.
    s = Server("--index", f"vec={path}", "--exact", address_space=AS)
    try:
        assert s.json("POST", "/v1/search", {"row": 3, "k": 3})["search"] == "exact"
    finally:
        assert s.stop() == 0
    # A damaged INDEX.ann: the server starts and searches exactly.
    with open(str(path) + ".ann", "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 64)
    s = Server("--index", f"vec={path}", address_space=AS)
    try:
        assert s.json("POST", "/v1/search", {"row": 3, "k": 3})["search"] == "exact"
    finally:
        assert s.stop() == 0


# ---- 4: search options over HTTP, against brute force ----

def test_search_offset_threshold_and_filters_equal_brute_force(tmp_path, model):
    import time
    import jaclip
    import numpy as np
    lib = tmp_path / "lib"
    day = 86400
    base = int(time.mktime((2024, 5, 1, 12, 0, 0, 0, 0, -1)))  # local noon, as the server reads dates
    mtimes = {}
    for i in range(30):
        folder = lib / ("a" if i % 3 == 0 else "b" if i % 3 == 1 else "a/deep")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"x{i:02d}.{'png' if i % 2 else 'jpg'}"
        write_photos(folder, [name], 100 + i)
        if name.endswith("png"):  # write_photos writes JPEG bytes: rewrite as PNG
            from PIL import Image
            Image.open(folder / name).save(folder / name, format="PNG")
        t = base + (i % 10) * day
        os.utime(folder / name, (t, t))
        mtimes[str(folder / name)] = t
    path = tmp_path / "lib.jaclip-index"
    index_cli("build", "--model", TINY_MODEL, str(lib), "-o", str(path))
    ann_build(path, "hnsw")  # a filter must still search exactly
    idx = jaclip.Index.load(str(path))
    labels, emb = idx.labels(), idx.embeddings()
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    q = model.encode_texts(["海"])[0]
    scores = emb @ (q / np.linalg.norm(q))

    def expect(k, offset=0, threshold=None, folder=None, after=None, before=None, types=None):
        rows = []
        for i, label in enumerate(labels):
            if folder and not label.startswith(folder.rstrip("/") + "/"):
                continue
            if after is not None and mtimes[label] < after:
                continue
            if before is not None and mtimes[label] >= before:
                continue
            if types and label.rsplit(".", 1)[1].lower() not in types:
                continue
            rows.append(i)
        rows.sort(key=lambda i: (-scores[i], i))
        rows = rows[offset:offset + k]
        return [i for i in rows if threshold is None or scores[i] >= threshold]

    s = Server("--index", f"lib={path}", address_space=AS)
    try:
        def ask(**kw):
            got = s.json("POST", "/v1/search", {"embedding": q.tolist(), **kw})
            return got["search"], [h["row"] for h in got["results"]], got["results"]

        mid = float(np.median(scores))
        cases = [
            (dict(k=5), {}),
            (dict(k=5, offset=5), dict(offset=5)),
            (dict(k=10, offset=25), dict(offset=25)),
            (dict(k=5, offset=40), dict(offset=40)),
            (dict(k=30, threshold=mid), dict(threshold=mid)),
            (dict(k=30, folder=str(lib / "a")), dict(folder=str(lib / "a"))),
            (dict(k=30, folder=str(lib / "a") + "/"), dict(folder=str(lib / "a"))),
            (dict(k=30, folder=str(lib / "a/deep")), dict(folder=str(lib / "a/deep"))),
            (dict(k=30, after="2024-05-04"), dict(after=base - 12 * 3600 + 3 * day)),
            (dict(k=30, after="2024-05-03", before="2024-05-06T00:00"),
             dict(after=base - 12 * 3600 + 2 * day, before=base - 12 * 3600 + 5 * day)),
            (dict(k=30, types=["PNG"]), dict(types={"png"})),
            (dict(k=4, offset=2, folder=str(lib / "b"), types=["jpg"], before="2024-05-08"),
             dict(offset=2, folder=str(lib / "b"), types={"jpg"}, before=base - 12 * 3600 + 7 * day)),
        ]
        for asked, filt in cases:
            path_used, rows, hits = ask(**asked)
            assert rows == expect(asked["k"], **filt), asked
            if set(asked) - {"k", "threshold"}:  # a threshold alone is a cut of any path's results
                assert path_used == "exact", asked
            for h in hits:
                assert abs(h["score"] - scores[h["row"]]) < 1e-4
        assert ask(k=5)[0] == "ann"
        # Through the query string of an image search as well.
        with open(lib / "a" / "x00.jpg", "rb") as f:
            jpeg = f.read()
        code, _, data = s.request("POST", f"/v1/search?k=30&types=png,jpg&folder={lib}/b&offset=1", jpeg,
                                  {"Content-Type": "image/jpeg"})
        assert code == 200 and all(h["label"].startswith(f"{lib}/b/") for h in json.loads(data)["results"])
        assert len(json.loads(data)["results"]) == 9
        for bad in ({"offset": -1}, {"after": "yesterday"}, {"types": "jpg"}, {"types": [""]}, {"folder": 3},
                    {"after": "2024-05-05", "before": "2024-05-01"}):
            code, _, data = s.request("POST", "/v1/search", {"embedding": q.tolist(), **bad})
            assert code == 400, (bad, code, data[:200])
    finally:
        assert s.stop() == 0
