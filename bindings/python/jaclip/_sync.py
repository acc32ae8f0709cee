"""sync_index: keeps an index file in step with folders, as `jaclip index sync` does and with the same
file protocol (INDEX.lock, stamps, one durable commit per batch), so the two can take turns on one
index. Embedding, normalisation and the file format are the library's."""
import ctypes
import fcntl
import hashlib
import os
import stat

from . import _errors
from ._api import Image
from ._index import Index, _label_list
from ._lib import check, lib
from ._tensor import FLOAT32, CTensors

# The file names the jaclip command's walker takes (tools/jaclip/common.c): the formats libjaclip decodes.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".webp", ".gif", ".bmp", ".dib",
                    ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif")


class _Stamp(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint64), ("mtime_ns", ctypes.c_int64), ("content_hash", ctypes.c_uint64)]



NO_TIME = -(1 << 63)  # JACLIP_TIME_NONE


def _capture_time(data):
    """The photo's EXIF capture time in ns (jaclip_image_capture_time), NO_TIME when it has none."""
    out = ctypes.c_int64()
    check(lib.jaclip_image_capture_time(ctypes.byref(out), data, len(data)))
    return out.value


def _content_hash(data):
    h = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    return h or 1  # 0 means "not recorded"


def _walk(dirs):
    """Absolute paths of the image files under dirs (each once; names starting with '.' skipped), the
    number of entries skipped, and the paths sync could not see into (folders that could not be listed,
    entries that could not be examined): rows under those are kept, not removed."""
    roots = sorted({os.path.realpath(d) for d in dirs})
    roots = [r for i, r in enumerate(roots) if not any(r.startswith(o.rstrip("/") + "/") for o in roots[:i])]
    found, skipped, unverified = [], 0, set()

    def unlisted(error):
        nonlocal skipped
        skipped += 1
        unverified.add(error.filename)

    for root in roots:
        if not os.path.isdir(root):
            raise _errors.InputOutputError(f"{root}: not a directory", 3)
        for top, subdirs, files in os.walk(root, onerror=unlisted):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and not os.path.islink(os.path.join(top, d)))
            for name in files:
                if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                path = os.path.join(top, name)
                try:
                    regular = stat.S_ISREG(os.stat(path).st_mode)
                except FileNotFoundError:  # gone, or a broken link
                    regular = False
                except OSError:
                    unverified.add(path)
                    regular = False
                if not regular:
                    skipped += 1
                    continue
                found.append(path)
    return roots, sorted(set(found)), skipped, unverified


def _under_any(path, paths):
    while path and path not in paths:
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return bool(path)


def sync_index(dirs, index_path, model, root=None, batch=16, wait=False, fp16=False, force=False):
    """Makes the index file at index_path hold exactly the image files under dirs, embedded by
    model: adds new files, removes rows of files that are gone (under dirs only), re-embeds files whose
    content changed. Labels are absolute paths, or relative to root (None: the root the index records;
    another root than it records is refused). Returns a dict of counts (added, reembedded, removed,
    unchanged, skipped, kept: rows kept unverified because a folder above them could not be listed,
    e.g. no permission; they are never removed on such grounds). Resumable after any interruption; refuses (or waits for)
    another writer; refuses an index of another model unless force."""
    if isinstance(dirs, (str, bytes, os.PathLike)):
        dirs = [dirs]
    index_path = os.fspath(index_path)
    root = _settle_root(index_path, os.path.realpath(root) if root is not None else None)
    roots, paths, skipped, unverified = _walk(dirs)
    files = {}
    for path in paths:
        label = os.path.relpath(path, root) if root else path
        if root and label.startswith(".."):
            raise _errors.InvalidArgumentError(f"{path}: not inside root {root}", 1)
        files[label] = path
    lock = open(index_path + ".lock", "a")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise _errors.InputOutputError(f"{index_path}: another jaclip is writing this index", 3) from None
        if not os.path.exists(index_path):
            with Index(model.embedding_dim, fp16=fp16) as fresh:
                fresh.fingerprint = model.fingerprint
                fresh.set_metadata("labels", "relative" if root else "absolute")
                fresh.set_metadata("root", root)
                fresh.set_metadata("orientation", "as-stored")
                fresh.save(index_path)
        with Index.load(index_path, mmap=True) as ix:
            if not force:
                ix.check_model(model)
            plan, counts = _plan(ix, files, roots, root, unverified)
            upright = ix.metadata("orientation") == "exif-transpose"  # embed as the index's rows were
        _commit(index_path, plan["gone"], None, [], [])
        counts["removed"] = len(plan["gone"])
        counts["skipped"] += skipped
        for first in range(0, len(plan["todo"]), batch):
            labels, images, stamps, times, batch_labels = [], [], [], [], []
            for label in plan["todo"][first:first + batch]:
                batch_labels.append(label)
                try:
                    with open(files[label], "rb") as f:
                        st = os.fstat(f.fileno())
                        data = f.read()
                    images.append(Image.from_bytes(data, exif_transpose=upright))
                except (OSError, _errors.Error):
                    counts["skipped"] += 1
                    continue
                labels.append(label)
                stamps.append(_Stamp(st.st_size, st.st_mtime_ns, _content_hash(data)))
                times.append(_capture_time(data))
            emb = model.encode_images(images) if images else None
            for image in images:
                image.close()
            _commit(index_path, batch_labels, emb, labels, stamps, times)
            for label in labels:
                counts["reembedded" if label in plan["old"] else "added"] += 1
        return counts
    finally:
        lock.close()


def _settle_root(index_path, root):
    """The root to label by: as given, else the one the index records; an index recording another
    root (or absolute labels) is refused, as `jaclip index sync` refuses it."""
    if not os.path.exists(index_path):
        return root
    with Index.load(index_path, mmap=True, verify=False) as ix:
        style, recorded = ix.metadata("labels"), ix.metadata("root")
    if style == "absolute" and root:
        raise _errors.InvalidArgumentError(f"{index_path}: its labels are absolute paths; drop root", 1)
    if style == "relative" and root and recorded and root != recorded:
        raise _errors.InvalidArgumentError(f"{index_path}: its labels are relative to {recorded}, not to {root}", 1)
    return root if root else recorded


def _plan(ix, files, roots, root, unverified):
    gone, todo, old = [], [], set()
    counts = {"added": 0, "reembedded": 0, "unchanged": 0, "skipped": 0, "kept": 0}
    seen = {}
    with ix._read() as p:
        for r in range(lib.jaclip_index_size(p)):
            label = lib.jaclip_index_label(p, r).decode("utf-8")
            if label not in files:
                absolute = os.path.join(root, label) if root else label
                if not any(absolute.startswith(rt.rstrip("/") + "/") for rt in roots):
                    continue
                if _under_any(absolute, unverified):
                    counts["kept"] += 1  # its folder could not be listed: the file may still be there
                else:
                    gone.append(label)
                continue
            stamp = _Stamp()
            check(lib.jaclip_index_stamp_of(ctypes.byref(stamp), p, r))
            seen.setdefault(label, []).append(stamp)
    for label, path in files.items():
        stamps = seen.get(label)
        if not stamps:
            todo.append(label)
            continue
        old.add(label)
        st, s = os.stat(path), stamps[0]
        if len(stamps) == 1 and s.content_hash and (s.size, s.mtime_ns) == (st.st_size, st.st_mtime_ns):
            counts["unchanged"] += 1
        else:
            todo.append(label)  # changed, touched or doubled: embedded again (the same rows if unchanged)
    return {"gone": gone, "todo": todo, "old": old}, counts


def _commit(index_path, remove, emb, labels, stamps, times=None):
    """One durable commit: rows of remove deleted, rows of emb appended with their labels, stamps and
    capture times (jaclip_index_replace_file_timed)."""
    if not remove and not labels:
        return
    raw_remove = _label_list(remove)
    rm = (ctypes.c_char_p * max(len(raw_remove), 1))(*raw_remove)
    raw = _label_list(labels)
    arr = (ctypes.c_char_p * max(len(raw), 1))(*raw)
    st = (_Stamp * max(len(stamps), 1))(*stamps)
    tm = (ctypes.c_int64 * len(times))(*times) if times else None
    out = ctypes.c_size_t()
    if emb is None:
        check(lib.jaclip_index_replace_file_timed(os.fsencode(index_path), rm, len(raw_remove), None, arr, st, tm,
                                                  ctypes.byref(out)))
        return
    with CTensors((emb, FLOAT32)) as (t,):
        check(lib.jaclip_index_replace_file_timed(os.fsencode(index_path), rm, len(raw_remove), t, arr, st, tm,
                                                  ctypes.byref(out)))
