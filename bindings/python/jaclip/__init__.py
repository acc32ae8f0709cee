"""Python binding of libjaclip (rinna's Japanese CLOOB: image and text embeddings, zero-shot
classification, an embedding index). Pure ctypes; results are numpy arrays when numpy is importable,
else jaclip.Tensor.

    import jaclip
    with jaclip.Model("model.jaclip") as model:
        for label, p in model.classify("dog.jpeg", ["犬", "猫", "象"], template="{}の写真"):
            print(f"{p:.3f} {label}")
"""
from . import _lib
from ._errors import (BackendError, ClosedError, DeviceUnavailableError, Error, ImageDecodeError,
                      ImageTooLargeError, IndexFormatError, InputOutputError, InternalError,
                      InvalidArgumentError, InvalidUTF8Error, ModelFormatError, ModelMismatchError, NotFoundError,
                      OutOfMemoryError, ShapeError, TokenizerError, VersionError)
from ._api import (Image, Model, Prediction, SkippedImages, Tokenizer, normalize, preprocess_images, probabilities,
                   similarity, softmax, topk)
from ._index import DuplicateGroup, Duplicates, Hit, Index
from ._sync import sync_index
from ._ann import Ann
from ._classifier import Classifier, preset_labels, preset_templates
from ._tensor import Tensor

# Both numbers come from include/jaclip.h: make writes _version.py (mk/lib.mk).
from ._version import __version__, EXPECTED_VERSION_NUMBER


def check_version(found, expected=EXPECTED_VERSION_NUMBER):
    """Raises VersionError unless a library of version `found` serves a binding written for `expected`:
    same major (and, before 1.0, same minor) and not older."""
    same = found // 10000 == expected // 10000 and (expected >= 10000 or found // 100 == expected // 100)
    if not same or found < expected:
        def text(n):
            return f"{n // 10000}.{n // 100 % 100}.{n % 100}"
        raise VersionError(f"jaclip {__version__} needs libjaclip {text(expected)} or a compatible later "
                           f"release, but {_lib.path} is {text(found)}")


def version_number():
    """jaclip_version_number() of the loaded library."""
    return _lib.lib.jaclip_version_number()


def version_string():
    return _lib.lib.jaclip_version_string().decode()


def cpu_features():
    """The CPU features libjaclip detected, e.g. "avx2 fma" (jaclip_cpu_features)."""
    return _lib.lib.jaclip_cpu_features().decode()


def status_string(status):
    """The library's static name of a status, e.g. "JACLIP_ERROR_IO: input/output error"."""
    return _lib.lib.jaclip_status_string(status).decode()


def library_path():
    """The path libjaclip was loaded from."""
    return _lib.path


check_version(version_number())

__all__ = [
    "BackendError", "ClosedError", "DeviceUnavailableError", "Error", "ImageDecodeError",
    "ImageTooLargeError", "IndexFormatError", "InputOutputError", "InternalError", "InvalidArgumentError",
    "InvalidUTF8Error", "ModelFormatError", "ModelMismatchError", "NotFoundError", "OutOfMemoryError", "ShapeError",
    "TokenizerError", "VersionError", "Ann", "Hit", "Image", "Index", "Model", "Prediction", "Tensor", "Tokenizer",
    "normalize", "preprocess_images", "sync_index", "probabilities", "similarity", "softmax", "topk", "check_version",
    "version_number", "version_string", "status_string", "library_path", "EXPECTED_VERSION_NUMBER",
    "Classifier", "preset_labels", "preset_templates", "SkippedImages", "Duplicates", "DuplicateGroup",
]
