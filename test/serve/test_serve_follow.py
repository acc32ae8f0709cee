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


@pytest.mark.parametrize("name", ["tiny.jaclip", "tiny-int8.jaclip", "tiny-bf16.jaclip"])
def test_info_says_the_precision_that_runs_and_why(name):
    path = os.path.join(os.path.dirname(TINY_MODEL), name)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built (make test-models)")
    # `jaclip info --json` is the reference: the same library calls, another program.
    ref = json.loads(subprocess.run([CLI, "info", path, "--json"], capture_output=True, text=True, timeout=120,
                                    check=True).stdout)
    s = Server("--model", path, address_space=AS)
    try:
        m = s.json("GET", "/v1/info")["model"]
        assert m["precision"] == ref["precision"]
        assert m["precision_reason"] == ref["precision_reason"] and m["precision_reason"]
        assert m["fingerprint"] == ref["fingerprint"]
        if name == "tiny-int8.jaclip":
            assert m["precision"] == "int8"  # the old answer was "fp32"
    finally:
        assert s.stop() == 0
