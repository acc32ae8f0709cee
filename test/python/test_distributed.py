"""jaclip.distributed on a LocalCluster of 2 worker processes (one thread each) over a generated folder:
the merged shards equal `jaclip index build` of the same folder, a worker process killed with SIGKILL
in the middle of a run loses and duplicates nothing, a re-run skips finished shards, a damaged shard
is refused on merge and redone by the next run. Loopback only; a few seconds per cluster."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, TINY_MODEL

sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import jaclip  # noqa: E402

distributed = pytest.importorskip("distributed", reason="python3-distributed is not installed (tools/setup-deps)")
from jaclip import distributed as jd  # noqa: E402

CLI = os.environ.get("JACLIP_CLI", os.path.join(ROOT, "build", "jaclip"))
TOL = 1e-6  # features from different processes may differ in the last bits


def _make_folder(root, count, size=(64, 48)):
    """count images of varied sizes, modes and formats in two folders, plus files both paths skip."""
    from PIL import Image
    rng = np.random.default_rng(17)
    os.makedirs(root / "sub", exist_ok=True)
    for i in range(count):
        w, h = size[0] + 7 * (i % 5), size[1] + 5 * (i % 3)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(pixels)
        if i % 4 == 1:
            img = img.convert("L")
        elif i % 4 == 2:
            img = img.convert("RGBA")
        where = root / "sub" if i % 3 == 0 else root
        img.save(where / (f"img{i:03d}.jpg" if i % 4 in (0, 1) else f"img{i:03d}.png"))  # RGBA as PNG only
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")  # skipped by both, with a reason
    (root / ".hidden.png").write_bytes(b"")  # not listed by either
    (root / "notes.txt").write_text("not an image")
    return root


def _reference(folder, tmp):
    """The single-process embedding: `jaclip index build` (the C command) of the same folder."""
    out = tmp / "reference.jci"
    subprocess.run([CLI, "index", "build", "--model", TINY_MODEL, "--threads", "1", str(folder), "-o", str(out)],
                   check=True, capture_output=True, timeout=120)
    with jaclip.Index.load(out) as index:
        return index.labels(), index.embeddings()


def _assert_same(index_path, labels, rows):
    with jaclip.Index.load(index_path) as merged:
        assert merged.labels() == labels  # same files, same order: nothing lost, nothing duplicated
        assert np.abs(merged.embeddings() - rows).max() <= TOL


def _start_cluster():
    cluster = jd.local_cluster(workers=2, worker_threads=1)
    return cluster, distributed.Client(cluster)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _make_folder(tmp_path_factory.mktemp("photos"), 22)


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    return _reference(folder, tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def client():
    if not os.path.exists(CLI):
        pytest.fail(f"{CLI} is missing: run `make` first")
    cluster, c = _start_cluster()
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def run(folder, client, tmp_path_factory):
    """One completed run in shards of about 4 (jd.plan: cut where a path's hash says) and its summary."""
    out = tmp_path_factory.mktemp("run") / "out"
    summary = jd.embed([folder], out, TINY_MODEL, client=client, partition_size=4, num_threads=1, progress=False)
    return out, summary


def test_merged_equals_single_process(run, folder, reference, tmp_path):
    out, summary = run
    labels, rows = reference
    parts = len(jd.plan(jd.list_images([folder])[0], 4))
    assert summary["partitions"] == parts and summary["embedded"] == parts and summary["reused"] == 0
    assert summary["images"] == 23 and summary["rows"] == 22 == len(labels)
    assert [s["path"] for s in summary["skipped"]] == [os.path.join(os.path.realpath(folder), "broken.jpg")]
    assert re.search("JPEG|truncated|decode", summary["skipped"][0]["error"])  # the decoder's reason
    assert jd.merge(out, tmp_path / "merged.jci") == 22
    _assert_same(tmp_path / "merged.jci", labels, rows)


def test_shards_read_directly(run, reference):
    out, _ = run
    labels, rows = reference
    got_labels, got_rows = [], []
    for shard_labels, shard_rows in jd.read_shards(out):
        got_labels += shard_labels
        got_rows.append(shard_rows)
    assert got_labels == labels
    assert np.abs(np.concatenate(got_rows) - rows).max() <= TOL
    # clip-retrieval's layout, readable without jaclip: img_emb_N.npy + the labels of its rows
    manifest = json.loads((out / "manifest.json").read_text())
    npy_labels, npy_rows = [], []
    for entry in manifest["shards"]:
        n = entry["partition"]
        emb = np.load(out / "img_emb" / f"img_emb_{n}.npy")
        names = json.loads((out / "metadata" / f"metadata_{n}.json").read_text())
        assert emb.dtype == np.float32 and emb.shape == (entry["rows"], 32) and len(names) == entry["rows"]
        npy_labels += names
        npy_rows.append(emb)
    assert npy_labels == labels
    assert np.abs(np.concatenate(npy_rows) - rows).max() <= TOL
    assert sum(e["planned"] for e in manifest["shards"]) == 23
    assert {e["model"] for e in manifest["shards"]} == {manifest["model"]}
    assert not [n for d in ("shards", "img_emb", "metadata", "manifest") for n in os.listdir(out / d) if ".tmp-" in n]


def test_rerun_skips_finished_shards(run, folder, client):
    out, _ = run
    shard = out / "shards" / "part-00000.jci"
    before = shard.stat().st_mtime_ns
    summary = jd.embed([folder], out, TINY_MODEL, client=client, partition_size=4, num_threads=1, progress=False)
    assert summary["reused"] == summary["partitions"] and summary["embedded"] == 0 and summary["rows"] == 22
    assert shard.stat().st_mtime_ns == before


def test_damaged_shard_refused_then_redone(run, folder, client, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run[0], out)
    n = next(e["partition"] for e in jd.load_manifest(out)["shards"] if e["rows"])
    shard = out / "shards" / f"part-{n:05d}.jci"
    data = bytearray(shard.read_bytes())
    data[64 + 64 + 5] ^= 0x01  # one bit of the first row's vector
    shard.write_bytes(bytes(data))
    with pytest.raises(jaclip.IndexFormatError, match=f"shard {n}"):  # the manifest's SHA-256
        jd.merge(out, tmp_path / "merged.jci")
    with pytest.raises(jaclip.IndexFormatError, match=f"part-{n:05d}.jci"):  # the library's own CRC32
        jaclip.Index.merge(tmp_path / "merged.jci", sorted(str(p) for p in (out / "shards").iterdir()))
    cli = subprocess.run([CLI, "index", "merge", str(tmp_path / "merged.jci"), *sorted(map(str, (out / "shards").iterdir()))],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and f"part-{n:05d}.jci" in cli.stderr
    assert not (tmp_path / "merged.jci").exists()

    summary = jd.embed([folder], out, TINY_MODEL, client=client, partition_size=4, num_threads=1, progress=False)
    assert summary["reused"] == summary["partitions"] - 1 and summary["embedded"] == 1
    jd.merge(out, tmp_path / "merged.jci")
    _assert_same(tmp_path / "merged.jci", *reference)


def test_unreadable_file_fails_the_partition(run, client, tmp_path):
    """A file the worker cannot read (a storage not mounted there) fails its partition, which is then
    not committed, instead of becoming an empty shard that a re-run would skip."""
    out = tmp_path / "out"
    for sub in ("shards", "img_emb", "metadata", "manifest"):
        (out / sub).mkdir(parents=True)
    missing = str(tmp_path / "gone.png")
    fut = client.submit(jd.embed_partition, 0, [missing], jd._digest([missing]), str(out), 16, True, pure=False)
    with pytest.raises(jaclip.InputOutputError, match="gone.png"):
        fut.result()
    assert not list((out / "manifest").iterdir()) and not list((out / "shards").iterdir())


def test_cli_merge_of_shards(run, reference, tmp_path):
    out, _ = run
    shards = sorted(str(p) for p in (out / "shards").iterdir())
    result = subprocess.run([CLI, "index", "merge", "--unique", str(tmp_path / "m.jci"), *shards],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "22 rows" in result.stderr
    _assert_same(tmp_path / "m.jci", *reference)
    # A shard with rows, given twice (partitions are cut by path hash: one may hold only the broken file).
    again = next(s for s in shards if len(jaclip.Index.load(s)) > 0)
    twice = subprocess.run([CLI, "index", "merge", "--unique", str(tmp_path / "m2.jci"), *shards, again],
                           capture_output=True, text=True, timeout=60)
    assert twice.returncode == 1 and "occurs twice" in twice.stderr


def test_module_command(folder, reference, tmp_path):
    """python3 -m jaclip.distributed with its own LocalCluster, and --merge."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    result = subprocess.run([sys.executable, "-m", "jaclip.distributed", "--model", TINY_MODEL, "--out",
                             str(tmp_path / "out"), "--workers", "2", "--threads", "1", "--partition-size", "8",
                             "--merge", str(tmp_path / "m.jci"), str(folder)],
                            capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    parts = len(jd.plan(jd.list_images([folder])[0], 8))
    assert f"{parts}/{parts} partitions" in result.stderr and "broken.jpg: skipped" in result.stderr
    _assert_same(tmp_path / "m.jci", *reference)
    bad = subprocess.run([sys.executable, "-m", "jaclip.distributed", "--model", str(tmp_path / "none.jaclip"),
                          "--out", str(tmp_path / "out2"), str(folder)],
                         capture_output=True, text=True, timeout=180, env=env)
    assert bad.returncode == 1 and "none.jaclip" in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "jaclip.distributed", "--model", TINY_MODEL, "--out",
                            str(tmp_path / "out3"), "--partition-size", "0", str(folder)],
                           capture_output=True, text=True, timeout=60, env=env)
    assert usage.returncode == 2 and "--partition-size" in usage.stderr


def test_killed_worker_loses_and_duplicates_nothing(tmp_path):
    """SIGKILL of one worker process (not the cluster) while it executes a partition: the scheduler
    hands that partition to a live worker, the nanny restarts the dead one (which loads the model
    again), and the result equals the single-process embedding."""
    photos = _make_folder(tmp_path / "photos", 30, size=(400, 300))
    labels, rows = _reference(photos, tmp_path)
    cluster, client = _start_cluster()
    killed = {}

    def kill_one(entry):
        if killed:
            return
        # A worker executing a partition right now, by the worker's own state.
        executing = client.run(lambda dask_worker: [str(k) for k in dask_worker.state.executing])
        pids = client.run(os.getpid)
        for address, keys in executing.items():
            if keys:
                os.kill(pids[address], signal.SIGKILL)
                killed.update(address=address, pid=pids[address], keys=keys, at=time.monotonic())
                return

    try:
        summary = jd.embed([photos], tmp_path / "out", TINY_MODEL, client=client, partition_size=2, num_threads=1,
                           progress=False, on_entry=kill_one)
        assert killed, "no worker was executing a partition when the first shard completed"
        parts = len(jd.plan(jd.list_images([photos])[0], 2))
        assert summary["partitions"] == parts and summary["rows"] == 30  # 31 files, broken.jpg skipped
        # the dead worker was replaced by a new process
        deadline = time.monotonic() + 30
        while len(client.run(os.getpid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert killed["pid"] not in client.run(os.getpid).values()
    finally:
        client.close()
        cluster.close()
    manifest = jd.load_manifest(tmp_path / "out")
    by_partition = {e["partition"]: e for e in manifest["shards"]}
    assert sorted(by_partition) == list(range(parts))
    for key in killed["keys"]:  # the partitions the killed worker held are complete
        entry = by_partition[int(key.split("-")[2])]
        assert jd.verify_entry(tmp_path / "out", entry) is None
        assert entry["rows"] + len(entry["skipped"]) == entry["planned"] >= 1
    jd.merge(tmp_path / "out", tmp_path / "merged.jci")
    _assert_same(tmp_path / "merged.jci", labels, rows)
    out = tmp_path / "out"
    assert not [n for d in ("shards", "img_emb", "metadata", "manifest") for n in os.listdir(out / d) if ".tmp-" in n]


def test_bad_arguments(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="missing"):
        jd.list_images([tmp_path / "missing"])
    with pytest.raises(ValueError):
        jd.plan(["a"], 0)
    with pytest.raises(FileNotFoundError):
        jd.load_manifest(tmp_path)
    paths, _ = jd.list_images([folder])
    assert paths == sorted(paths, key=os.fsencode) and not [p for p in paths if "/." in p or p.endswith(".txt")]


def test_binding_index_merge_and_fingerprint(run, tmp_path):
    out, _ = run
    with jaclip.Model(TINY_MODEL) as model:
        assert jd.load_manifest(out)["model"] == model.fingerprint
        assert model.fingerprint.startswith("cloob-32-")
    for name, dim in (("a.jci", 3), ("b.jci", 3), ("wide.jci", 4)):
        with jaclip.Index(dim) as index:
            index.add(np.eye(dim, dtype=np.float32)[:2], [f"{name}/0", f"{name}/1"])
            index.save(tmp_path / name)
    jaclip.Index.merge(tmp_path / "m.jci", [tmp_path / "a.jci", tmp_path / "b.jci"], unique_labels=True)
    with jaclip.Index.load(tmp_path / "m.jci") as merged:
        assert merged.labels() == ["a.jci/0", "a.jci/1", "b.jci/0", "b.jci/1"]
    with pytest.raises(jaclip.ShapeError, match="wide.jci"):
        jaclip.Index.merge(tmp_path / "m2.jci", [tmp_path / "a.jci", tmp_path / "wide.jci"])
    with pytest.raises(jaclip.InvalidArgumentError, match="twice"):
        jaclip.Index.merge(tmp_path / "m2.jci", [tmp_path / "a.jci", tmp_path / "a.jci"], unique_labels=True)
    with pytest.raises(jaclip.InvalidArgumentError):
        jaclip.Index.merge(tmp_path / "m2.jci", [])
    with pytest.raises(TypeError):
        jaclip.Index.merge(tmp_path / "m2.jci", str(tmp_path / "a.jci"))
    assert not (tmp_path / "m2.jci").exists()


# ---- issue 24 item 12: manifests are untrusted input --------------------------------------------------

def _hand_made_run(base):
    """A one-shard run written by hand (no cluster needed), an index outside it, and a function writing
    manifest.json from an object or raw bytes."""
    out = base / "run"
    (out / "shards").mkdir(parents=True)
    with jaclip.Index(3) as ix:
        ix.add(np.eye(3, dtype=np.float32), ["a", "b", "c"])
        ix.save(out / "shards" / "part-00000.jci")
    with jaclip.Index(3) as ix:
        ix.add(np.eye(3, dtype=np.float32), ["outside-x", "outside-y", "outside-z"])
        ix.save(base / "outside.jci")

    def record(path, rel):
        data = open(path, "rb").read()
        import hashlib
        return {"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def manifest(rel="shards/part-00000.jci", target=None, **changes):
        entry = {"format": 1, "partition": 0, "planned": 3, "rows": 3, "model": "m", "skipped": [],
                 "files": {"index": record(target or out / rel, rel)}}
        m = {"format": 1, "model": "m", "partitions": 1, "rows": 3, "skipped": [], "shards": [entry]}
        for key, value in changes.items():
            (entry if key.startswith("entry_") else m)[key.removeprefix("entry_")] = value
        return m

    def write(obj):
        (out / "manifest.json").write_bytes(obj if isinstance(obj, bytes) else json.dumps(obj).encode())
    return out, manifest, write


def test_manifest_shape_and_paths_are_checked(tmp_path):
    out, manifest, write = _hand_made_run(tmp_path)
    target = tmp_path / "merged.jci"
    write(manifest())
    assert jd.merge(out, target) == 3  # the hand-made run is valid: the refusals below are about one change
    target.unlink()
    os.symlink(tmp_path / "outside.jci", out / "shards" / "link.jci")
    no_files = manifest()
    del no_files["shards"][0]["files"]
    cases = {
        "invalid JSON": b'{"format": 1, "shards": [',
        "not UTF-8": b'\xff\xfe{}',
        "nested 100000 deep": b"[" * 100000 + b"]" * 100000,
        "a list": b"[]",
        "shards a string": manifest(shards="part-00000"),
        "an entry without files": no_files,
        "an entry that is a number": manifest(shards=[7]),
        "rows not the sum": manifest(rows=4),
        "a size that is text": manifest(entry_files={"index": {"path": "shards/part-00000.jci", "bytes": "3",
                                                               "sha256": "0" * 64}}),
        "../outside.jci, its SHA matching": manifest("../outside.jci"),
        "an absolute path": manifest(str(tmp_path / "outside.jci")),
        "a link leading out, its SHA matching": manifest("shards/link.jci", target=tmp_path / "outside.jci"),
    }
    for name, obj in cases.items():
        write(obj)
        for call in (lambda: jd.merge(out, target), lambda: list(jd.read_shards(out)),
                     lambda: jd.merge(out, target, verify=False)):
            with pytest.raises(jd.ManifestError) as caught:
                call()
            assert isinstance(caught.value, jaclip.IndexFormatError), name
        assert not target.exists(), name
    # A shard entry read back when a run resumes: a malformed one is not reusable, and says why.
    assert "no 'files' object" in jd.verify_entry(out, no_files["shards"][0])
    assert "inside the run folder" in jd.verify_entry(out, manifest("../outside.jci")["shards"][0])


def test_plan_cuts_by_path_hash():
    """Partitions end where a path's hash says (or at 4 x the size): deleting a file that does not end
    its partition changes that partition only; the rest keep their files, numbers and digests."""
    paths = [f"/photos/{i:04d}.jpg" for i in range(400)]
    parts = jd.plan(paths, 8)
    assert [p for _, files, _ in parts for p in files] == paths
    assert all(1 <= len(files) <= 32 for _, files, _ in parts) and 25 <= len(parts) <= 80
    assert jd.plan(paths, 8) == parts
    n, files, _ = next(pt for pt in parts[1:] if len(pt[1]) >= 2 and jd._cuts_after(pt[1][-1], 8))
    gone = files[0]
    after = jd.plan([p for p in paths if p != gone], 8)
    assert len(after) == len(parts)
    changed = [i for i in range(len(parts)) if after[i] != parts[i]]
    assert changed == [n]
    # Position-based cutting would have shifted every partition after n.
    assert len(jd.plan(paths[:1], 8)) == 1 and jd.plan([], 8) == []


def test_rerun_after_a_deletion_reuses_the_rest_and_merge_syncs_with_nothing_reembedded(client, tmp_path):
    """Issue 25: shards record the model and each file's stamp; merged, the index syncs with 0
    re-embedded; a re-run after one file went redoes only the partition that held it."""
    photos = _make_folder(tmp_path / "photos", 24)
    out = tmp_path / "out"
    first = jd.embed([photos], out, TINY_MODEL, client=client, partition_size=3, num_threads=1, progress=False)
    jd.merge(out, tmp_path / "merged.jci")
    with jaclip.Index.load(tmp_path / "merged.jci") as merged, jaclip.Model(TINY_MODEL) as model:
        assert merged.fingerprint == model.fingerprint
    sync = [CLI, "index", "sync", "--model", TINY_MODEL, "--threads", "1", str(photos), "-o", str(tmp_path / "merged.jci")]
    r = subprocess.run(sync, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "0 added, 0 re-embedded, 0 removed, 24 unchanged" in r.stderr  # broken.jpg: skipped again

    paths, _ = jd.list_images([photos])
    parts = jd.plan(paths, 3)
    # a file that does not end its partition (a file that does joins two partitions: both are redone)
    n, files, _ = next(p for p in parts if len(p[1]) >= 2 and (jd._cuts_after(p[1][-1], 3) or p[1][-1] == paths[-1])
                       and not p[1][0].endswith("broken.jpg"))
    os.unlink(files[0])
    again = jd.embed([photos], out, TINY_MODEL, client=client, partition_size=3, num_threads=1, progress=False)
    assert again["partitions"] == first["partitions"]
    assert again["embedded"] == 1 and again["reused"] == first["partitions"] - 1
    assert jd.load_manifest(out)["shards"][n]["planned"] == len(files) - 1
    jd.merge(out, tmp_path / "merged2.jci")
    sync[-1] = str(tmp_path / "merged2.jci")
    r = subprocess.run(sync, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "0 added, 0 re-embedded, 0 removed, 23 unchanged" in r.stderr
