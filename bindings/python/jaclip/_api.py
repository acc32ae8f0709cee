"""Model, Tokenizer, Image and the similarity functions: thin wrappers, every computation in C."""
import collections
import ctypes
import operator
import os
import warnings

from . import _errors
from ._handle import Handle, Owned
from ._lib import SKIP_CALLBACK, P, check, lib
from ._tensor import FLOAT32, INT64, CTensors, call, np, take

_KINDS = {"cosine": 0, "dot": 1}
_PRECISIONS = {None: 0, "default": 0, "fp32": 1, "bf16": 2, "int8": 3, "auto": 4, "int8-weights": 5}
_PRECISION_NAMES = {1: "fp32", 2: "bf16", 3: "int8", 5: "int8-weights"}
_PIXEL_FORMATS = {"L": 1, "RGB": 2, "RGBA": 3, "LA": 4}
_PIXEL_FORMAT_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_PIXEL_BYTES = {1: 1, 2: 3, 3: 4, 4: 2}  # jaclip_pixel_format -> bytes per pixel
EXIF_TRANSPOSE = 1

Prediction = collections.namedtuple("Prediction", "label probability")
# Model.encode_images(..., errors="skip"): the rows of the images that could be read, their input
# indices, and (index, exception) for each left out.
SkippedImages = collections.namedtuple("SkippedImages", "features kept skipped")


def _kind(kind):
    try:
        return _KINDS[kind]
    except KeyError:
        raise _errors.InvalidArgumentError(f"unknown similarity kind {kind!r} (use 'cosine' or 'dot')", 1) from None


def _text_bytes(text):
    # surrogatepass: a lone surrogate reaches the C API, which refuses it as invalid UTF-8.
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"a text must be str or bytes, not {type(text).__name__}")


def _text_arrays(texts):
    if isinstance(texts, (str, bytes)):
        raise TypeError("expected a list of texts, not a single text")
    raw = [_text_bytes(t) for t in texts]
    n = len(raw)
    return (ctypes.c_char_p * max(n, 1))(*raw), (ctypes.c_size_t * max(n, 1))(*map(len, raw)), n


def _is_path(x):
    return isinstance(x, (str, os.PathLike))


def _is_buffer(x):
    return isinstance(x, (bytes, bytearray, memoryview))


# ---- similarity -------------------------------------------------------------------------------------

def similarity(a, b, kind="cosine", scale=1.0):
    """scale * sim(a[i], b[j]) as float32 [Na, Nb]; kind "cosine" (rows normalised) or "dot"."""
    with CTensors((a, FLOAT32), (b, FLOAT32)) as (ta, tb):
        return call(lib.jaclip_similarity, ta, tb, _kind(kind), scale)


def probabilities(a, b, kind="cosine", scale=100.0):
    """softmax(similarity(a, b, kind, scale)) row by row: each row of a over the rows of b."""
    with CTensors((a, FLOAT32), (b, FLOAT32)) as (ta, tb):
        return call(lib.jaclip_probabilities, ta, tb, _kind(kind), scale)


def softmax(logits):
    """Row-wise, numerically stable softmax of a 2-D float32 array."""
    with CTensors((logits, FLOAT32)) as (t,):
        return call(lib.jaclip_softmax, t)


def normalize(x):
    """Rows of a 2-D float32 array scaled to unit L2 norm (zero rows stay zero)."""
    with CTensors((x, FLOAT32)) as (t,):
        return call(lib.jaclip_normalize, t)


def topk(scores, k):
    """(indices int64 [N, k'], values float32 [N, k']) of the k largest entries of each row, best first."""
    with CTensors((scores, FLOAT32)) as (t,):
        idx, val = P(), P()
        check(lib.jaclip_topk(ctypes.byref(idx), ctypes.byref(val), t, k))
        return take(idx), take(val)


# ---- images -----------------------------------------------------------------------------------------

class Image(Owned):
    """A decoded image (jaclip_image). Image(path), Image.from_bytes(data), Image.from_pixels(array)."""

    def __init__(self, path, max_pixels=0, exif_transpose=False):
        self._adopt(lambda out: lib.jaclip_image_load(out, os.fsencode(path), max_pixels,
                                                      EXIF_TRANSPOSE if exif_transpose else 0))

    def _adopt(self, load):
        out = P()
        check(load(ctypes.byref(out)))
        self._h = Handle(out.value, lib.jaclip_image_free, "image")

    @classmethod
    def from_bytes(cls, data, max_pixels=0, exif_transpose=False):
        """Decodes an encoded image (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIF) held in memory (not kept)."""
        data = bytes(data)
        self = cls.__new__(cls)
        self._adopt(lambda out: lib.jaclip_image_load_memory(out, data, len(data), max_pixels,
                                                             EXIF_TRANSPOSE if exif_transpose else 0))
        return self

    @classmethod
    def from_pixels(cls, pixels, width=None, height=None, format=None, stride=0):
        """Wraps 8-bit pixels (copied): a uint8 array [H, W] or [H, W, C] (C = 1..4 gives L, LA, RGB,
        RGBA), or bytes with width, height and format ("L", "LA", "RGB", "RGBA")."""
        if np is not None and isinstance(pixels, np.ndarray):
            if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
                raise _errors.ShapeError(f"pixels must be uint8 [H, W] or [H, W, C], not {pixels.dtype} "
                                         f"of shape {pixels.shape}", 6)
            height, width = pixels.shape[:2]
            channels = 1 if pixels.ndim == 2 else pixels.shape[2]
            format = _PIXEL_FORMAT_BY_CHANNELS.get(channels, format)
            # The array's own strides are taken care of by packing it; a stride on top would read past it.
            if stride not in (0, width * channels):
                raise _errors.InvalidArgumentError(
                    f"stride={stride} with an array: the array is packed to {width * channels} bytes a row", 1)
            stride = 0
            pixels = np.ascontiguousarray(pixels).tobytes()
        if width is None or height is None or format is None:
            raise TypeError("bytes need width, height and format")
        code = _PIXEL_FORMATS.get(format, 0) if isinstance(format, str) else format
        data = bytes(pixels)
        _check_pixel_buffer(len(data), width, height, stride, code)
        self = cls.__new__(cls)
        self._adopt(lambda out: lib.jaclip_image_from_pixels(out, data, width, height, stride, code))
        return self

    @property
    def width(self):
        with self._h as p:
            return lib.jaclip_image_width(p)

    @property
    def height(self):
        with self._h as p:
            return lib.jaclip_image_height(p)

    @property
    def mode(self):
        """PIL's name of the decoded mode: "L", "LA", "RGB", "RGBA", "P", "1", "I" or "CMYK"."""
        with self._h as p:
            return lib.jaclip_image_mode(p).decode()

    def resize_crop(self, size):
        """uint8 [size, size, 3]: the model's view before normalisation."""
        with self._h as p:
            return call(lib.jaclip_image_resize_crop, p, size)


def _check_pixel_buffer(length, width, height, stride, code):
    """The C call reads (height - 1) * stride + width * bytes-per-pixel bytes and cannot know the
    buffer's length: refuse a buffer shorter than that before the call."""
    width, height, stride = operator.index(width), operator.index(height), operator.index(stride)
    per_pixel = _PIXEL_BYTES.get(code)
    if per_pixel is None or width <= 0 or height <= 0 or stride < 0:
        return  # the library refuses these itself, reading nothing
    row = width * per_pixel
    needed = (height - 1) * (stride or row) + row
    if length < needed:
        raise _errors.InvalidArgumentError(
            f"{length} bytes of pixels, but {width}x{height} with stride {stride or row} needs {needed}", 1)


class _ImageList:
    """Pointers of Image objects for one call, decoding paths and bytes to temporary Images first."""

    def __init__(self, items, max_pixels=0, flags=0):
        if isinstance(items, (str, bytes, Image)) or _is_path(items):
            raise TypeError("expected a list of images, not a single image")
        self._items = list(items)
        self._max_pixels, self._flags = max_pixels, flags
        self._temps, self._held = [], []

    def __enter__(self):
        try:
            images = []
            for item in self._items:
                if isinstance(item, Image):
                    images.append(item)
                else:
                    tmp = _open_image(item, self._max_pixels, self._flags)
                    self._temps.append(tmp)
                    images.append(tmp)
            ptrs = []
            for image in images:
                ptrs.append(image._h.__enter__())
                self._held.append(image._h)
            return (P * max(len(ptrs), 1))(*ptrs), len(ptrs)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        for h in self._held:
            h.__exit__()
        for t in self._temps:
            t.close()
        self._held, self._temps = [], []


def _open_image(item, max_pixels, flags):
    exif = bool(flags & EXIF_TRANSPOSE)
    if _is_path(item):
        return Image(item, max_pixels, exif)
    if _is_buffer(item):
        return Image.from_bytes(item, max_pixels, exif)
    raise TypeError(f"an image must be a path, bytes or jaclip.Image, not {type(item).__name__}")


def preprocess_images(images, size, mean, std):
    """float32 [n, 3, size, size] from Images (or paths/bytes) with the given mean and std (3 each)."""
    mean, std = list(mean), list(std)
    if len(mean) != 3 or len(std) != 3:
        raise _errors.InvalidArgumentError(f"mean and std need 3 values each, got {len(mean)} and {len(std)}", 1)
    m, s = (ctypes.c_float * 3)(*mean), (ctypes.c_float * 3)(*std)
    with _ImageList(images) as (ptrs, n):
        return call(lib.jaclip_image_preprocess, ptrs, n, size, m, s)


# ---- tokenizer --------------------------------------------------------------------------------------

class Tokenizer(Owned):
    """rinna's tokenizer: Tokenizer(path to a SentencePiece .model), Tokenizer.from_bytes(data), or the
    one stored in a model (Model.tokenizer, which lives as long as the model)."""

    def __init__(self, path):
        self._load(lambda out: lib.jaclip_tokenizer_load(out, os.fsencode(path)))

    def _load(self, load):
        out = P()
        check(load(ctypes.byref(out)))
        self._h, self._model = Handle(out.value, lib.jaclip_tokenizer_free, "tokenizer"), None

    @classmethod
    def from_bytes(cls, data):
        data = bytes(data)
        self = cls.__new__(cls)
        self._load(lambda out: lib.jaclip_tokenizer_load_memory(out, data, len(data)))
        return self

    @classmethod
    def _of_model(cls, model):
        self = cls.__new__(cls)
        self._h, self._model = model._h, model  # the model's handle guards the borrowed pointer
        return self

    def _use(self):
        return _Borrowed(self._h, lib.jaclip_model_tokenizer) if self._model else self._h

    @property
    def vocab_size(self):
        with self._use() as p:
            return lib.jaclip_tokenizer_vocab_size(p)

    def id_to_piece(self, token_id):
        """The piece of an id ("▁", "犬"); NotFoundError for an id outside the vocabulary."""
        with self._use() as p:
            piece = lib.jaclip_tokenizer_id_to_piece(p, token_id)
        if piece is None:
            raise _errors.NotFoundError(f"token id {token_id} is not in the vocabulary", 13)
        return piece.decode("utf-8", "surrogateescape")

    def encode(self, texts, max_length=77):
        """(input_ids, attention_mask), both int64 [len(texts), max_length], as the model reads them."""
        arr, lengths, n = _text_arrays(texts)
        ids, mask = P(), P()
        with self._use() as p:
            check(lib.jaclip_tokenizer_encode(ctypes.byref(ids), ctypes.byref(mask), p, arr, lengths, n,
                                              max_length))
        return take(ids), take(mask)

    def tokenize(self, text):
        """Every id of one text, unframed and untruncated, as int64 [count]."""
        raw = _text_bytes(text)
        with self._use() as p:
            return call(lib.jaclip_tokenizer_tokenize, p, raw, len(raw))

    def pieces(self, text):
        """The pieces of tokenize(text)."""
        return [self.id_to_piece(int(i)) for i in self.tokenize(text).tolist()]

    def close(self):
        """Frees a tokenizer loaded by itself; a model's tokenizer is freed with its model."""
        if self._model is None:
            self._h.close()


class _Borrowed:
    """Holds the owner's handle and yields a pointer borrowed from it."""

    def __init__(self, handle, getter):
        self._handle, self._getter = handle, getter

    def __enter__(self):
        return self._getter(self._handle.__enter__())

    def __exit__(self, *exc):
        self._handle.__exit__()


# ---- model ------------------------------------------------------------------------------------------

class Model(Owned):
    """A loaded model (jaclip_model). Safe to share between threads; close() or `with` frees it.

    device: "cpu", "cuda" or "cuda:N"; num_threads: cores to use, 0 = all (non-zero also sizes
    OpenBLAS's process-wide pool); precision: None (as stored; a bf16 file runs fp32 where bf16 is not native, see precision_reason), "fp32", "bf16", "int8" (int8 files only), "int8-weights" (int8 Linear weights made at load from an fp32 / bf16 file, run by libjaclip's own kernel: docs/precision.md) or "auto" (int8-weights with AVX512-VNNI and no AMX, else bf16 where this CPU runs it natively, else as stored); max_image_pixels: limit for images the model decodes
    (0 = default); exif_transpose: rotate decoded images by their EXIF orientation."""

    def __init__(self, path, device="cpu", num_threads=0, precision=None, max_image_pixels=0,
                 exif_transpose=False):
        encoded = os.fsencode(path)
        self._load(lambda out, opts: lib.jaclip_model_load(out, encoded, opts), device, num_threads, precision,
                   max_image_pixels, exif_transpose)

    @classmethod
    def from_bytes(cls, data, device="cpu", num_threads=0, precision=None, max_image_pixels=0,
                   exif_transpose=False):
        """Loads a model file's bytes (copied while loading)."""
        data = bytes(data)
        self = cls.__new__(cls)
        self._load(lambda out, opts: lib.jaclip_model_load_memory(out, data, len(data), opts), device,
                   num_threads, precision, max_image_pixels, exif_transpose)
        return self

    def _load(self, load, device, num_threads, precision, max_image_pixels, exif_transpose):
        if precision not in _PRECISIONS:
            raise _errors.InvalidArgumentError(f"unknown precision {precision!r} (None, 'fp32', 'bf16', 'int8' or 'auto')", 1)
        self._max_pixels, self._flags = max_image_pixels, EXIF_TRANSPOSE if exif_transpose else 0
        opts = P()
        check(lib.jaclip_model_options_create(ctypes.byref(opts)))
        try:
            check(lib.jaclip_model_options_set_device(opts, device.encode()))
            check(lib.jaclip_model_options_set_num_threads(opts, num_threads))
            check(lib.jaclip_model_options_set_precision(opts, _PRECISIONS[precision]))
            check(lib.jaclip_model_options_set_max_image_pixels(opts, max_image_pixels))
            check(lib.jaclip_model_options_set_image_flags(opts, self._flags))
            out = P()
            check(load(ctypes.byref(out), opts))
        finally:
            lib.jaclip_model_options_free(opts)
        self._h = Handle(out.value, lib.jaclip_model_free, "model")
        self._tokenizer = Tokenizer._of_model(self)

    # -- introspection
    def _get(self, fn):
        with self._h as p:
            return fn(p)

    @property
    def embedding_dim(self):
        return self._get(lib.jaclip_model_embedding_dim)

    @property
    def image_size(self):
        return self._get(lib.jaclip_model_image_size)

    @property
    def max_text_length(self):
        return self._get(lib.jaclip_model_max_text_length)

    @property
    def device(self):
        return self._get(lib.jaclip_model_device).decode()

    @property
    def fingerprint(self):
        """"FAMILY-DIM-DIGEST" naming the model's weights; indexes record it (Index.fingerprint)."""
        return self._get(lib.jaclip_model_fingerprint).decode("ascii")

    @property
    def precision(self):
        """What the model computes in: "fp32", "bf16", "int8" or "int8-weights"."""
        return _PRECISION_NAMES[self._get(lib.jaclip_model_precision)]

    @property
    def precision_reason(self):
        """Why it computes in that precision (jaclip_model_precision_reason)."""
        return self._get(lib.jaclip_model_precision_reason).decode()

    @property
    def image_mean(self):
        with self._h as p:
            return tuple(lib.jaclip_model_image_mean(p)[:3])

    @property
    def image_std(self):
        with self._h as p:
            return tuple(lib.jaclip_model_image_std(p)[:3])

    @property
    def tokenizer(self):
        """The model's tokenizer (borrowed: usable while the model is open)."""
        return self._tokenizer

    # -- encoding
    def encode_images(self, images, errors="raise"):
        """float32 [n, D] for a list of image paths, encoded image bytes or jaclip.Images.
        errors="skip": an image that cannot be read, decoded or is over the pixel limit is left out
        instead of failing the batch, and the result is SkippedImages(features [k, D], kept: the
        input indices of the k rows, skipped: [(index, exception)]); other errors still raise."""
        if isinstance(images, (str, bytes, Image)) or _is_path(images):
            raise TypeError("expected a list of images, not a single image")
        if errors not in ("raise", "skip"):
            raise ValueError(f'errors must be "raise" or "skip", got {errors!r}')
        images = list(images)
        if errors == "skip":
            return self._encode_images_skipping(images)
        return self._encode_image_list(images)

    def _encode_images_skipping(self, images):
        # Which failures are skipped is the library's rule (jaclip_model_encode_image_*_skipping): paths
        # and buffers go there, a kind at a time; decoded jaclip.Images cannot fail to decode.
        groups = {"path": [], "buffer": [], "image": []}
        for i, x in enumerate(images):
            groups["path" if _is_path(x) else "buffer" if _is_buffer(x) else "image"].append(i)
        rows, kept, skipped = [], [], []
        for kind, indices in groups.items():
            if not indices:
                continue
            if kind == "image":
                rows.append(self._encode_image_list([images[i] for i in indices]))
                kept += indices
                continue
            features, kept_rows, failed = self._encode_skipping(kind, [images[i] for i in indices])
            rows.append(features)
            kept += [indices[int(k)] for k in kept_rows]
            skipped += [(indices[j], e) for j, e in failed]
        order = sorted(range(len(kept)), key=kept.__getitem__)
        features = np.concatenate(rows)[order] if rows else np.zeros((0, self.embedding_dim), np.float32)
        return SkippedImages(features, sorted(kept), sorted(skipped, key=lambda s: s[0]))

    def _encode_skipping(self, kind, items):
        failed = []

        def on_skip(_user, index, status, message):
            failed.append((index, _errors.from_status(status, message.decode("utf-8", "replace"))))

        callback = SKIP_CALLBACK(on_skip)
        out, kept = P(), P()
        with self._h as p:
            if kind == "path":
                paths = [os.fsencode(x) for x in items]
                status = lib.jaclip_model_encode_image_files_skipping(
                    ctypes.byref(out), ctypes.byref(kept), p, (ctypes.c_char_p * len(paths))(*paths), len(paths),
                    ctypes.cast(callback, P), None)
            else:
                blobs = [bytes(x) for x in items]
                status = lib.jaclip_model_encode_image_buffers_skipping(
                    ctypes.byref(out), ctypes.byref(kept), p, (ctypes.c_char_p * len(blobs))(*blobs),
                    (ctypes.c_size_t * len(blobs))(*map(len, blobs)), len(blobs), ctypes.cast(callback, P), None)
        check(status)
        return take(out), take(kept).tolist(), failed

    def _encode_image_list(self, images):
        with self._h as p:
            if images and all(_is_path(x) for x in images):
                paths = [os.fsencode(x) for x in images]
                return call(lib.jaclip_model_encode_image_files, p, (ctypes.c_char_p * len(paths))(*paths),
                            len(paths))
            if images and all(_is_buffer(x) for x in images):
                blobs = [bytes(x) for x in images]
                return call(lib.jaclip_model_encode_image_buffers, p, (ctypes.c_char_p * len(blobs))(*blobs),
                            (ctypes.c_size_t * len(blobs))(*map(len, blobs)), len(blobs))
            with _ImageList(images, self._max_pixels, self._flags) as (ptrs, n):
                return call(lib.jaclip_model_encode_images, p, ptrs, n)

    def encode_image_pixels(self, pixels):
        """float32 [N, D] from preprocessed pixel values, float32 [N, 3, S, S]."""
        with CTensors((pixels, FLOAT32)) as (t,), self._h as p:
            return call(lib.jaclip_model_encode_pixel_values, p, t)

    def encode_texts(self, texts):
        """float32 [n, D] for a list of str (or UTF-8 bytes)."""
        arr, lengths, n = _text_arrays(texts)
        with self._h as p:
            return call(lib.jaclip_model_encode_texts, p, arr, lengths, n)

    def encode_token_ids(self, input_ids, attention_mask):
        """float32 [N, D] from int64 [N, L] ids and mask (as Tokenizer.encode gives them)."""
        with CTensors((input_ids, INT64), (attention_mask, INT64)) as (ti, tm), self._h as p:
            return call(lib.jaclip_model_encode_token_ids, p, ti, tm)

    def preprocess(self, images):
        """The float32 [n, 3, S, S] input the model would see for these paths, bytes or Images."""
        with _ImageList(images, self._max_pixels, self._flags) as (ptrs, n), self._h as p:
            return call(lib.jaclip_model_preprocess_images, p, ptrs, n)

    # -- zero-shot
    @property
    def family(self):
        """"cloob" or "clip"."""
        return self._get(lib.jaclip_model_family).decode()

    @property
    def default_scale(self):
        """The model's own probability scale: 100 for CLOOB, exp(logit_scale) for CLIP."""
        return self._get(lib.jaclip_model_default_scale)

    def encode_labels(self, labels, template=None):
        """Unit-length float32 [len(labels), D] class embeddings, rinna's ImageNet protocol
        (jaclip.Classifier's weights): template is None (the label alone), one str with {} or a list."""
        from ._classifier import Classifier
        with Classifier(self, labels, template) as classifier:
            return classifier.weights

    def classify(self, image, labels, *positional, template=None, scale=None):
        """Zero-shot classification of one image (path, bytes or Image): a list of
        Prediction(label, probability), best first, probabilities summing to 1. scale None = the
        model's default_scale. The inputs by position, the options by keyword, as in Ruby's binding
        (docs/python.md); template and scale by position still work but are deprecated."""
        from ._classifier import Classifier
        if positional:
            if len(positional) > 2:
                raise TypeError(f"classify() takes at most 4 positional arguments ({2 + len(positional)} given)")
            warnings.warn("Model.classify(image, labels, template, scale): pass template= and scale= by keyword",
                          DeprecationWarning, stacklevel=2)
            given = dict(zip(("template", "scale"), positional))
            if ("template" in given and template is not None) or ("scale" in given and scale is not None):
                raise TypeError("classify() got template or scale both by position and by keyword")
            template, scale = given.get("template", template), given.get("scale", scale)
        with Classifier(self, labels, template) as classifier:
            return classifier.predict(image, scale=scale)

    def __repr__(self):
        if self.closed:
            return "<jaclip.Model (closed)>"
        return f"<jaclip.Model dim={self.embedding_dim} device={self.device} precision={self.precision}>"


