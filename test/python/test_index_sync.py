"""`jaclip index sync` (tools/jaclip/sync.c) on generated folders and the tiny model: add, delete,
overwrite, touch, rename (with --root), a second concurrent writer, and 24 kill -9 at random moments;
after the last sync the index equals a fresh build of the folder (same labels, embeddings within 1e-6:
they come from different processes) and a search never returns a deleted file. Also crafted version-2
files with non-finite rows (issue 13 item 7) and float16 rounding against numpy."""
import fcntl
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import LIBRARY, ROOT, TINY_MODEL

os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import jaclip  # noqa: E402

CLI = os.environ.get("JACLIP_CLI", os.path.join(ROOT, "build", "jaclip"))


def run(*args, check=None, timeout=120):
    result = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, errors="replace", timeout=timeout)
    if check is not None:
        assert result.returncode == check, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def write_image(path, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (36 + seed % 7, 40, 3), dtype=np.uint8)).save(path, format="PNG")


def rows_by_label(index_path):
    ix = jaclip.Index.load(index_path)
    labels, emb = ix.labels(), ix.embeddings()
    assert len(set(labels)) == len(labels), "a label is indexed twice"
    return dict(zip(labels, emb))


def assert_same_as_fresh_build(index_path, folder, tmp_path, root=None):
    fresh = tmp_path / f"fresh-{time.monotonic_ns()}.jci"
    extra = ["--root", root] if root else []
    run("index", "build", "--model", TINY_MODEL, folder, "-o", fresh, *extra, check=0)
    got, want = rows_by_label(index_path), rows_by_label(fresh)
    assert sorted(got) == sorted(want)
    for label in want:
        np.testing.assert_allclose(got[label], want[label], atol=1e-6, rtol=0)
    # A search over every row returns only files that exist.
    ix = jaclip.Index.load(index_path)
    if len(ix):
        idx, _ = ix.search(np.ones((1, ix.dim), np.float32), k=len(ix) + 5)
        base = root or ""
        for i in idx[0]:
            assert os.path.exists(os.path.join(base, ix.label(int(i))))


def sync(folder, index, *extra, check=0):
    return run("index", "sync", "--model", TINY_MODEL, folder, "-o", index, "--batch", "3", *extra, check=check)


def test_sync_add_delete_overwrite_touch_rename(tmp_path):
    photos = tmp_path / "photos"
    for i in range(10):
        write_image(photos / ("sub" if i % 3 == 0 else "") / f"p{i:02d}.png", i)
    index = tmp_path / "x.jci"
    r = sync(photos, index, "--root", tmp_path)
    assert "10 added" in r.stderr
    r = sync(photos, index, "--root", tmp_path)
    assert "0 added, 0 re-embedded, 0 removed, 10 unchanged" in r.stderr  # idempotent
    (photos / "p01.png").unlink()
    (photos / "sub" / "p03.png").unlink()
    for i in range(20, 23):
        write_image(photos / f"n{i}.png", i)
    write_image(photos / "p02.png", 102)  # overwritten in place, new content
    os.utime(photos / "p04.png", ns=(1, 1))  # touched: same content, other mtime
    r = sync(photos, index, "--root", tmp_path)
    assert "3 added, 1 re-embedded, 2 removed, 7 unchanged (1 re-stamped)" in r.stderr, r.stderr
    assert_same_as_fresh_build(index, photos, tmp_path, root=str(tmp_path))
    # The whole tree moves; labels relative to the root stay valid (--moved: the index records the
    # new root; without it another --root is refused, test_index_library.py).
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(photos), str(moved / "photos"))
    r = sync(moved / "photos", index, "--root", moved, "--moved")
    assert "0 added, 0 re-embedded, 0 removed, 11 unchanged" in r.stderr, r.stderr
    assert_same_as_fresh_build(index, moved / "photos", tmp_path, root=str(moved))
    # Without --root labels are absolute paths.
    absolute = tmp_path / "abs.jci"
    sync(moved / "photos", absolute)
    assert all(os.path.isabs(label) for label in jaclip.Index.load(absolute).labels())


def test_same_dir_twice_and_subdir_index_once_and_bad_names_counted(tmp_path):
    photos = tmp_path / "p"
    for i in range(4):
        write_image(photos / ("sub" if i < 2 else "") / f"i{i}.png", i)
    bad = os.fsencode(str(photos)) + b"/bad-\xff.png"
    with open(bad, "wb") as f:
        f.write((photos / "i2.png").read_bytes())
    index = tmp_path / "x.jci"
    r = run("index", "build", "--model", TINY_MODEL, photos, photos, photos / "sub", "-o", index, check=0)
    assert "4 images added, 0 already indexed, 1 skipped" in r.stderr, r.stderr
    assert len(jaclip.Index.load(index)) == 4


def test_over_long_path_is_counted_as_skipped(tmp_path):
    """Issue 13 item 9: a file whose path exceeds PATH_MAX was left out silently."""
    photos = tmp_path / "p"
    write_image(photos / "ok.png", 1)
    fd = os.open(photos, os.O_RDONLY)
    try:
        for _ in range(22):  # 22 x 200 characters: past the 4096 of PATH_MAX
            name = "d" * 199
            os.mkdir(name, dir_fd=fd)
            new = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
        with open(os.open("deep.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write((photos / "ok.png").read_bytes())
    finally:
        os.close(fd)
    index = tmp_path / "x.jci"
    r = sync(photos, index)
    assert "1 added" in r.stderr and "1 skipped" in r.stderr, r.stderr
    assert "File name too long" in r.stderr


def test_second_writer_is_refused_or_waits(tmp_path):
    photos = tmp_path / "p"
    for i in range(3):
        write_image(photos / f"i{i}.png", i)
    index = tmp_path / "x.jci"
    sync(photos, index)
    with open(str(index) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = sync(photos, index, check=1)
        assert "another jaclip is writing this index" in r.stderr
        r = run("index", "build", "--model", TINY_MODEL, photos, "-o", index, check=1)
        assert "--wait" in r.stderr
        waiting = subprocess.Popen([CLI, "index", "sync", "--model", TINY_MODEL, photos, "-o", index, "--wait"],
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert waiting.poll() is None  # still waiting
        fcntl.flock(lock, fcntl.LOCK_UN)
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    # Two syncs at once: one does the work, the other is refused; nothing is doubled.
    write_image(photos / "i9.png", 9)
    procs = [subprocess.Popen([CLI, "index", "sync", "--model", TINY_MODEL, photos, "-o", index],
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(p.wait(timeout=60) for p in procs)
    assert codes[0] == 0
    assert_same_as_fresh_build(index, photos, tmp_path)


def test_kill_9_at_random_moments(tmp_path):
    rng = random.Random(15)
    photos = tmp_path / "p"
    next_seed = [1000]

    def new_image(name):
        next_seed[0] += 1
        write_image(photos / name, next_seed[0])

    for i in range(16):
        new_image(f"i{i:02d}.png")
    index = tmp_path / "x.jci"
    kills = 0
    deadline = time.monotonic() + 120
    while kills < 24 and time.monotonic() < deadline:
        # The folder changes between runs: add, delete, overwrite.
        names = sorted(os.listdir(photos))
        action = rng.randrange(3)
        if action == 0 or len(names) < 6:
            new_image(f"n{next_seed[0]}.png")
        elif action == 1:
            (photos / rng.choice(names)).unlink()
        else:
            new_image(rng.choice(names))
        proc = subprocess.Popen([CLI, "index", "sync", "--model", TINY_MODEL, photos, "-o", index, "--batch", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.25))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        if index.exists():
            run("index", "info", index, check=0)  # loadable after every kill
    assert kills >= 20
    sync(photos, index)
    r = sync(photos, index)
    assert " 0 added, 0 re-embedded, 0 removed" in r.stderr, r.stderr
    assert_same_as_fresh_build(index, photos, tmp_path)


# ---- crafted files --------------------------------------------------------------------------------

def version2_file(vectors, labels, fp16=False, fingerprint=b""):
    """A version 2 index file written here from docs/index-format.md, with zlib's CRC32."""
    n, dim = vectors.shape
    with np.errstate(over="ignore"):  # 1e30 becomes inf in float16: refused all the same
        vec = vectors.astype(np.float16 if fp16 else np.float32).tobytes()
    blob = b"".join(label.encode() + b"\0" for label in labels)
    offsets, at = [], 0
    for label in labels:
        offsets.append(at)
        at += len(label.encode()) + 1
    payload = vec + b"\0" * (-len(vec) % 8) + struct.pack(f"<{n}Q", *offsets) + b"\0" * (24 * n) + blob
    payload += b"\0" * (-len(payload) % 64)
    seg = bytearray(64)
    struct.pack_into("<4sIQQQI", seg, 0, b"JSEG", 64, n, len(blob), len(payload), zlib.crc32(payload))
    struct.pack_into("<I", seg, 60, zlib.crc32(bytes(seg[:60])))
    head = bytearray(128)
    struct.pack_into("<8sIIIIQQQQQ", head, 0, b"JACLIPIX", 2, 128, dim, 1 if fp16 else 0, 128 + 64 + len(payload),
                     n, 1, 1, 0)
    head[64:64 + len(fingerprint)] = fingerprint
    struct.pack_into("<I", head, 124, zlib.crc32(bytes(head[:124])))
    return bytes(head) + bytes(seg) + payload


@pytest.mark.parametrize("fp16", [False, True])
def test_crafted_file_reads_as_written(tmp_path, fp16):
    x = np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path = tmp_path / "ok.jci"
    path.write_bytes(version2_file(x, list("abcde"), fp16, b"cloob-8-0123456789abcdef"))
    ix = jaclip.Index.load(path)
    assert ix.labels() == list("abcde") and ix.fp16 == fp16 and ix.fingerprint == "cloob-8-0123456789abcdef"
    want = x.astype(np.float16).astype(np.float32) if fp16 else x
    np.testing.assert_array_equal(ix.embeddings(), want)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 3.0, 1e30])
@pytest.mark.parametrize("fp16", [False, True])
def test_non_finite_or_impossible_row_refused(tmp_path, bad, fp16):
    """Issue 13 item 7: such a row loaded before and printed `nan` in --json."""
    x = np.zeros((3, 4), np.float32)
    x[:, 0] = 1
    x[1, 2] = bad
    path = tmp_path / "bad.jci"
    path.write_bytes(version2_file(x, ["a", "b", "c"], fp16))
    with pytest.raises(jaclip.IndexFormatError, match="row 1 column 2"):
        jaclip.Index.load(path)
    r = run("search", "--model", TINY_MODEL, "--index", path, "犬", "--json", check=1)
    assert "row 1 column 2" in r.stderr and r.stdout == ""


def test_float16_rows_round_as_numpy(tmp_path):
    x = np.random.default_rng(5).standard_normal((200, 16)).astype(np.float32)
    x[0, :3] = [1e-6, 6e-8, 3e-8]  # float16 subnormals and underflow
    ix = jaclip.Index(16, fp16=True)
    ix.add(x, [f"r{i}" for i in range(200)])
    unit = x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_array_equal(ix.embeddings(), unit.astype(np.float32).astype(np.float16).astype(np.float32))


def test_python_sync_index_takes_turns_with_the_command(tmp_path):
    photos = tmp_path / "p"
    for i in range(6):
        write_image(photos / f"i{i}.png", 300 + i)
    (photos / "broken.png").write_bytes(b"\x89PNG not really")
    index = tmp_path / "x.jci"
    with jaclip.Model(TINY_MODEL) as model:
        counts = jaclip.sync_index(photos, index, model, root=tmp_path, batch=4)
        assert counts == {"added": 6, "reembedded": 0, "removed": 0, "unchanged": 0, "skipped": 1, "kept": 0}
        # The command sees nothing to do, then makes changes the Python side picks up.
        r = sync(photos, index, "--root", tmp_path)
        assert "0 added, 0 re-embedded, 0 removed, 6 unchanged" in r.stderr, r.stderr
        (photos / "i0.png").unlink()
        write_image(photos / "i1.png", 999)
        write_image(photos / "new.png", 998)
        counts = jaclip.sync_index([photos, photos], index, model, root=tmp_path)
        assert counts == {"added": 1, "reembedded": 1, "removed": 1, "unchanged": 4, "skipped": 1, "kept": 0}
        assert_same_as_fresh_build(index, photos, tmp_path, root=str(tmp_path))
        with open(str(index) + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with pytest.raises(jaclip.InputOutputError, match="another jaclip"):
                jaclip.sync_index(photos, index, model, root=tmp_path)
        other = tmp_path / "other.jci"
        with jaclip.Index(model.embedding_dim) as ix:
            ix.fingerprint = "cloob-32-0000000000000000"
            ix.save(other)
        with pytest.raises(jaclip.ModelMismatchError):
            jaclip.sync_index(photos, other, model)


# ---- issue 24 item 5: rows under a folder sync could not list are kept ------------------------------

def _as_nobody():
    """argv prefix running a command as an unprivileged user, where mode 000 really refuses a listing
    (root reads through it): setpriv to nobody when this is root; nothing otherwise."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("running as root without setpriv: mode 000 would not stop root from listing")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def _bounded(argv, nofile=None, timeout=120):
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout, env=env,
                          preexec_fn=limit)


@pytest.fixture
def open_tmp():
    """A folder an unprivileged user can reach (pytest's tmp_path lies under a 0700 folder)."""
    import tempfile
    path = tempfile.mkdtemp(prefix="jaclip-sync-perm-")
    os.chmod(path, 0o755)
    yield Path(path)
    for top, dirs, _ in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(top, d), 0o755)
    shutil.rmtree(path)


def _fourteen_photos(base):
    for i, d in enumerate(["a"] * 3 + ["b"] * 4 + ["b/deep"] * 2 + ["c"] * 5):
        write_image(base / "photos" / d / f"{i}.png", 700 + i)
    out = base / "out"
    out.mkdir()
    return base / "photos", out


def test_sync_keeps_rows_under_a_folder_it_cannot_list(open_tmp):
    """14 rows, then sub-folder b (6 rows) at mode 000 and a file of a deleted: the command and
    jaclip.sync_index, as a user the mode stops, remove the deleted file's row and keep b's 6 (was:
    14 rows -> 8, b's rows removed while its files still exist)."""
    prefix = _as_nobody()
    photos, out = _fourteen_photos(open_tmp)
    for tool in ("cli", "python"):
        index = out / f"{tool}.jci"
        sync(photos, index)
        assert len(rows_by_label(index)) == 14
        if prefix:
            os.chown(out, 65534, 65534)
            for name in os.listdir(out):
                os.chown(out / name, 65534, 65534)
        victim = photos / "a" / ("0.png" if tool == "cli" else "1.png")
        victim.unlink()
        (photos / "b").chmod(0)
        try:
            if tool == "cli":
                r = _bounded(prefix + [CLI, "index", "sync", "-m", TINY_MODEL, str(photos), "-o", str(index)])
                assert r.returncode == 0, r.stderr
                assert "b: cannot read directory" in r.stderr and "6 rows kept unverified" in r.stderr, r.stderr
                assert "1 removed" in r.stderr, r.stderr
            else:
                code = ("import json, jaclip, sys; m = jaclip.Model(sys.argv[1]); "
                        "print(json.dumps(jaclip.sync_index(sys.argv[2], sys.argv[3], m)))")
                r = _bounded(prefix + [sys.executable, "-c", code, TINY_MODEL, str(photos), str(index)])
                assert r.returncode == 0, r.stderr
                counts = json.loads(r.stdout.strip().splitlines()[-1])
                assert counts["kept"] == 6 and counts["removed"] == 1, counts
        finally:
            (photos / "b").chmod(0o755)
        labels = sorted(rows_by_label(index))
        assert len(labels) == 13 and str(victim) not in labels
        assert sum("/photos/b/" in label for label in labels) == 6
        write_image(victim, 0)  # back for the next tool


def test_sync_of_a_deep_tree_under_a_low_descriptor_limit(tmp_path):
    """30 nested folders under RLIMIT_NOFILE 12: the walk holds one descriptor at a time, so every row
    is verified (was: EMFILE at depth 8 and 23 of 30 rows removed); at RLIMIT_NOFILE 3 nothing can be
    opened and the index is left as it was."""
    deep, path = tmp_path / "deep", tmp_path / "deep"
    for i in range(30):
        path = path / f"d{i}"
        write_image(path / "x.png", 800 + i)
    index = tmp_path / "deep.jci"
    sync(deep, index)
    (deep / "d0" / "x.png").unlink()
    r = _bounded([CLI, "index", "sync", "-m", TINY_MODEL, str(deep), "-o", str(index)], nofile=12)
    assert r.returncode == 0 and "0 added, 0 re-embedded, 1 removed, 29 unchanged" in r.stderr, r.stderr
    before = index.read_bytes()
    r = _bounded([CLI, "index", "sync", "-m", TINY_MODEL, str(deep), "-o", str(index)], nofile=3)
    assert r.returncode != 0, r.stderr
    assert index.read_bytes() == before and len(rows_by_label(index)) == 29


def test_every_format_embedded_and_the_rest_counted(tmp_path):
    """Issue 27: a folder holding every format: the decodable photos are embedded (each one as its
    pixels saved as PNG would be), the files named as images that cannot be decoded are counted as
    skipped with their reason, and files of other names are not looked at."""
    photos = tmp_path / "p"
    photos.mkdir()
    rng = np.random.default_rng(27)
    pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    image.save(photos / "same.png")
    lossless = {"a.webp": ("WEBP", {"lossless": True}), "b.bmp": ("BMP", {}), "c.tif": ("TIFF", {}),
                "d.tiff": ("TIFF", {"compression": "tiff_lzw"}), "E.TIF": ("TIFF", {"compression": "tiff_adobe_deflate"})}
    for name, (fmt, options) in lossless.items():
        image.save(photos / name, fmt, **options)
    image.convert("P").save(photos / "f.gif")
    image.save(photos / "g.jpg", quality=90)
    decodable = len(lossless) + 3
    if shutil.which("heif-enc"):
        subprocess.run(["heif-enc", "-q", "80", "-o", str(photos / "h.heic"), str(photos / "same.png")], check=True,
                       capture_output=True, timeout=120)
        decodable += 1
    (photos / "broken.webp").write_bytes(b"RIFF\x10\0\0\0WEBPVP8 " + bytes(64))
    (photos / "noise.bmp").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    Image.fromarray(np.zeros((20, 20), np.uint16), "I;16").save(photos / "grey16.tif")
    (photos / "notes.txt").write_text("not an image")
    (photos / "photo.xcf").write_bytes(b"gimp xcf v011")
    index = tmp_path / "x.jci"
    r = run("index", "build", "--model", TINY_MODEL, photos, "-o", index, check=0)
    assert f"{decodable} images added, 0 already indexed, 3 skipped" in r.stderr, r.stderr
    assert "broken.webp: skipped: " in r.stderr and "WebP" in r.stderr, r.stderr
    assert "noise.bmp: skipped: " in r.stderr and "grey16.tif: skipped: " in r.stderr and "I;16" in r.stderr
    assert "notes.txt" not in r.stderr and "photo.xcf" not in r.stderr
    rows = rows_by_label(index)
    reference = rows[str(photos / "same.png")]
    for name in lossless:
        np.testing.assert_allclose(rows[str(photos / name)], reference, atol=1e-6, rtol=0, err_msg=name)
