"""Capture dates per row (issue 25): photos written by PIL with known EXIF DateTimeOriginal (JPEG, PNG,
WebP, TIFF; with and without OffsetTimeOriginal) and photos without a usable one (none, "0000:00:00
00:00:00") whose mtime is set by os.utime. `jaclip index build` records each row's time; the
expected times are computed here with datetime, not by the library. Date filters (Python keywords
and `jaclip search --after/--before`, also with INDEX.ann present) are compared with brute force
over those times. Sync keeps a touched file's capture time and takes a rewritten file's new one;
Python's sync_index records the same times; merge carries them."""
import datetime
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import LIBRARY, ROOT, TINY_MODEL

os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import jaclip  # noqa: E402

CLI = os.environ.get("JACLIP_CLI", os.path.join(ROOT, "build", "jaclip"))
TZ = "JST-9"  # the zone EXIF times without an offset are read in (no daylight saving: fixed +9 h)
JST = datetime.timezone(datetime.timedelta(hours=9))
DAY = 86400 * 10**9


def run(*args, check=0):
    env = dict(os.environ, TZ=TZ)
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == check, f"rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def ns(dt):
    return int(dt.timestamp()) * 10**9


def write_photo(path, seed, date=None, offset=None, fmt="JPEG"):
    """A photo with DateTimeOriginal = date ("YYYY:MM:DD HH:MM:SS") and OffsetTimeOriginal = offset."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    kwargs = {}
    if date is not None:
        ex = Image.Exif()
        sub = {0x9003: date}
        if offset:
            sub[0x9011] = offset
        ex[0x8769] = sub
        kwargs["exif"] = ex.tobytes()
    im.save(path, format=fmt, **kwargs)


def expected_time(date, offset):
    """What the rule says: the offset when given, else the wall clock in JST."""
    wall = datetime.datetime.strptime(date, "%Y:%m:%d %H:%M:%S")
    if offset:
        sign = -1 if offset[0] == "-" else 1
        zone = datetime.timezone(sign * datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        return ns(wall.replace(tzinfo=zone))
    return ns(wall.replace(tzinfo=JST))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A folder of 24 photos and their expected (time, source) by label, and its index."""
    folder = tmp_path_factory.mktemp("dates") / "photos"
    folder.mkdir()
    want = {}
    formats = [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")]
    for i in range(24):
        fmt, ext = formats[i % 4]
        path = folder / f"p{i:02d}.{ext}"
        mtime = ns(datetime.datetime(2015, 1, 1, tzinfo=datetime.timezone.utc)) // 10**9 + i * 86400 * 7
        if i % 6 == 5:  # no EXIF at all: the file's mtime
            write_photo(path, i, fmt=fmt)
            want[str(path)] = (mtime * 10**9, "mtime")
        elif i % 6 == 4:  # EXIF's "unknown" date: the file's mtime too
            write_photo(path, i, "0000:00:00 00:00:00", fmt=fmt)
            want[str(path)] = (mtime * 10**9, "mtime")
        else:
            date = f"20{10 + i % 9:02d}:{1 + i % 12:02d}:{1 + (i * 5) % 28:02d} {(i * 7) % 24:02d}:{i % 60:02d}:30"
            offset = ["+09:00", "-04:00", None, "+05:45"][i % 4]
            write_photo(path, i, date, offset, fmt)
            want[str(path)] = (expected_time(date, offset), "exif")
        os.utime(path, (mtime, mtime))
    index = folder.parent / "photos.jci"
    run("index", "build", "--model", TINY_MODEL, folder, "-o", index)
    return folder, index, want


def row_times(index):
    ix = jaclip.Index.load(str(index))
    try:
        return {ix.label(i): ix.row_time(i) for i in range(len(ix))}, ix.labels(), ix.embeddings()
    finally:
        ix.close()


def test_build_records_capture_times(library):
    folder, index, want = library
    got, _, _ = row_times(index)
    assert got == want
    with open(index, "rb") as f:
        assert f.read(12)[8] == 4  # format version 4: it records capture times


def passing(want, labels, lo, hi):
    return {i for i, label in enumerate(labels) if lo <= want[label][0] < hi}


def brute_force(labels, emb, q, rows, k):
    scores = emb @ (q / np.linalg.norm(q))
    return sorted(rows, key=lambda i: (-scores[i], i))[:k]


def test_filter_against_brute_force(library):
    folder, index, want = library
    _, labels, emb = row_times(index)
    times = sorted(t for t, _ in want.values())
    rng = np.random.default_rng(7)
    ix = jaclip.Index.load(str(index))
    q = rng.standard_normal(emb.shape[1]).astype(np.float32)
    bounds = [(times[3], times[15]), (times[0], times[0] + 1), (times[10], times[-1] + 1), (0, times[5])]
    bounds += [(int(a), int(a) + int(b)) for a, b in zip(rng.integers(times[0], times[-1], 20),
                                                       rng.integers(1, 3000 * DAY, 20))]
    for lo, hi in bounds:
        rows = passing(want, labels, lo, hi)
        for k in (1, 5, 24):
            idx, _ = ix.search(q[None, :], k, after=lo, before=hi)
            assert list(idx[0]) == brute_force(labels, emb, q, rows, k), (lo, hi, k)
    ix.close()


@pytest.mark.parametrize("with_ann", [False, True])
def test_cli_dates_exact_even_with_ann(library, tmp_path, with_ann):
    """`jaclip search --after/--before` (local dates, TZ=JST-9 here): k results whenever k rows pass,
    the same as brute force, also when INDEX.ann would otherwise be used."""
    folder, index, want = library
    copy = tmp_path / "copy.jci"
    copy.write_bytes(index.read_bytes())
    if with_ann:
        run("index", "ann", "build", copy, "--kind", "hnsw")
    _, labels, emb = row_times(copy)
    model = jaclip.Model(TINY_MODEL)
    q = model.encode_texts(["写真"])[0]
    model.close()
    for after, before in [("2012-01-01", "2016-06-01"), ("2014-03-01T10:00", "2019-01-01"), ("2015-02-01", None)]:
        lo = ns(datetime.datetime.fromisoformat(after).replace(tzinfo=JST))
        hi = ns(datetime.datetime.fromisoformat(before).replace(tzinfo=JST)) if before else 2**63 - 1
        rows = passing(want, labels, lo, hi)
        k = 5
        args = ["search", "--model", TINY_MODEL, "--index", copy, "写真", "-k", k, "--json", "--after", after]
        if before:
            args += ["--before", before]
        hits = json.loads(run(*args).stdout)[0]["results"]
        assert len(hits) == min(k, len(rows))
        assert [h["row"] for h in hits] == brute_force(labels, emb, q, rows, k)


def test_sync_keeps_and_updates_capture_times(library, tmp_path):
    folder, index, want = library
    work = tmp_path / "photos"
    work.mkdir()
    moved = {}
    for src in sorted(folder.iterdir()):
        (work / src.name).write_bytes(src.read_bytes())
        st = src.stat()
        os.utime(work / src.name, ns=(st.st_mtime_ns, st.st_mtime_ns))
        moved[str(work / src.name)] = want[str(src)]
    out = tmp_path / "sync.jci"
    run("index", "sync", "--model", TINY_MODEL, work, "-o", out)
    # Touched (same bytes, new mtime): the capture time stays; a file without one follows its mtime.
    os.utime(work / "p00.jpg", (1, 1))
    os.utime(work / "p05.png", (2_000_000_000, 2_000_000_000))
    moved[str(work / "p05.png")] = (2_000_000_000 * 10**9, "mtime")
    # Rewritten with another date: the new one.
    write_photo(work / "p01.png", 1, "2001:02:03 04:05:06", "+00:00", "PNG")
    moved[str(work / "p01.png")] = (expected_time("2001:02:03 04:05:06", "+00:00"), "exif")
    run("index", "sync", "--model", TINY_MODEL, work, "-o", out)
    got, _, _ = row_times(out)
    assert got == moved
    # Python's sync_index records what the command does.
    py = tmp_path / "py.jci"
    model = jaclip.Model(TINY_MODEL)
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = TZ
    try:
        import time
        time.tzset()
        jaclip.sync_index([str(work)], str(py), model)
    finally:
        if old_tz is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
        model.close()
    assert row_times(py)[0] == moved
    # Merge carries them.
    merged = tmp_path / "merged.jci"
    run("index", "merge", merged, out)
    assert row_times(merged)[0] == moved
