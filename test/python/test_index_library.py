"""Issue 25, the index side: what an index knows survives `jaclip index merge` (fingerprint, stamps),
so a merged index syncs with nothing re-embedded; shards of two models are refused. Generated folders
and the tiny model; every expected count comes from the folder the test wrote."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import LIBRARY, ROOT, TINY_MODEL

os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import jaclip  # noqa: E402

# The CLI runner and the image writer are test_index_sync.py's.
from test_index_sync import CLI, run, write_image  # noqa: E402,F401


def make_photos(root, count):
    for i in range(count):
        write_image(root / ("a" if i % 2 else "b") / f"p{i:02d}.png", i)
    return root


def sync(folder, index, *extra, check=0):
    return run("index", "sync", "--model", TINY_MODEL, folder, "-o", index, *extra, check=check)


def test_cli_merge_keeps_fingerprint_and_stamps(tmp_path):
    photos = make_photos(tmp_path / "photos", 9)
    for part in ("a", "b"):
        run("index", "build", "--model", TINY_MODEL, photos / part, "-o", tmp_path / f"{part}.jci", check=0)
    merged = tmp_path / "merged.jci"
    run("index", "merge", merged, tmp_path / "a.jci", tmp_path / "b.jci", "--unique", check=0)
    info = run("index", "info", merged, check=0).stdout
    assert "fingerprint: (none recorded)" not in info
    assert run("index", "info", tmp_path / "a.jci", check=0).stdout == info.replace("rows: 9", "rows: 4")
    r = sync(photos, merged)
    assert "0 added, 0 re-embedded, 0 removed, 9 unchanged" in r.stderr


def test_cli_merge_refuses_shards_of_two_models(tmp_path):
    photos = make_photos(tmp_path / "photos", 4)
    run("index", "build", "--model", TINY_MODEL, photos / "a", "-o", tmp_path / "a.jci", check=0)
    run("index", "build", "--model", TINY_MODEL, photos / "b", "-o", tmp_path / "b.jci", check=0)
    with jaclip.Index.load(tmp_path / "b.jci") as b:  # the same rows, as if another model made them
        b.fingerprint = "cloob-32-0123456789abcdef"
        b.save(tmp_path / "other.jci")
    r = run("index", "merge", tmp_path / "m.jci", tmp_path / "a.jci", tmp_path / "other.jci")
    assert r.returncode != 0 and "other.jci" in r.stderr and "cloob-32-0123456789abcdef" in r.stderr
    assert "different models" in r.stderr
    assert not (tmp_path / "m.jci").exists()


def labels_of(index):
    with jaclip.Index.load(index) as ix:
        return ix.labels()


def test_root_recorded_and_used_by_sync(tmp_path):
    photos = make_photos(tmp_path / "lib" / "photos", 6)
    index = tmp_path / "x.jci"
    sync(photos, index, "--root", tmp_path / "lib")
    assert sorted(labels_of(index)) == sorted(f"photos/{d}/p{i:02d}.png" for i in range(6) for d in "ab"
                                              if (d == "a") == bool(i % 2))
    with jaclip.Index.load(index) as ix:
        assert ix.metadata("root") == str((tmp_path / "lib").resolve()) and ix.metadata("labels") == "relative"
        assert ix.metadata("orientation") == "as-stored"
    info = run("index", "info", index, check=0).stdout
    assert f"root: {(tmp_path / 'lib').resolve()}" in info and "labels: relative" in info
    # Forgetting --root used to add every file again under its absolute path (6 added, 12 rows).
    r = sync(photos, index)
    assert "0 added, 0 re-embedded, 0 removed, 6 unchanged" in r.stderr
    assert len(labels_of(index)) == 6
    (photos / "a" / "p01.png").unlink()
    r = sync(photos, index)
    assert "0 added, 0 re-embedded, 1 removed, 5 unchanged" in r.stderr
    # Another root is refused, saying what to do; nothing is written.
    before = index.read_bytes()
    r = sync(photos, index, "--root", photos, check=1)
    assert "relative to" in r.stderr and "--moved" in r.stderr
    assert index.read_bytes() == before
    # The folder moved: --moved records the new root, and labels stay the same rows.
    (tmp_path / "lib").rename(tmp_path / "moved")
    r = sync(tmp_path / "moved" / "photos", index, check=1)  # the recorded root is gone
    assert "gone" in r.stderr and "--moved" in r.stderr
    r = sync(tmp_path / "moved" / "photos", index, "--root", tmp_path / "moved", "--moved")
    assert "0 added, 0 re-embedded, 0 removed, 5 unchanged" in r.stderr
    with jaclip.Index.load(index) as ix:
        assert ix.metadata("root") == str((tmp_path / "moved").resolve()) and len(ix) == 5


def test_absolute_labels_recorded_and_root_refused(tmp_path):
    photos = make_photos(tmp_path / "photos", 3)
    index = tmp_path / "abs.jci"
    run("index", "build", "--model", TINY_MODEL, photos, "-o", index, check=0)
    with jaclip.Index.load(index) as ix:
        assert ix.metadata("labels") == "absolute" and ix.metadata("root") is None
    r = sync(photos, index, "--root", tmp_path, check=1)
    assert "absolute paths" in r.stderr
    assert len(labels_of(index)) == 3
    r = sync(photos, index, "--moved", check=1)
    assert "--moved needs --root" in r.stderr


def test_index_from_before_roots_were_recorded(tmp_path):
    """An index with relative labels and no recorded root (written by an older jaclip): sync without
    --root is refused instead of doubling it; with --root the root is recorded from then on."""
    photos = make_photos(tmp_path / "photos", 4)
    index = tmp_path / "old.jci"
    sync(photos, index, "--root", tmp_path)
    with jaclip.Index.load(index) as ix:  # rewritten without metadata, as older writers left it
        for key in ("root", "labels", "orientation"):
            ix.set_metadata(key, None)
        ix.save(index)
    assert index.read_bytes()[8] == 2  # no metadata: still format version 2
    r = sync(photos, index, check=1)
    assert "records no root" in r.stderr
    r = sync(photos, index, "--root", tmp_path)
    assert "0 added, 0 re-embedded, 0 removed, 4 unchanged" in r.stderr
    with jaclip.Index.load(index) as ix:
        assert ix.metadata("root") == str(tmp_path.resolve())
    assert index.read_bytes()[8] == 3


def test_python_sync_index_uses_the_recorded_root(tmp_path):
    photos = make_photos(tmp_path / "photos", 4)
    index = tmp_path / "py.jci"
    with jaclip.Model(TINY_MODEL) as model:
        counts = jaclip.sync_index(photos, index, model, root=tmp_path)
        assert counts["added"] == 4
        counts = jaclip.sync_index(photos, index, model)  # root forgotten: the recorded one is used
        assert counts["added"] == 0 and counts["unchanged"] == 4
        try:
            jaclip.sync_index(photos, index, model, root=photos)
            raise AssertionError("another root was accepted")
        except jaclip.InvalidArgumentError as e:
            assert "relative to" in str(e)
    assert len(labels_of(index)) == 4
    r = sync(photos, index)  # the command reads what the binding recorded
    assert "0 added, 0 re-embedded, 0 removed, 4 unchanged" in r.stderr


def write_phone_photo(path, seed):
    """A JPEG whose EXIF Orientation (6) says: turn 90 degrees clockwise to view."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(rng.integers(0, 256, (40, 72, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, format="JPEG", exif=exif.tobytes(), quality=95)


def embed_file(path, tmp_path, *extra):
    out = tmp_path / f"e-{path.stem}-{len(extra)}.npy"
    run("embed", "--model", TINY_MODEL, "--image", path, "--normalize", "-o", out, *extra, check=0)
    return np.load(out)[0]


def test_exif_transpose_is_an_index_property(tmp_path):
    photos = tmp_path / "phone"
    write_phone_photo(photos / "a.jpg", 1)
    index = tmp_path / "phone.jci"
    run("index", "build", "--model", TINY_MODEL, photos, "-o", index, "--exif-transpose", check=0)
    assert "orientation: exif-transpose" in run("index", "info", index, check=0).stdout
    upright = embed_file(photos / "a.jpg", tmp_path, "--exif-transpose")
    sideways = embed_file(photos / "a.jpg", tmp_path)
    assert np.abs(upright - sideways).max() > 1e-3  # the orientation matters to these pixels
    rows = rows_of(index)
    np.testing.assert_allclose(rows[str((photos / "a.jpg").resolve())], upright, atol=1e-5, rtol=0)
    # A later sync, without the option, embeds new photos by the recorded rule too.
    write_phone_photo(photos / "b.jpg", 2)
    r = sync(photos, index)
    assert "1 added" in r.stderr
    np.testing.assert_allclose(rows_of(index)[str((photos / "b.jpg").resolve())],
                               embed_file(photos / "b.jpg", tmp_path, "--exif-transpose"), atol=1e-5, rtol=0)
    # An index embedded as stored refuses --exif-transpose (the rows would mix two orientations).
    plain = tmp_path / "plain.jci"
    sync(photos, plain)
    assert "orientation: as-stored" in run("index", "info", plain, check=0).stdout
    r = sync(photos, plain, "--exif-transpose", check=1)
    assert "two orientations" in r.stderr
    np.testing.assert_allclose(rows_of(plain)[str((photos / "a.jpg").resolve())], sideways, atol=1e-5, rtol=0)


def rows_of(index):
    with jaclip.Index.load(index) as ix:
        return dict(zip(ix.labels(), ix.embeddings()))


def test_search_by_image_follows_the_index_orientation(tmp_path):
    photos = tmp_path / "phone"
    write_phone_photo(photos / "a.jpg", 3)
    for exif in (True, False):
        index = tmp_path / f"s{exif}.jci"
        run("index", "build", "--model", TINY_MODEL, photos, "-o", index, *(["--exif-transpose"] if exif else []),
            check=0)
        out = run("search", "--model", TINY_MODEL, "--index", index, "--image", photos / "a.jpg", "--json",
                  check=0).stdout
        score = json.loads(out)[0]["results"][0]["score"]
        assert abs(score - 1.0) < 1e-4  # the query was embedded as the row was
    r = run("search", "--model", TINY_MODEL, "--index", index, "--image", tmp_path / "none.jpg")
    assert r.returncode == 1 and "none.jpg" in r.stderr


def test_labels_file_with_bom_comments_and_blank_lines(tmp_path):
    """A labels file saved by a Windows editor (UTF-8 BOM, CRLF) with # comments and blank lines: the
    labels are the lines that remain, as --labels would give them."""
    photo = tmp_path / "p.png"
    write_image(photo, 5)
    (tmp_path / "labels.txt").write_bytes("\ufeff犬\r\n# 動物のラベル\r\n\r\n   \r\n猫\r\n  # indented comment\r\nラーメン\r\n"
                                          .encode("utf-8"))
    got = json.loads(run("classify", "--model", TINY_MODEL, "--labels-file", tmp_path / "labels.txt", "--json",
                         photo, check=0).stdout)
    want = json.loads(run("classify", "--model", TINY_MODEL, "--labels", "犬,猫,ラーメン", "--json", photo,
                          check=0).stdout)
    assert sorted(e["label"] for e in got[0]["labels"]) == sorted(["犬", "猫", "ラーメン"])
    assert got == want


def test_remove_of_an_unknown_label_says_why_and_info_shows_deleted_rows(tmp_path, monkeypatch):
    photos = make_photos(tmp_path / "lib", 10)
    index = tmp_path / "r.jci"
    sync(photos, index, "--root", tmp_path)
    # A path as typed from inside the folder is not how labels are stored (relative to the root).
    monkeypatch.chdir(photos / "a")
    r = run("index", "remove", index, "p01.png")
    assert r.returncode == 1 and "0 rows removed" in r.stderr and "no row is labelled 'p01.png'" in r.stderr
    assert f"did you mean 'lib/a/p01.png'?" in r.stderr
    r = run("index", "remove", index, "nothing/like/this.png", "lib/a/p01.png")
    assert r.returncode == 1 and "1 rows removed" in r.stderr and "relative to" in r.stderr
    assert len(labels_of(index)) == 9
    info = run("index", "info", index, check=0).stdout
    assert "rows: 9" in info and "deleted: 1 rows still stored (10% of the file's rows)" in info
    assert "jaclip index compact" in info
    r = run("index", "remove", index, "lib/b/p00.png", check=0)  # all known: status 0
    assert json.loads(run("index", "info", "--json", index, check=0).stdout)["deleted"] == 2
    with jaclip.Index.load(index) as ix:
        assert ix.deleted_rows == 2 and len(ix) == 8
    run("index", "compact", index, check=0)
    info = run("index", "info", index, check=0).stdout
    assert "deleted: 0 rows still stored (0% of the file's rows)\n" in info and "compact" not in info
    # Absolute labels: the path of an existing file, typed relative, is offered absolute.
    absolute = tmp_path / "abs.jci"
    sync(photos, absolute)
    r = run("index", "remove", absolute, "p03.png")
    assert r.returncode == 1 and f"did you mean '{(photos / 'a' / 'p03.png').resolve()}'?" in r.stderr
    info = run("index", "info", absolute, check=0).stdout
    assert "deleted: 0 rows" in info and "compact" not in info


def test_man_page_documents_every_option_of_search_ann_serve_and_index():
    """Every --option that `jaclip search|index ann|index sync|index build --help` prints is in
    docs/jaclip.1, and serve's options of issue 25's time (serve is being reworked elsewhere: its new
    options are that work's to document)."""
    import re
    with open(os.path.join(ROOT, "docs", "jaclip.1"), encoding="utf-8") as f:
        man = f.read().replace("\\-", "-")
    serve = ["--model", "--index", "--classifier", "--host", "--port", "--token", "--threads", "--max-batch",
             "--model-threads", "--max-requests", "--max-body", "--timeout", "--device"]
    assert not [o for o in serve if o not in man]
    for args in (["search"], ["index", "ann"], ["index", "sync"], ["index", "build"]):
        help_text = run(*args, "--help", check=0).stdout
        options = set(re.findall(r"(--[a-z][a-z0-9-]+)", help_text)) - {"--help"}
        assert options, args
        missing = sorted(o for o in options if o not in man)
        assert not missing, f"{args}: {missing} not in docs/jaclip.1"
    for command in ("index ann build", "index ann info"):
        assert command in man


def _brute_force_pages(index, query, keep, offset, k, threshold=-2.0):
    """The scores of ranks offset.. offset+k-1 among the rows keep(label, stamp) lets through, from the
    index's stored rows and the query, in float64 (the expected values come from here, not jaclip)."""
    with jaclip.Index.load(index) as ix:
        labels, rows = ix.labels(), ix.embeddings().astype(np.float64)
    q = query.astype(np.float64) / np.linalg.norm(query)
    scores = rows @ q
    passing = sorted(((scores[i], labels[i]) for i in range(len(labels)) if keep(labels[i], i)), key=lambda t: -t[0])
    page = passing[offset:offset + k]
    return [(s, label) for s, label in page if s >= threshold], len(passing)


def test_search_filters_pages_and_threshold_against_brute_force(tmp_path):
    root = tmp_path / "lib"
    rng = np.random.default_rng(4)
    mtimes = {}
    for i in range(40):
        folder = root / ("2023" if i % 3 == 0 else "2024") / ("旅行" if i % 2 else "家")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (f"p{i:02d}.png" if i % 4 else f"p{i:02d}.JPG")
        img = Image.fromarray(rng.integers(0, 256, (30 + i % 5, 33, 3), dtype=np.uint8))
        img.save(path, format="PNG" if i % 4 else "JPEG")
        t = 1_700_000_000 + i * 86_400  # one day apart, from 2023-11-14 (UTC)
        os.utime(path, (t, t))
        mtimes[str(path.relative_to(root))] = t
    index = tmp_path / "f.jci"
    sync(root, index, "--root", root)
    qfile = tmp_path / "q.npy"
    run("embed", "--model", TINY_MODEL, "--text", "犬", "-o", qfile, check=0)
    query = np.load(qfile)[0]
    env = dict(os.environ, TZ="UTC")

    def search(*extra):
        r = subprocess.run([CLI, "search", "--model", TINY_MODEL, "--index", str(index), "犬", "--json", *map(str, extra)],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)[0]["results"]

    every, _ = _brute_force_pages(index, query, lambda label, i: True, 0, 40)
    # A cutoff midway in a clear gap (far beyond float rounding) after about the 12th best.
    above = next(n for n in range(12, 39) if every[n - 1][0] - every[n][0] > 1e-4)
    cut = float((every[above - 1][0] + every[above][0]) / 2)
    cases = [
        ((), lambda label, i: True, 0, 10, -2.0),
        (("--folder", root / "2024" / "旅行"), lambda label, i: label.startswith("2024/旅行/"), 0, 10, -2.0),
        (("--folder", "2023", "--offset", 3), lambda label, i: label.startswith("2023/"), 3, 4, -2.0),
        (("--type", "jpg"), lambda label, i: label.endswith(".JPG"), 0, 20, -2.0),
        (("--type", "png,jpeg", "--offset", 5), lambda label, i: label.endswith(".png"), 5, 5, -2.0),
        (("--after", "2023-12-01", "--before", "2023-12-10T12:00"),
         lambda label, i: 1_701_388_800 <= mtimes[label] < 1_702_209_600, 0, 30, -2.0),
        (("--offset", 10), lambda label, i: True, 10, 10, -2.0),
        (("--threshold", repr(cut)), lambda label, i: True, 0, 40, cut),
    ]
    for extra, keep, offset, k, threshold in cases:
        got = search("-k", k, *extra)
        want, npass = _brute_force_pages(index, query, keep, offset, k, threshold)
        assert len(got) == len(want), (extra, got, want)
        for g, (score, label) in zip(got, want):
            assert keep(g["label"], None), (extra, g)
            assert abs(g["score"] - score) < 1e-5, (extra, g, score)
        assert [g["rank"] for g in got] == list(range(offset + 1, offset + 1 + len(got)))
        if threshold > -2:
            assert len(got) == above  # the cutoff bites
        else:
            assert len(got) == min(k, max(npass - offset, 0))
    # The binding's date filter, from datetimes, finds the same rows as the command's.
    from datetime import datetime, timezone
    with jaclip.Index.load(index) as ix:
        got = ix.search(query[None, :], 30, after=datetime(2023, 12, 1, tzinfo=timezone.utc),
                        before=datetime(2023, 12, 10, 12, tzinfo=timezone.utc))[0][0]
        py_labels = sorted(ix.label(int(i)) for i in got)
    assert py_labels == sorted(g["label"] for g in search("-k", 30, "--after", "2023-12-01", "--before", "2023-12-10T12:00"))
    assert len(py_labels) == 9  # files 17..25: modified 2023-12-01 and later, before 12-10 12:00
    r = subprocess.run([CLI, "search", "--model", TINY_MODEL, "--index", str(index), "犬", "--threshold", "1.5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--threshold" in r.stderr
    r = subprocess.run([CLI, "search", "--model", TINY_MODEL, "--index", str(index), "犬", "--after", "yesterday"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a date" in r.stderr


def test_python_search_filters_against_numpy():
    rng = np.random.default_rng(9)
    rows = rng.standard_normal((300, 16)).astype(np.float32)
    labels = [f"{'a' if i % 3 else 'b'}/{i % 7}/x{i}.{'jpg' if i % 2 else 'PNG'}" for i in range(300)]
    q = rng.standard_normal((2, 16)).astype(np.float32)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    scores = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float64) @ unit.T.astype(np.float64)
    with jaclip.Index(16) as ix:
        ix.add(rows, labels)
        for kw, keep in (({"folder": "a/3"}, lambda s: s.startswith("a/3/")),
                         ({"types": ["png"], "offset": 4}, lambda s: s.endswith(".PNG")),
                         ({"folder": "b/", "types": "jpg", "offset": 2}, lambda s: s.startswith("b/") and s.endswith(".jpg"))):
            idx, val = ix.search(q, 8, **kw)
            passing = [i for i in range(300) if keep(labels[i])]
            off = kw.get("offset", 0)
            assert idx.shape == (2, min(8, len(passing) - off))
            for qi in range(2):
                want = sorted((scores[qi, i] for i in passing), reverse=True)[off:off + 8]
                assert all(keep(labels[i]) for i in idx[qi])
                np.testing.assert_allclose(val[qi], want, atol=1e-5)
        idx, val = ix.search(q, 300, threshold=0.3)
        for qi in range(2):
            n = int((scores[qi] >= 0.3 + 1e-5).sum())
            assert (idx[qi][:n] >= 0).all() and (idx[qi][int((scores[qi] >= 0.3 - 1e-5).sum()):] == -1).all()
        hits = ix._hits(q[:1], 300, threshold=0.3)
        assert all(h.score >= 0.3 - 1e-5 for h in hits) and len(hits) < 300
        # rows added in memory have no stamp: no date range lets them through
        idx, _ = ix.search(q, 5, after=0)
        assert idx.shape == (2, 0)
        try:
            ix.search(q, 5, threshold=float("nan"))
            raise AssertionError("NaN threshold accepted")
        except jaclip.InvalidArgumentError:
            pass


def test_python_sync_index_follows_the_recorded_orientation(tmp_path):
    photos = tmp_path / "phone"
    write_phone_photo(photos / "a.jpg", 6)
    index = tmp_path / "o.jci"
    run("index", "build", "--model", TINY_MODEL, photos, "-o", index, "--exif-transpose", check=0)
    write_phone_photo(photos / "b.jpg", 7)
    with jaclip.Model(TINY_MODEL) as model:
        assert jaclip.sync_index(photos, index, model)["added"] == 1
    np.testing.assert_allclose(rows_of(index)[str((photos / "b.jpg").resolve())],
                               embed_file(photos / "b.jpg", tmp_path, "--exif-transpose"), atol=1e-5, rtol=0)


def test_python_search_image_follows_the_index_orientation(tmp_path):
    photos = tmp_path / "phone"
    write_phone_photo(photos / "a.jpg", 8)
    for exif in (True, False):
        index = tmp_path / f"p{exif}.jci"
        run("index", "build", "--model", TINY_MODEL, photos, "-o", index, *(["--exif-transpose"] if exif else []),
            check=0)
        with jaclip.Index.load(index) as ix, jaclip.Model(TINY_MODEL) as model:
            for query in (photos / "a.jpg", (photos / "a.jpg").read_bytes()):
                assert abs(ix.search_image(model, query, k=1)[0].score - 1.0) < 1e-4
