"""Features from the C library equal an eager PyTorch forward of the same checkpoint.

The tiny checkpoint goes through the real converter (make test-models); the reference forward is
written from the Hugging Face key names (reference_cloob.py). Features are of magnitude ~1; the
tolerance, 1e-5 max abs difference, is tight enough that a tanh-approximated GELU fails it, and
test_planted_tanh_gelu_is_caught proves that on every run.
"""
import functools
import os
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import PROJECT_DATA, PYTHON, ROOT, TINY_CHECKPOINT, TINY_MODEL_BF16, cosine_rows
from reference_cloob import ReferenceCloob

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def reference():
    torch.set_num_threads(os.cpu_count())
    return ReferenceCloob(TINY_CHECKPOINT)


def pixel_batch(n, seed=0):
    return torch.randn(n, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


def token_batch(lengths, total=77, seed=1):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), total), 3, dtype=torch.int64)
    mask = torch.zeros((len(lengths), total), dtype=torch.int64)
    for row, n in enumerate(lengths):
        ids[row, 0] = 4
        ids[row, 1:1 + n] = torch.randint(5, 32000, (n,), generator=gen)
        mask[row, :1 + n] = 1
    return ids, mask


def test_image_features_match_reference(lib, tiny_model, reference):
    pixels = pixel_batch(3)
    ours = lib.encode_pixels(tiny_model, pixels.numpy())
    ref = reference.image_features(pixels).numpy()
    assert ours.shape == ref.shape == (3, 32)
    assert 0.3 < np.abs(ref).max() < 10, "features should be of magnitude about 1"
    assert np.abs(ours - ref).max() <= TOLERANCE


def test_text_features_match_reference_padded_to_77(lib, tiny_model, reference):
    ids, mask = token_batch([1, 5, 30, 76, 0])
    ours = lib.encode_ids(tiny_model, ids.numpy(), mask.numpy())
    ref = reference.text_features(ids, mask).numpy()
    assert 0.3 < np.abs(ref).max() < 10
    assert np.abs(ours - ref).max() <= TOLERANCE


def test_text_features_from_strings_match_reference(lib, tiny_model, reference):
    texts = ["犬", "猫", "象", "犬が座っている", "吾輩は猫である。名前はまだ無い。", ""]
    ids, mask = lib.tokenize(tiny_model, texts)
    ours = lib.encode_texts(tiny_model, texts)
    ref = reference.text_features(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    assert np.abs(ours - ref).max() <= TOLERANCE


def test_batch_rows_are_independent(lib, tiny_model):
    pixels = pixel_batch(4, seed=5).numpy()
    batch = lib.encode_pixels(tiny_model, pixels)
    single = np.concatenate([lib.encode_pixels(tiny_model, pixels[i:i + 1]) for i in range(4)])
    assert np.abs(batch - single).max() <= TOLERANCE


def test_bf16_model_is_close_to_fp32_reference(lib, reference):
    model = lib.load_model(TINY_MODEL_BF16, precision=2)  # bf16 asked for: it runs bf16 on any CPU
    try:
        pixels = pixel_batch(2, seed=3)
        ours = lib.encode_pixels(model, pixels.numpy())
        ids, mask = token_batch([3, 12], seed=4)
        ours_text = lib.encode_ids(model, ids.numpy(), mask.numpy())
    finally:
        lib.c.jaclip_model_free(model)
    ref = reference.image_features(pixels).numpy()
    ref_text = reference.text_features(ids, mask).numpy()
    assert cosine_rows(ours, ref).min() >= 0.99
    assert cosine_rows(ours_text, ref_text).min() >= 0.99
    assert np.abs(ours - ref).max() > TOLERANCE, "bf16 should not be bit-identical to fp32"


def test_planted_tanh_gelu_is_caught(lib, tmp_path, reference):
    """A converter whose MLP used tanh-approximated GELU must fail the 1e-5 parity check."""
    # TorchScript compiles from source, so the planted forward lives in a file of its own.
    planted = tmp_path / "plant_tanh_gelu.py"
    planted.write_text(
        "import runpy, sys\n"
        "import torch.nn.functional as F\n"
        "from torch import Tensor\n"
        f"sys.path.insert(0, {os.path.join(ROOT, 'tools')!r})\n"
        "import jaclip_convert.cloob as cloob\n"
        "def forward(self, x: Tensor) -> Tensor:\n"
        "    return self.down(F.gelu(self.up(x), approximate='tanh'))\n"
        "cloob.Mlp.forward = forward\n"
        "sys.argv = ['jaclip-convert'] + sys.argv[1:]\n"
        f"runpy.run_path({os.path.join(ROOT, 'tools', 'jaclip-convert')!r}, run_name='__main__')\n")
    out = tmp_path / "tanh.jaclip"
    subprocess.run([PYTHON, str(planted), TINY_CHECKPOINT, str(out), "--tokenizer",
                    os.path.join(PROJECT_DATA, "rinna-japanese-spiece.model")], check=True, capture_output=True)
    model = lib.load_model(str(out))
    try:
        pixels = pixel_batch(2, seed=7)
        ours = lib.encode_pixels(model, pixels.numpy())
        ids, mask = token_batch([10, 40], seed=8)
        ours_text = lib.encode_ids(model, ids.numpy(), mask.numpy())
    finally:
        lib.c.jaclip_model_free(model)
    image_diff = np.abs(ours - reference.image_features(pixels).numpy()).max()
    text_diff = np.abs(ours_text - reference.text_features(ids, mask).numpy()).max()
    assert image_diff > TOLERANCE and text_diff > TOLERANCE, (image_diff, text_diff)
    # ... and the reference with the same planted bug agrees, so the difference is the GELU alone.
    tanh_ref = ReferenceCloob(TINY_CHECKPOINT, gelu=functools.partial(F.gelu, approximate="tanh"))
    assert np.abs(ours - tanh_ref.image_features(pixels).numpy()).max() <= TOLERANCE
