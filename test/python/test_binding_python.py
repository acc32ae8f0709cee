"""The Python binding (bindings/python): every call, every error path, ownership, threads, the
numpy-free fallback, the version check, offline installation, and a flat RSS over 2000 calls."""
import gc
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import LIBRARY, PROJECT_DATA, PYTHON, ROOT, TINY_MODEL, TINY_MODEL_BF16, assert_features_close

os.environ.setdefault("JACLIP_LIBRARY", LIBRARY)
BINDING = os.path.join(ROOT, "bindings", "python")
sys.path.insert(0, BINDING)
import jaclip  # noqa: E402

DOG = os.path.join(PROJECT_DATA, "dog.jpeg")
SPIECE = os.path.join(PROJECT_DATA, "rinna-japanese-spiece.model")
BAD_MODELS = os.environ.get("JACLIP_BAD_MODELS", os.path.join(ROOT, "build", "models", "bad"))


@pytest.fixture(scope="module")
def model():
    with jaclip.Model(TINY_MODEL) as m:
        yield m


@pytest.fixture(scope="module")
def dog_bytes():
    with open(DOG, "rb") as f:
        return f.read()


def png_bytes(tmp_path, size=(40, 30), colour=(10, 200, 30)):
    from PIL import Image as PILImage
    path = tmp_path / "x.png"
    PILImage.new("RGB", size, colour).save(path)
    return path.read_bytes()


def run_python(code, **env):
    full = dict(os.environ, PYTHONPATH=BINDING, **env)
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=full, timeout=120)


# ---- library, versions, errors ---------------------------------------------------------------------

def test_loads_the_library_named_by_jaclip_library():
    assert os.path.samefile(jaclip.library_path(), os.environ["JACLIP_LIBRARY"])


def test_version_matches_the_package():
    assert jaclip.version_number() == jaclip.EXPECTED_VERSION_NUMBER == 100
    assert jaclip.version_string() == jaclip.__version__ == "0.1.0"


@pytest.mark.parametrize("found", [100, 101, 199])
def test_check_version_accepts_compatible_libraries(found):
    jaclip.check_version(found, 100)
    jaclip.check_version(found + 10000, 10000 + found)


@pytest.mark.parametrize("found,expected", [(99, 100), (200, 100), (10100, 100), (10000, 20000), (10099, 10100)])
def test_check_version_refuses_others(found, expected):
    with pytest.raises(jaclip.VersionError, match="needs libjaclip"):
        jaclip.check_version(found, expected)


def test_import_refuses_a_library_of_another_version():
    # The loaded library answers 0.2.0 through a patched CDLL: import must fail, naming both versions.
    code = """
import ctypes
class Fake(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "jaclip_version_number":
            def fake():
                return 200
            return fake
        return super().__getattr__(name)
ctypes.CDLL = Fake
try:
    import jaclip
except ImportError as e:
    print(type(e).__name__, e)
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("VersionError") and "0.2.0" in out.stdout and "0.1.0" in out.stdout


def test_missing_library_is_an_import_error_naming_the_path(tmp_path):
    out = run_python("import jaclip", JACLIP_LIBRARY=str(tmp_path / "libjaclip.so.1"))
    assert out.returncode != 0
    assert "ImportError" in out.stderr and str(tmp_path) in out.stderr


def test_status_string_and_error_classes():
    assert "JACLIP_ERROR_IO" in jaclip.status_string(3)
    assert "UNKNOWN" in jaclip.status_string(999)
    for status, cls in [(1, jaclip.InvalidArgumentError), (2, jaclip.OutOfMemoryError), (3, jaclip.InputOutputError),
                        (4, jaclip.ModelFormatError), (5, jaclip.DeviceUnavailableError), (6, jaclip.ShapeError),
                        (7, jaclip.ImageDecodeError), (8, jaclip.ImageTooLargeError), (9, jaclip.InvalidUTF8Error),
                        (10, jaclip.TokenizerError), (11, jaclip.BackendError), (12, jaclip.IndexFormatError),
                        (13, jaclip.NotFoundError), (14, jaclip.InternalError),
                        (15, jaclip.ModelMismatchError)]:
        assert cls.status == status and issubclass(cls, jaclip.Error)


# ---- model loading -------------------------------------------------------------------------------------

def test_model_properties(model):
    assert (model.embedding_dim, model.image_size, model.max_text_length) == (32, 224, 77)
    assert model.device == "cpu" and model.precision == "fp32"
    assert model.image_mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert model.image_std == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    assert "dim=32" in repr(model)


def test_precision_option():
    # By default a bf16 file runs bf16 only where bf16 is native (test_precision.py checks which).
    with jaclip.Model(TINY_MODEL_BF16) as m:
        assert m.precision in ("bf16", "fp32") and m.precision_reason.startswith(m.precision + ": ")
    with jaclip.Model(TINY_MODEL_BF16, precision="bf16") as m:
        assert m.precision == "bf16"
    with jaclip.Model(TINY_MODEL_BF16, precision="fp32", num_threads=1) as m:
        assert m.precision == "fp32"
    with jaclip.Model(TINY_MODEL, precision="bf16") as m:
        assert m.precision == "bf16"


def test_model_from_bytes_equals_model_from_file(model):
    with open(TINY_MODEL, "rb") as f:
        data = f.read()
    with jaclip.Model.from_bytes(data) as m:
        assert np.array_equal(m.encode_texts(["犬"]), model.encode_texts(["犬"]))
    with pytest.raises(jaclip.ModelFormatError):
        jaclip.Model.from_bytes(b"not a model")


def test_model_load_errors(tmp_path):
    with pytest.raises(jaclip.InputOutputError) as e:
        jaclip.Model(tmp_path / "missing.jaclip")
    assert e.value.status == 3 and "missing.jaclip" in e.value.message
    with pytest.raises(jaclip.ModelFormatError):
        jaclip.Model(os.path.join(BAD_MODELS, "not-a-model.jaclip"))
    with pytest.raises(jaclip.ModelFormatError):
        jaclip.Model(os.path.join(BAD_MODELS, "wrong-version.jaclip"))
    with pytest.raises(jaclip.InvalidArgumentError, match="tpu"):
        jaclip.Model(TINY_MODEL, device="tpu")
    with pytest.raises(jaclip.InvalidArgumentError):
        jaclip.Model(TINY_MODEL, num_threads=-1)
    with pytest.raises(jaclip.InvalidArgumentError, match="fp16"):
        jaclip.Model(TINY_MODEL, precision="fp16")


def test_cuda_without_a_gpu_is_device_unavailable():
    try:
        with jaclip.Model(TINY_MODEL, device="cuda") as m:
            assert m.device.startswith("cuda")  # a CUDA libtorch with a GPU
    except jaclip.DeviceUnavailableError as e:
        assert e.status == 5 and "cuda" in e.message


# ---- images ----------------------------------------------------------------------------------------

def test_encode_images_from_paths_bytes_images_and_pixels_agree(model, dog_bytes, tmp_path):
    png = png_bytes(tmp_path)
    by_path = model.encode_images([DOG, tmp_path / "x.png"])
    assert by_path.shape == (2, 32) and by_path.dtype == np.float32
    assert np.array_equal(model.encode_images([dog_bytes, png]), by_path)
    with jaclip.Image(DOG) as img:
        assert np.array_equal(model.encode_images([img, png]), by_path)
    pixels = model.preprocess([DOG, png])
    assert pixels.shape == (2, 3, 224, 224) and pixels.dtype == np.float32
    assert np.array_equal(model.encode_image_pixels(pixels), by_path)


def test_exif_transpose_and_pixel_limit_options(dog_bytes):
    with jaclip.Model(TINY_MODEL, max_image_pixels=100) as m:
        with pytest.raises(jaclip.ImageTooLargeError):
            m.encode_images([DOG])
        with pytest.raises(jaclip.ImageTooLargeError):
            m.preprocess([dog_bytes])
    with jaclip.Model(TINY_MODEL, exif_transpose=True) as m:
        assert m.encode_images([DOG]).shape == (1, 32)


def test_image_class(dog_bytes, model):
    with jaclip.Image(DOG) as a, jaclip.Image.from_bytes(dog_bytes) as b:
        assert (a.width, a.height, a.mode) == (b.width, b.height, b.mode)
        assert a.mode == "RGB" and a.width > 0 and a.height > 0
        crop = a.resize_crop(224)
        assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
        assert np.array_equal(crop, b.resize_crop(224))
        # The model's preprocessing is resize_crop then (x / 255 - mean) / std.
        pre = jaclip.preprocess_images([a], 224, model.image_mean, model.image_std)
        mean = np.array(model.image_mean, np.float32)[:, None, None]
        std = np.array(model.image_std, np.float32)[:, None, None]
        ref = (crop.transpose(2, 0, 1).astype(np.float32) / np.float32(255) - mean) / std
        assert np.abs(pre[0] - ref).max() < 1e-5
        assert np.array_equal(pre, model.preprocess([a]))


def test_image_from_pixels():
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 255
    with jaclip.Image.from_pixels(rgb) as img:
        assert (img.width, img.height, img.mode) == (30, 20, "RGB")
        assert np.all(img.resize_crop(8)[..., 0] == 255) and np.all(img.resize_crop(8)[..., 1] == 0)
    with jaclip.Image.from_pixels(bytes(2 * 3 * 4), width=3, height=2, format="RGBA") as img:
        assert img.mode == "RGBA"
    with jaclip.Image.from_pixels(np.zeros((5, 6), np.uint8)) as img:
        assert img.mode == "L"
    with pytest.raises(jaclip.ShapeError):
        jaclip.Image.from_pixels(np.zeros((5, 6), np.float32))
    with pytest.raises(jaclip.InvalidArgumentError):
        jaclip.Image.from_pixels(b"", width=0, height=0, format="RGB")
    with pytest.raises(jaclip.InvalidArgumentError):
        jaclip.Image.from_pixels(bytes(12), width=2, height=2, format="CMYK")


def test_image_errors(model, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(jaclip.InputOutputError) as e:
        model.encode_images([tmp_path / "missing.jpg"])
    assert "missing.jpg" in e.value.message
    with pytest.raises(jaclip.ImageDecodeError) as e:
        model.encode_images([bad])
    assert "bad.png" in e.value.message
    with pytest.raises(jaclip.ImageDecodeError):
        model.encode_images([b"not an image"])
    with pytest.raises(jaclip.ImageDecodeError):
        jaclip.Image.from_bytes(b"\xff\xd8\xff")
    with pytest.raises(jaclip.InputOutputError):
        jaclip.Image(tmp_path / "missing.png")
    with pytest.raises(jaclip.InvalidArgumentError):
        model.preprocess([])
    with pytest.raises(TypeError):
        model.encode_images(DOG)  # a single path, not a list
    with pytest.raises(TypeError):
        model.encode_images([3.5])


def test_pixel_values_wrong_shapes_and_dtypes(model):
    with pytest.raises(jaclip.ShapeError):
        model.encode_image_pixels(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(jaclip.ShapeError):
        model.encode_image_pixels(np.zeros((3, 224, 224), np.float32))
    with pytest.raises(jaclip.ShapeError, match="float64"):
        model.encode_image_pixels(np.zeros((1, 3, 224, 224)))
    with pytest.raises(jaclip.ShapeError):
        model.encode_image_pixels(np.zeros((1, 3, 224, 224), np.int64))
    with pytest.raises(jaclip.ShapeError, match="ragged"):
        model.encode_image_pixels([[1.0, 2.0], [3.0]])
    with pytest.raises(TypeError):
        model.encode_image_pixels("pixels")


# ---- texts and tokenizer ---------------------------------------------------------------------------

def test_encode_texts_and_token_ids_agree(model):
    texts = ["犬", "猫が座っている", ""]
    features = model.encode_texts(texts)
    assert features.shape == (3, 32) and features.dtype == np.float32
    assert np.array_equal(model.encode_texts([t.encode() for t in texts]), features)
    ids, mask = model.tokenizer.encode(texts)
    assert np.array_equal(model.encode_token_ids(ids, mask), features)
    assert np.array_equal(model.encode_token_ids(ids.tolist(), mask.tolist()), features)


def test_token_id_errors(model):
    ids, mask = model.tokenizer.encode(["犬"])
    with pytest.raises(jaclip.ShapeError):
        model.encode_token_ids(ids, mask[:, :10])
    with pytest.raises(jaclip.ShapeError):
        model.encode_token_ids(ids.astype(np.float32), mask)
    with pytest.raises(jaclip.ShapeError):
        model.encode_token_ids(ids.astype(np.int32), mask)
    with pytest.raises(jaclip.InvalidArgumentError):
        model.encode_token_ids(np.full_like(ids, 40000), mask)
    with pytest.raises(TypeError):
        model.encode_token_ids([[4.0, 9.0]], [[1, 1]])


def test_invalid_utf8_is_refused_with_the_offset(model):
    with pytest.raises(jaclip.InvalidUTF8Error) as e:
        model.encode_texts(["ok", b"ab\xff"])
    assert e.value.status == 9 and "offset 2" in e.value.message
    with pytest.raises(jaclip.InvalidUTF8Error):
        model.encode_texts(["lone \ud800 surrogate"])
    with pytest.raises(jaclip.InvalidUTF8Error):
        model.tokenizer.tokenize(b"\xc3")
    with pytest.raises(jaclip.InvalidUTF8Error):
        model.tokenizer.encode([b"\xe3\x81"])
    with pytest.raises(TypeError):
        model.encode_texts("犬")  # a single text, not a list


def test_tokenizer_known_vectors(model):
    # Known vectors of the reference tokenizer (shared/spec/reference-behaviour.md).
    with open(SPIECE, "rb") as f:
        data = f.read()
    with jaclip.Tokenizer(SPIECE) as standalone, jaclip.Tokenizer.from_bytes(data) as in_memory:
        for tok in (model.tokenizer, standalone, in_memory):
            assert tok.vocab_size == 32000
            ids, mask = tok.encode(["犬", "犬が座っている"])
            assert ids.shape == mask.shape == (2, 77) and ids.dtype == np.int64
            assert ids[0, :4].tolist() == [4, 9, 1651, 3] and mask[0, :4].tolist() == [1, 1, 1, 0]
            assert ids[1, :7].tolist() == [4, 9, 1651, 12, 578, 587, 3] and int(mask[1].sum()) == 6
            short, short_mask = tok.encode(["吾輩は猫である"], max_length=4)
            assert short.shape == (1, 4) and short_mask.tolist() == [[1, 1, 1, 1]]
            assert tok.tokenize("犬が座っている").tolist() == [9, 1651, 12, 578, 587]
            assert tok.id_to_piece(1651) == "犬" and tok.id_to_piece(9) == "▁"
            assert tok.pieces("犬") == ["▁", "犬"]


def test_tokenizer_errors(model, tmp_path):
    tok = model.tokenizer
    with pytest.raises(jaclip.NotFoundError):
        tok.id_to_piece(32000)
    with pytest.raises(jaclip.NotFoundError):
        tok.id_to_piece(-1)
    with pytest.raises(jaclip.InvalidArgumentError):
        tok.encode(["犬"], max_length=1)
    with pytest.raises(jaclip.InputOutputError):
        jaclip.Tokenizer(tmp_path / "missing.model")
    with pytest.raises(jaclip.TokenizerError):
        jaclip.Tokenizer.from_bytes(b"not a sentencepiece model")


# ---- similarity ------------------------------------------------------------------------------------

def test_similarity_functions_against_reference_math():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 8)).astype(np.float32)
    b = rng.standard_normal((4, 8)).astype(np.float32)
    b[2] = 0
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = np.divide(b, np.linalg.norm(b, axis=1, keepdims=True), out=np.zeros_like(b),
                   where=np.linalg.norm(b, axis=1, keepdims=True) > 0)
    assert np.allclose(jaclip.normalize(b), bn, atol=1e-6)
    assert np.allclose(jaclip.similarity(a, b), an @ bn.T, atol=1e-6)
    assert np.allclose(jaclip.similarity(a, b, kind="dot", scale=2.0), 2 * a @ b.T, atol=1e-5)
    logits = 10 * an @ bn.T
    ref = np.exp(logits - logits.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    assert np.allclose(jaclip.softmax(logits.astype(np.float32)), ref, atol=1e-6)
    probs = jaclip.probabilities(a, b, scale=10.0)
    assert np.allclose(probs, ref, atol=1e-6) and np.allclose(probs.sum(1), 1, atol=1e-6)
    assert np.array_equal(jaclip.probabilities(a, b, scale=10.0), jaclip.softmax(jaclip.similarity(a, b, scale=10.0)))
    # Lists work too and give the same numbers.
    assert np.array_equal(jaclip.similarity(a.tolist(), b.tolist()), jaclip.similarity(a, b))


def test_topk_orders_best_first_with_ties_to_the_lower_index():
    idx, val = jaclip.topk(np.array([[0.1, 0.5, 0.5, 0.2], [3, 2, 1, 0]], np.float32), 3)
    assert idx.tolist() == [[1, 2, 3], [0, 1, 2]] and idx.dtype == np.int64
    assert np.allclose(val, [[0.5, 0.5, 0.2], [3, 2, 1]]) and val.dtype == np.float32
    idx, _ = jaclip.topk([[1.0, 2.0]], 10)
    assert idx.tolist() == [[1, 0]]


def test_similarity_errors():
    a = np.ones((2, 4), np.float32)
    with pytest.raises(jaclip.ShapeError):
        jaclip.similarity(a, np.ones((2, 5), np.float32))
    with pytest.raises(jaclip.ShapeError):
        jaclip.softmax(np.ones(4, np.float32))
    with pytest.raises(jaclip.InvalidArgumentError, match="kind"):
        jaclip.similarity(a, a, kind="euclid")
    with pytest.raises(jaclip.InvalidArgumentError):
        jaclip.similarity(a, a, scale=float("nan"))
    with pytest.raises(jaclip.InvalidArgumentError):
        jaclip.topk(a, 0)
    with pytest.raises(jaclip.ShapeError):
        jaclip.normalize(np.ones((2, 2), np.int64))


# ---- zero-shot -------------------------------------------------------------------------------------

def test_encode_labels_is_the_reference_template_average(model):
    labels, templates = ["犬", "猫", "象"], ["{}の写真", "{}", "これは{}です"]
    got = model.encode_labels(labels, templates)
    feats = model.encode_texts([t.replace("{}", label) for label in labels for t in templates])
    feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    ref = feats.reshape(3, 3, -1).mean(1)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert got.shape == (3, 32) and np.abs(got - ref).max() < 1e-6
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)
    assert np.abs(model.encode_labels(labels, "{}の写真") - jaclip.normalize(
        model.encode_texts([f"{x}の写真" for x in labels]))).max() < 1e-6


def test_classify(model, dog_bytes):
    labels = ["犬", "猫", "象", "車"]
    ranked = model.classify(DOG, labels, template="{}の写真")
    assert sorted(p.label for p in ranked) == sorted(labels)
    probs = [p.probability for p in ranked]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-5
    ref = jaclip.probabilities(model.encode_images([DOG]), model.encode_labels(labels, "{}の写真"), scale=100.0)[0]
    assert {p.label: p.probability for p in ranked} == {label: float(ref[i]) for i, label in enumerate(labels)}
    assert model.classify(dog_bytes, labels, template="{}の写真") == ranked
    flat = model.classify(DOG, labels, template="{}の写真", scale=1.0)
    assert max(p.probability for p in flat) < max(probs)  # a smaller scale spreads the probabilities
    with pytest.raises(jaclip.InvalidArgumentError):
        model.classify(DOG, labels, template="no placeholder")
    with pytest.raises(jaclip.InvalidArgumentError):
        model.classify(DOG, [])


def test_classify_positional_options_still_work_deprecated(model):
    """The options by keyword is the one form of Python and Ruby (docs/python.md); the positional form
    of earlier releases gives the same answer with a DeprecationWarning."""
    labels = ["犬", "猫", "象"]
    want = model.classify(DOG, labels, template="{}の写真", scale=10.0)
    with pytest.warns(DeprecationWarning, match="by keyword"):
        assert model.classify(DOG, labels, "{}の写真", 10.0) == want
    with pytest.warns(DeprecationWarning):
        assert model.classify(DOG, labels, "{}の写真", scale=10.0) == want
    with pytest.raises(TypeError), pytest.warns(DeprecationWarning):
        model.classify(DOG, labels, "{}の写真", template="{}")
    with pytest.raises(TypeError):
        model.classify(DOG, labels, "{}", 1.0, 2.0)


# ---- ownership -------------------------------------------------------------------------------------

def test_use_after_close_raises():
    m = jaclip.Model(TINY_MODEL)
    tok = m.tokenizer
    m.close()
    m.close()  # twice is harmless
    assert m.closed and "closed" in repr(m)
    for call in (lambda: m.encode_texts(["犬"]), lambda: m.embedding_dim, lambda: m.encode_images([DOG]),
                 lambda: tok.encode(["犬"]), lambda: tok.vocab_size):
        with pytest.raises(jaclip.ClosedError) as e:
            call()
        assert isinstance(e.value, jaclip.InvalidArgumentError) and "closed" in str(e.value)
    with jaclip.Tokenizer(SPIECE) as t:
        pass
    with pytest.raises(jaclip.ClosedError):
        t.tokenize("犬")
    with jaclip.Image(DOG) as img:
        pass
    with pytest.raises(jaclip.ClosedError):
        img.width
    with pytest.raises(jaclip.ClosedError):
        jaclip.Model(TINY_MODEL).encode_images([img])


def test_handles_are_freed_by_the_garbage_collector():
    m = jaclip.Model(TINY_MODEL)
    finalizer = m._h._finalizer
    assert finalizer.alive
    del m
    gc.collect()
    assert not finalizer.alive


def test_model_shared_between_threads(model):
    texts = [["犬"], ["猫が座っている"], ["象"], ["吾輩は猫である"]]
    expected = [model.encode_texts(t) for t in texts]
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(10):
                results.setdefault(i, []).append(model.encode_texts(texts[i]))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        assert all(np.array_equal(r, expected[i]) for r in results[i])


def test_close_while_another_thread_encodes_is_deferred_not_a_crash():
    m = jaclip.Model(TINY_MODEL)
    done, outcomes = threading.Event(), []

    def work():
        try:
            for _ in range(200):
                m.encode_texts(["犬が座っている"])
            outcomes.append("finished")
        except jaclip.ClosedError:
            outcomes.append("closed")
        done.set()

    t = threading.Thread(target=work)
    t.start()
    m.close()
    t.join(60)
    assert done.is_set() and outcomes in (["finished"], ["closed"])


# ---- without numpy ---------------------------------------------------------------------------------

def test_without_numpy_results_are_tensors(model):
    code = f"""
import sys
sys.modules["numpy"] = None  # import numpy now fails
import jaclip
m = jaclip.Model({TINY_MODEL!r})
t = m.encode_texts(["犬", "猫"])
assert isinstance(t, jaclip.Tensor) and t.shape == (2, 32) and t.dtype == "float32" and len(t) == 2
rows = t.tolist()
assert len(rows) == 2 and len(rows[0]) == 32 and isinstance(rows[0][0], float)
assert t[1].tolist() == rows[1] and [r.tolist() for r in t] == rows
ids, mask = m.tokenizer.encode(["犬"], max_length=5)
assert ids.tolist() == [[4, 9, 1651, 3, 3]] and ids.dtype == "int64"
assert m.encode_token_ids(ids, mask).tobytes() == m.encode_texts(["犬"]).tobytes()
p = jaclip.probabilities(t, t)
assert abs(sum(p.tolist()[0]) - 1) < 1e-6
ranked = m.classify({DOG!r}, ["犬", "猫", "象"], template=["{{}}の写真", "{{}}"])
assert abs(sum(r.probability for r in ranked) - 1) < 1e-5
assert m.preprocess([{DOG!r}]).shape == (1, 3, 224, 224)
print(t.tobytes().hex())
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    # Another process, perhaps another OpenBLAS pool than this one's: close, not equal.
    theirs = np.frombuffer(bytes.fromhex(out.stdout.strip()), dtype=np.float32).reshape(2, 32)
    assert_features_close(theirs, np.asarray(model.encode_texts(["犬", "猫"])))


def test_tensor_class_checks_its_size():
    t = jaclip.Tensor(bytes(24), "float32", (2, 3))
    assert t.tolist() == [[0.0] * 3] * 2 and t.nbytes == 24 and t.ndim == 2
    with pytest.raises(ValueError):
        jaclip.Tensor(bytes(20), "float32", (2, 3))
    with pytest.raises(ValueError):
        jaclip.Tensor(b"", "float64", (0,))
    assert np.array_equal(jaclip.normalize(jaclip.Tensor(np.ones((1, 4), np.float32).tobytes(), "float32", (1, 4))),
                          np.full((1, 4), 0.5, np.float32))


# ---- installation ----------------------------------------------------------------------------------

def test_installs_offline_with_pip(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(BINDING, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    out = subprocess.run([PYTHON, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
                          "--target", str(target), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([PYTHON, "-c", "import jaclip; print(jaclip.__file__); print(jaclip.version_string())"],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(target)), timeout=60)
    assert out.returncode == 0, out.stderr
    where, version = out.stdout.split()
    assert where.startswith(str(target)) and version == "0.1.0"


# ---- memory ----------------------------------------------------------------------------------------

def rss_pages():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1])


def test_2000_calls_keep_rss_flat(model):
    def one(i):
        model.encode_texts(["犬が座っている", "猫"])
        if i % 10 == 0:  # the error path must not leak either
            with pytest.raises(jaclip.InvalidUTF8Error):
                model.encode_texts([b"\xff"])

    for i in range(200):
        one(i)
    gc.collect()
    before = rss_pages()
    for i in range(2000):
        one(i)
    gc.collect()
    after = rss_pages()
    page = os.sysconf("SC_PAGE_SIZE")
    print(f"RSS after warm-up {before * page / 2**20:.1f} MiB, after 2000 calls {after * page / 2**20:.1f} MiB")
    assert after <= before * 1.10
