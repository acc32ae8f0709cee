"""Finds libjaclip, declares every C signature the binding uses, and turns statuses into exceptions."""
import ctypes
import ctypes.util
import os
import shutil
import subprocess

from . import _errors

SONAME = "libjaclip.so.1"

P = ctypes.c_void_p
PP = ctypes.POINTER(P)
c_char_pp = ctypes.POINTER(ctypes.c_char_p)
c_size_p = ctypes.POINTER(ctypes.c_size_t)
c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_float_p = ctypes.POINTER(ctypes.c_float)
# void (*jaclip_skip_callback)(void *user, size_t index, jaclip_status status, const char *message)
SKIP_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_char_p)
i32, u32, u64, i64, sz, flt = ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64, ctypes.c_size_t, ctypes.c_float

# name: (restype, argtypes). Every call of the binding goes through one of these.
_SIGNATURES = {
    "jaclip_version_number": (ctypes.c_uint, []),
    "jaclip_version_string": (ctypes.c_char_p, []),
    "jaclip_status_string": (ctypes.c_char_p, [i32]),
    "jaclip_last_error": (ctypes.c_char_p, []),
    "jaclip_tensor_create": (i32, [PP, i32, sz, c_int64_p, P]),
    "jaclip_tensor_free": (None, [P]),
    "jaclip_tensor_dtype": (i32, [P]),
    "jaclip_tensor_ndim": (sz, [P]),
    "jaclip_tensor_dim": (i64, [P, sz]),
    "jaclip_tensor_nbytes": (sz, [P]),
    "jaclip_tensor_data": (P, [P]),
    "jaclip_similarity": (i32, [PP, P, P, i32, flt]),
    "jaclip_softmax": (i32, [PP, P]),
    "jaclip_probabilities": (i32, [PP, P, P, i32, flt]),
    "jaclip_normalize": (i32, [PP, P]),
    "jaclip_topk": (i32, [PP, PP, P, sz]),
    "jaclip_image_load": (i32, [PP, ctypes.c_char_p, u64, u32]),
    "jaclip_image_load_memory": (i32, [PP, ctypes.c_char_p, sz, u64, u32]),
    "jaclip_image_from_pixels": (i32, [PP, ctypes.c_char_p, u32, u32, sz, i32]),
    "jaclip_image_free": (None, [P]),
    "jaclip_image_width": (u32, [P]),
    "jaclip_image_height": (u32, [P]),
    "jaclip_image_mode": (ctypes.c_char_p, [P]),
    "jaclip_image_resize_crop": (i32, [PP, P, u32]),
    "jaclip_image_preprocess": (i32, [PP, PP, sz, u32, c_float_p, c_float_p]),
    "jaclip_tokenizer_load": (i32, [PP, ctypes.c_char_p]),
    "jaclip_tokenizer_load_memory": (i32, [PP, ctypes.c_char_p, sz]),
    "jaclip_tokenizer_free": (None, [P]),
    "jaclip_tokenizer_vocab_size": (i64, [P]),
    "jaclip_tokenizer_id_to_piece": (ctypes.c_char_p, [P, i64]),
    "jaclip_tokenizer_encode": (i32, [PP, PP, P, c_char_pp, c_size_p, sz, sz]),
    "jaclip_tokenizer_tokenize": (i32, [PP, P, ctypes.c_char_p, sz]),
    "jaclip_model_options_create": (i32, [PP]),
    "jaclip_model_options_free": (None, [P]),
    "jaclip_model_options_set_device": (i32, [P, ctypes.c_char_p]),
    "jaclip_model_options_set_num_threads": (i32, [P, ctypes.c_int32]),
    "jaclip_model_options_set_precision": (i32, [P, i32]),
    "jaclip_model_options_set_max_image_pixels": (i32, [P, u64]),
    "jaclip_model_options_set_image_flags": (i32, [P, u32]),
    "jaclip_model_load": (i32, [PP, ctypes.c_char_p, P]),
    "jaclip_model_load_memory": (i32, [PP, ctypes.c_char_p, sz, P]),
    "jaclip_model_free": (None, [P]),
    "jaclip_model_embedding_dim": (i64, [P]),
    "jaclip_model_image_size": (i64, [P]),
    "jaclip_model_max_text_length": (i64, [P]),
    "jaclip_model_device": (ctypes.c_char_p, [P]),
    "jaclip_model_fingerprint": (ctypes.c_char_p, [P]),
    "jaclip_model_precision": (i32, [P]),
    "jaclip_model_precision_reason": (ctypes.c_char_p, [P]),
    "jaclip_cpu_features": (ctypes.c_char_p, []),
    "jaclip_model_image_mean": (c_float_p, [P]),
    "jaclip_model_image_std": (c_float_p, [P]),
    "jaclip_model_tokenizer": (P, [P]),
    "jaclip_model_encode_pixel_values": (i32, [PP, P, P]),
    "jaclip_model_encode_token_ids": (i32, [PP, P, P, P]),
    "jaclip_model_encode_texts": (i32, [PP, P, c_char_pp, c_size_p, sz]),
    "jaclip_model_encode_images": (i32, [PP, P, PP, sz]),
    "jaclip_model_encode_image_files": (i32, [PP, P, c_char_pp, sz]),
    "jaclip_model_encode_image_buffers": (i32, [PP, P, c_char_pp, c_size_p, sz]),
    "jaclip_model_encode_image_files_skipping": (i32, [PP, PP, P, c_char_pp, sz, P, P]),
    "jaclip_model_encode_image_buffers_skipping": (i32, [PP, PP, P, c_char_pp, c_size_p, sz, P, P]),
    "jaclip_model_preprocess_images": (i32, [PP, P, PP, sz]),
    "jaclip_index_create": (i32, [PP, sz]),
    "jaclip_index_free": (None, [P]),
    "jaclip_index_add": (i32, [P, P, c_char_pp]),
    "jaclip_index_size": (sz, [P]),
    "jaclip_index_dim": (sz, [P]),
    "jaclip_index_label": (ctypes.c_char_p, [P, sz]),
    "jaclip_index_find_label": (i32, [c_size_p, P, ctypes.c_char_p]),
    "jaclip_index_embeddings": (i32, [PP, P, sz, sz]),
    "jaclip_index_search": (i32, [PP, PP, P, P, sz]),
    "jaclip_index_save": (i32, [P, ctypes.c_char_p]),
    "jaclip_index_append_file": (i32, [ctypes.c_char_p, P, c_char_pp]),
    "jaclip_index_load": (i32, [PP, ctypes.c_char_p, u32]),
    "jaclip_index_merge": (i32, [ctypes.c_char_p, c_char_pp, sz, u32]),
    "jaclip_index_remove": (i32, [P, c_char_pp, sz, c_size_p]),
    "jaclip_index_row_format": (u32, [P]),
    "jaclip_index_set_row_format": (i32, [P, u32]),
    "jaclip_index_fingerprint": (ctypes.c_char_p, [P]),
    "jaclip_index_set_fingerprint": (i32, [P, ctypes.c_char_p]),
    "jaclip_index_check_fingerprint": (i32, [P, ctypes.c_char_p, u32]),
    "jaclip_index_remove_file": (i32, [ctypes.c_char_p, c_char_pp, sz, c_size_p]),
    "jaclip_index_compact_file": (i32, [ctypes.c_char_p, ctypes.c_char_p]),
    # stamps: jaclip_index_stamp arrays (_sync._Stamp)
    "jaclip_index_replace_file": (i32, [ctypes.c_char_p, c_char_pp, sz, P, c_char_pp, P, c_size_p]),
    "jaclip_index_stamp_of": (i32, [P, P, sz]),
    # capture times (format version 4): EXIF DateTimeOriginal per row, the date filters' time
    "jaclip_index_replace_file_timed": (i32, [ctypes.c_char_p, c_char_pp, sz, P, c_char_pp, P, P, c_size_p]),
    "jaclip_index_row_time": (i32, [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int), P, sz]),
    "jaclip_image_capture_time": (i32, [ctypes.POINTER(ctypes.c_int64), ctypes.c_char_p, sz]),
    # metadata (format version 3): root, label style, orientation
    "jaclip_index_metadata": (ctypes.c_char_p, [P, ctypes.c_char_p]),
    "jaclip_index_set_metadata": (i32, [P, ctypes.c_char_p, ctypes.c_char_p]),
    "jaclip_index_set_metadata_file": (i32, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
    "jaclip_index_root": (ctypes.c_char_p, [P]),
    "jaclip_index_deleted_rows": (sz, [P]),
    # filter-then-rank search options
    "jaclip_search_options_create": (i32, [PP]),
    "jaclip_search_options_free": (None, [P]),
    "jaclip_search_options_set_offset": (i32, [P, sz]),
    "jaclip_search_options_set_threshold": (i32, [P, ctypes.c_float]),
    "jaclip_search_options_set_folder": (i32, [P, ctypes.c_char_p]),
    "jaclip_search_options_set_time_range": (i32, [P, ctypes.c_int64, ctypes.c_int64]),
    "jaclip_search_options_add_file_type": (i32, [P, ctypes.c_char_p]),
    "jaclip_index_search_with": (i32, [PP, PP, P, P, sz, P]),
    # duplicate groups
    "jaclip_dupes_options_create": (i32, [PP]),
    "jaclip_dupes_options_free": (None, [P]),
    "jaclip_dupes_options_set_threshold": (i32, [P, ctypes.c_float]),
    "jaclip_dupes_options_set_exact_only": (i32, [P, ctypes.c_int]),
    "jaclip_dupes_options_set_page": (i32, [P, sz, sz]),
    "jaclip_index_duplicates": (i32, [PP, P, P]),
    "jaclip_dupes_free": (None, [P]),
    "jaclip_dupes_total": (sz, [P]),
    "jaclip_dupes_count": (sz, [P]),
    "jaclip_dupes_group_size": (sz, [P, sz]),
    "jaclip_dupes_group_exact": (ctypes.c_int, [P, sz]),
    "jaclip_dupes_member": (i32, [c_size_p, c_float_p, P, sz, sz]),
    # zero-shot classifiers and presets (_classifier.py)
    "jaclip_model_family": (ctypes.c_char_p, [P]),
    "jaclip_model_default_scale": (ctypes.c_float, [P]),
    "jaclip_preset_labels": (ctypes.c_int, [ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p)), c_size_p, ctypes.c_char_p]),
    "jaclip_preset_templates": (ctypes.c_int, [ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p)), c_size_p, ctypes.c_char_p]),
    "jaclip_classifier_create": (ctypes.c_int, [PP, P, c_char_pp, ctypes.c_size_t, c_char_pp, ctypes.c_size_t]),
    "jaclip_classifier_free": (None, [P]),
    "jaclip_classifier_size": (ctypes.c_size_t, [P]),
    "jaclip_classifier_dim": (ctypes.c_size_t, [P]),
    "jaclip_classifier_template_count": (ctypes.c_size_t, [P]),
    "jaclip_classifier_label": (ctypes.c_char_p, [P, ctypes.c_size_t]),
    "jaclip_classifier_template": (ctypes.c_char_p, [P, ctypes.c_size_t]),
    "jaclip_classifier_default_scale": (ctypes.c_float, [P]),
    "jaclip_classifier_fingerprint": (ctypes.c_char_p, [P]),
    "jaclip_classifier_weights": (ctypes.c_int, [PP, P]),
    "jaclip_classifier_save": (ctypes.c_int, [P, ctypes.c_char_p]),
    "jaclip_classifier_load": (ctypes.c_int, [PP, ctypes.c_char_p, P]),
    "jaclip_classifier_scores": (ctypes.c_int, [PP, P, P]),
    "jaclip_classifier_classify_features": (ctypes.c_int, [PP, P, P, ctypes.c_float]),
    "jaclip_classifier_classify_images": (ctypes.c_int, [PP, P, P, PP, ctypes.c_size_t, ctypes.c_float]),
    "jaclip_classifier_classify_image_files": (ctypes.c_int, [PP, P, P, c_char_pp, ctypes.c_size_t, ctypes.c_float]),
    "jaclip_classifier_classify_image_buffers": (ctypes.c_int, [PP, P, P, c_char_pp, c_size_p, ctypes.c_size_t,
                                                                ctypes.c_float]),
    # approximate search (_ann.py)
    "jaclip_ann_build": (i32, [PP, P, i32, u32]),
    "jaclip_ann_load": (i32, [PP, ctypes.c_char_p, P, u32]),
    "jaclip_ann_save": (i32, [P, ctypes.c_char_p]),
    "jaclip_ann_free": (None, [P]),
    "jaclip_ann_kind_of": (i32, [P]),
    "jaclip_ann_kind_name": (ctypes.c_char_p, [i32]),
    "jaclip_ann_set_params": (i32, [P, sz, sz, sz]),
    "jaclip_ann_search": (i32, [PP, PP, P, P, sz]),
}


def _pkg_config_libdir():
    """libdir of the installed jaclip.pc, or None without pkg-config or the package."""
    exe = shutil.which("pkg-config")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--variable=libdir", "jaclip"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = out.stdout.strip()
    return libdir if out.returncode == 0 and libdir else None


def candidates():
    """Where the library is looked for, in order: JACLIP_LIBRARY, pkg-config, the system's search."""
    env = os.environ.get("JACLIP_LIBRARY")
    if env:
        # Set means "this one": no silent fall-back to another copy.
        return [os.path.join(env, SONAME) if os.path.isdir(env) else env]
    found = []
    libdir = _pkg_config_libdir()
    if libdir and os.path.exists(os.path.join(libdir, SONAME)):
        found.append(os.path.join(libdir, SONAME))
    system = ctypes.util.find_library("jaclip")
    if system:
        found.append(system)
    found.append(SONAME)
    return found


def _int_range(ctype):
    """(lowest, highest) value of a ctypes integer type; None for other types."""
    if not (isinstance(ctype, type) and issubclass(ctype, ctypes._SimpleCData)) or ctype._type_ not in "bBhHiIlLqQ":
        return None
    bits = 8 * ctypes.sizeof(ctype)
    signed = ctype(-1).value == -1
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _checked(name, fn, argtypes):
    """fn, refusing integer arguments outside their C type: ctypes would wrap -1 to SIZE_MAX and 2**64+1
    to 1 silently (topk(k=-1) returning everything, Image(max_pixels=-1) lifting the limit)."""
    ranges = [(i, r) for i, r in enumerate(map(_int_range, argtypes)) if r]
    if not ranges:
        return fn

    def call(*args):
        for i, (low, high) in ranges:
            value = args[i]
            if isinstance(value, int) and not low <= value <= high:
                raise _errors.InvalidArgumentError(
                    f"{name}: argument {i + 1} is {value}, outside the C type's range {low}..{high}", 1)
        return fn(*args)

    call.__name__ = name
    return call


class _Library:
    """The declared functions of libjaclip, integer arguments range-checked."""


def _load():
    errors = []
    for path in candidates():
        try:
            cdll = ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
            continue
        lib = _Library()
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(cdll, name)
            fn.restype, fn.argtypes = restype, argtypes
            setattr(lib, name, _checked(name, fn, argtypes))
        return lib, path
    raise ImportError("jaclip: libjaclip not found (set JACLIP_LIBRARY to its path, or install it where "
                      "pkg-config or the dynamic linker finds it): " + "; ".join(errors))


lib, path = _load()


def last_error():
    return (lib.jaclip_last_error() or b"").decode("utf-8", "replace")


def check(status):
    """Raises the Error subclass of a non-zero status with the thread's last-error detail."""
    if status != 0:
        raise _errors.from_status(status, last_error())
