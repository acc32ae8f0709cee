"""tools/jaclip-convert and tools/jaclip-make-test-model: checks, error messages, both weight formats."""
import json
import os
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
import torch

from conftest import PROJECT_DATA, PYTHON, ROOT, TINY_CHECKPOINT

CONVERT = os.path.join(ROOT, "tools", "jaclip-convert")
MAKE_MODEL = os.path.join(ROOT, "tools", "jaclip-make-test-model")
TOKENIZER = os.path.join(PROJECT_DATA, "rinna-japanese-spiece.model")


def convert(src, out, *extra):
    return subprocess.run([PYTHON, CONVERT, str(src), str(out), *extra], capture_output=True, text=True)


@pytest.fixture
def checkpoint(tmp_path):
    """A writable copy of the tiny checkpoint."""
    dst = tmp_path / "ckpt"
    shutil.copytree(TINY_CHECKPOINT, dst)
    return dst


def edit_state(ckpt, change):
    path = ckpt / "pytorch_model.bin"
    state = torch.load(path)
    change(state)
    torch.save(state, path)


def edit_config(ckpt, change):
    path = ckpt / "config.json"
    cfg = json.loads(path.read_text())
    change(cfg)
    path.write_text(json.dumps(cfg))


def test_missing_key_is_named(checkpoint, tmp_path):
    edit_state(checkpoint, lambda s: s.pop("text_projection.weight"))
    r = convert(checkpoint, tmp_path / "m.jaclip", "--tokenizer", TOKENIZER)
    assert r.returncode == 1
    assert "missing keys: text_projection.weight" in r.stderr
    assert not (tmp_path / "m.jaclip").exists()


def test_unexpected_key_is_named(checkpoint, tmp_path):
    edit_state(checkpoint, lambda s: s.update({"vision_model.pooler.dense.weight": torch.zeros(64, 64)}))
    r = convert(checkpoint, tmp_path / "m.jaclip", "--tokenizer", TOKENIZER)
    assert r.returncode == 1 and "unexpected keys: vision_model.pooler.dense.weight" in r.stderr


def test_wrong_shape_is_named(checkpoint, tmp_path):
    edit_state(checkpoint, lambda s: s.update({"visual_projection.weight": torch.zeros(16, 64)}))
    r = convert(checkpoint, tmp_path / "m.jaclip", "--tokenizer", TOKENIZER)
    assert r.returncode == 1 and "visual_projection.weight: (16, 64)" in r.stderr


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(model_type="siglip"), "model_type is 'siglip'"),
    # A CLIP config needs the CLIP checkpoint's learned logit_scale, which a CLOOB one lacks.
    (lambda c: c.update(model_type="clip"), "missing keys: logit_scale"),
    (lambda c: c["text_config"].update(hidden_act="gelu_new"), "text_config.hidden_act is 'gelu_new'"),
    (lambda c: c["vision_config"].update(hidden_act="quick_gelu"), "vision_config.hidden_act"),
    (lambda c: c["vision_config"].update(model_type="cloob_vision_model"), "expected 'vit'"),
    (lambda c: c["text_config"].update(num_attention_heads=5), "not divisible"),
    (lambda c: c["vision_config"].update(patch_size=15), "not a multiple"),
    (lambda c: c.pop("projection_dim"), "projection_dim is missing"),
    (lambda c: c["text_config"].update(position_embedding_type="relative_key"), "position_embedding_type"),
])
def test_unsupported_configs_are_refused(checkpoint, tmp_path, change, message):
    edit_config(checkpoint, change)
    r = convert(checkpoint, tmp_path / "m.jaclip", "--tokenizer", TOKENIZER)
    assert r.returncode == 1 and message in r.stderr, r.stderr


def test_layer_norm_eps_comes_from_the_config(checkpoint, tmp_path):
    """Hugging Face's ViT default is 1e-12 (timm's is 1e-6); whatever the config says is used."""
    edit_config(checkpoint, lambda c: c["vision_config"].update(layer_norm_eps=1e-6))
    out = tmp_path / "m.jaclip"
    assert convert(checkpoint, out, "--tokenizer", TOKENIZER).returncode == 0
    module = torch.jit.load(str(out))
    assert module.vision.norm.eps == 1e-6 and module.text.norm.eps == 1e-12


def test_missing_tokenizer_is_explained(checkpoint, tmp_path):
    r = convert(checkpoint, tmp_path / "m.jaclip")
    assert r.returncode == 1 and "--tokenizer" in r.stderr


def test_tokenizer_found_in_checkpoint_dir(checkpoint, tmp_path):
    shutil.copy(TOKENIZER, checkpoint / "spiece.model")
    assert convert(checkpoint, tmp_path / "m.jaclip").returncode == 0


def test_missing_weights_and_bad_json(tmp_path):
    (tmp_path / "empty").mkdir()
    r = convert(tmp_path / "empty", tmp_path / "m.jaclip", "--tokenizer", TOKENIZER)
    assert r.returncode == 1 and "config.json" in r.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    r = convert(bad, tmp_path / "m.jaclip", "--tokenizer", TOKENIZER)
    assert r.returncode == 1 and "not valid JSON" in r.stderr


def test_model_file_layout(tmp_path):
    out = tmp_path / "m.jaclip"
    assert convert(TINY_CHECKPOINT, out, "--tokenizer", TOKENIZER).returncode == 0
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        config = next(z.read(n) for n in names if n.endswith("extra/jaclip/config.txt")).decode()
        tok = next(z.read(n) for n in names if n.endswith("extra/jaclip/tokenizer.model"))
    values = dict(line.split("=", 1) for line in config.splitlines())
    assert values["format"] == "jaclip-model" and values["format_version"] == "1"
    assert values["embedding_dim"] == "32" and values["image_size"] == "224"
    assert values["image_mean"] == "0.48145466,0.4578275,0.40821073"
    assert values["image_std"] == "0.26862954,0.26130258,0.27577711"
    assert values["max_text_length"] == "77" and values["cls_id"] == "4" and values["pad_id"] == "3"
    with open(TOKENIZER, "rb") as f:
        assert tok == f.read()


def test_safetensors_checkpoint_gives_the_same_model(lib, tmp_path):
    st_dir = tmp_path / "st"
    r = subprocess.run([PYTHON, MAKE_MODEL, "--size", "tiny", "--format", "safetensors", str(st_dir)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not (st_dir / "pytorch_model.bin").exists()
    assert convert(st_dir, tmp_path / "st.jaclip", "--tokenizer", TOKENIZER).returncode == 0
    assert convert(TINY_CHECKPOINT, tmp_path / "bin.jaclip", "--tokenizer", TOKENIZER).returncode == 0
    pixels = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    features = []
    for name in ("st.jaclip", "bin.jaclip"):
        model = lib.load_model(str(tmp_path / name))
        features.append(lib.encode_pixels(model, pixels))
        lib.c.jaclip_model_free(model)
    assert features[0].tobytes() == features[1].tobytes()


def test_generator_is_seeded_and_reproducible(tmp_path):
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        r = subprocess.run([PYTHON, MAKE_MODEL, "--size", "tiny", "--seed", seed, str(tmp_path / name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    a, b, c = (torch.load(tmp_path / n / "pytorch_model.bin") for n in "abc")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["text_projection.weight"], c["text_projection.weight"])
    assert "text_model.embeddings.position_ids" in a   # the old buffer the converter must ignore
