"""Issue 25, the index side: what an index knows survives `jaclip index merge` (fingerprint, stamps),
so a merged index syncs with nothing re-embedded; shards of two models are refused. Generated folders
and the tiny model; every expected count comes from the folder the test wrote."""
import os
import subprocess
import sys

import numpy as np
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
