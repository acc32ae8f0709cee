"""Classifier: the zero-shot classifier of the C library (jaclip_classifier_*) and the named presets.
The template ensemble is computed in C only; this file passes lists in and arrays out."""
import ctypes
import os

from . import _errors
from ._api import Image, Prediction, _ImageList, _is_buffer, _is_path, _text_bytes
from ._handle import Handle, Owned
from ._lib import P, check, lib
from ._tensor import FLOAT32, CTensors, call



def _preset(fn, name):
    arr, n = ctypes.POINTER(ctypes.c_char_p)(), ctypes.c_size_t()
    check(fn(ctypes.byref(arr), ctypes.byref(n), name.encode()))
    return [arr[i].decode() for i in range(n.value)]


def preset_labels(name):
    """The labels of a named preset: "imagenet" gives rinna's 1000 Japanese ImageNet class names."""
    return _preset(lib.jaclip_preset_labels, name)


def preset_templates(name):
    """The templates of a named preset: "imagenet" gives rinna's 37 Japanese prompt templates."""
    return _preset(lib.jaclip_preset_templates, name)


def _string_array(items, what):
    if isinstance(items, (str, bytes)):
        raise TypeError(f"expected a list of {what}s, not a single {what}")
    raw = [_text_bytes(x) for x in items]
    for i, b in enumerate(raw):
        if b"\0" in b:  # C would cut it short silently
            raise _errors.InvalidArgumentError(f"{what} {i} contains a NUL byte", 1)
    return (ctypes.c_char_p * max(len(raw), 1))(*raw), len(raw)


def _scale(scale):
    return 0.0 if scale is None else float(scale)


class Classifier(Owned):
    """A zero-shot classifier (jaclip_classifier): one unit row per label, built by rinna's ImageNet
    protocol (each template filled with the label, every text feature L2-normalised, averaged per label,
    re-normalised). labels: a list of str; templates: None (the label alone), one template str with {},
    or a list of them (jaclip.preset_templates("imagenet") for rinna's 37). Keeps the model open."""

    def __init__(self, model, labels, templates=None):
        label_arr, n = _string_array(labels, "label")
        if templates is None:
            templates = []
        elif isinstance(templates, (str, bytes)):
            templates = [templates]
        tmpl_arr, t = _string_array(templates, "template")
        out = P()
        with model._h as m:
            check(lib.jaclip_classifier_create(ctypes.byref(out), m, label_arr, n, tmpl_arr if t else None, t))
        self._adopt(out, model)

    @classmethod
    def load(cls, path, model):
        """Loads a file written by save(); refused unless it was built with this same model."""
        self = cls.__new__(cls)
        out = P()
        with model._h as m:
            check(lib.jaclip_classifier_load(ctypes.byref(out), os.fsencode(path), m))
        self._adopt(out, model)
        return self

    def _adopt(self, ptr, model):
        self._h = Handle(ptr.value, lib.jaclip_classifier_free, "classifier")
        self._model = model

    def _get(self, fn, *args):
        with self._h as p:
            return fn(p, *args)

    def save(self, path):
        """Writes the classifier atomically (docs/zeroshot.md gives the format)."""
        check(self._get(lib.jaclip_classifier_save, os.fsencode(path)))

    def __len__(self):
        return self._get(lib.jaclip_classifier_size)

    @property
    def dim(self):
        return self._get(lib.jaclip_classifier_dim)

    @property
    def labels(self):
        return [self._get(lib.jaclip_classifier_label, i).decode() for i in range(len(self))]

    @property
    def templates(self):
        n = self._get(lib.jaclip_classifier_template_count)
        return [self._get(lib.jaclip_classifier_template, i).decode() for i in range(n)]

    @property
    def default_scale(self):
        """The building model's own scale: 100 for CLOOB, exp(logit_scale) for CLIP."""
        return self._get(lib.jaclip_classifier_default_scale)

    @property
    def fingerprint(self):
        return self._get(lib.jaclip_classifier_fingerprint).decode()

    @property
    def weights(self):
        """float32 [len(self), dim], unit rows."""
        with self._h as p:
            return call(lib.jaclip_classifier_weights, p)

    def scores(self, features):
        """Cosine of each feature row with each label, float32 [N, len(self)]."""
        with CTensors((features, FLOAT32)) as (t,), self._h as p:
            return call(lib.jaclip_classifier_scores, p, t)

    def classify_features(self, features, scale=None):
        """softmax(scale * scores) per row; scale None = default_scale."""
        with CTensors((features, FLOAT32)) as (t,), self._h as p:
            return call(lib.jaclip_classifier_classify_features, p, t, _scale(scale))

    def classify(self, images, scale=None):
        """Probabilities float32 [n, len(self)] for a list of paths, encoded bytes or jaclip.Images."""
        if isinstance(images, (str, bytes, Image)) or _is_path(images):
            raise TypeError("expected a list of images, not a single image")
        images = list(images)
        model = self._model
        with self._h as c, model._h as m:
            if images and all(_is_path(x) for x in images):
                paths = [os.fsencode(x) for x in images]
                return call(lib.jaclip_classifier_classify_image_files, c, m,
                            (ctypes.c_char_p * len(paths))(*paths), len(paths), _scale(scale))
            if images and all(_is_buffer(x) for x in images):
                blobs = [bytes(x) for x in images]
                return call(lib.jaclip_classifier_classify_image_buffers, c, m,
                            (ctypes.c_char_p * len(blobs))(*blobs), (ctypes.c_size_t * len(blobs))(*map(len, blobs)),
                            len(blobs), _scale(scale))
            with _ImageList(images, model._max_pixels, model._flags) as (ptrs, n):
                return call(lib.jaclip_classifier_classify_images, c, m, ptrs, n, _scale(scale))

    def predict(self, image, top=None, scale=None):
        """One image's labels as Prediction(label, probability), best first (all, or the top best).
        Ranked by cosine, as `jaclip classify` ranks: at a scale of 100 probabilities saturate to equal
        values (0.0) where the cosines still differ."""
        from ._api import topk
        features = self._model.encode_images([image])
        probs = self.classify_features(features, scale)
        k = len(self) if top is None else top
        idx, _ = topk(self.scores(features), k)
        labels = self.labels
        return [Prediction(labels[int(i)], float(probs[0][int(i)])) for i in idx.tolist()[0]]

    def __repr__(self):
        if self.closed:
            return "<jaclip.Classifier (closed)>"
        return f"<jaclip.Classifier labels={len(self)} templates={len(self.templates)} dim={self.dim}>"
