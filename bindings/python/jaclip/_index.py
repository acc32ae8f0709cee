"""Index: the exact cosine-similarity index (jaclip_index) and its file (docs/index-format.md)."""
import collections
import contextlib
import ctypes
import operator
import os
import threading

from . import _errors
from ._api import _text_bytes
from ._handle import Handle, Owned
from ._lib import P, check, lib
from ._tensor import FLOAT32, CTensors, call, take

INDEX_MMAP, INDEX_NO_CHECKSUM = 1, 2
ROWS_FLOAT32, ROWS_FLOAT16 = 0, 1
FINGERPRINT_ALLOW_UNKNOWN = 1

Hit = collections.namedtuple("Hit", "label score row")
# Index.duplicates: the groups of one page and the number of groups in all pages.
Duplicates = collections.namedtuple("Duplicates", "total groups")
DuplicateGroup = collections.namedtuple("DuplicateGroup", "exact hits")


def _count(value, what):
    """A non-negative int for a size_t argument: ctypes would wrap -1 to SIZE_MAX silently."""
    value = operator.index(value)
    if value < 0:
        raise _errors.InvalidArgumentError(f"{what} must not be negative, got {value}", 1)
    return value


def _labels(labels, tensor):
    """A char*[] of the labels (kept alive by the returned tuple) after checking they match the rows."""
    if isinstance(labels, (str, bytes)):
        raise TypeError("expected a list of labels, not a single label")
    raw = [_text_bytes(label) for label in labels]
    for i, b in enumerate(raw):
        if b"\0" in b:  # the C API takes NUL-terminated labels: it would silently cut this one short
            raise _errors.InvalidArgumentError(f"label {i} contains a NUL byte", 1)
    # The C API reads one label per row and cannot know the list's length, so a short list would be read
    # past its end; a tensor that is not 2-D is refused by the library before it reads any label.
    if lib.jaclip_tensor_ndim(tensor) == 2 and lib.jaclip_tensor_dim(tensor, 0) != len(raw):
        raise _errors.InvalidArgumentError(f"{lib.jaclip_tensor_dim(tensor, 0)} rows but {len(raw)} labels", 1)
    return (ctypes.c_char_p * max(len(raw), 1))(*raw), raw


def _label_list(labels):
    if isinstance(labels, (str, bytes)):
        raise TypeError("expected a list of labels, not a single label")
    raw = [_text_bytes(label) for label in labels]
    if any(b"\0" in b for b in raw):
        raise _errors.InvalidArgumentError("a label contains a NUL byte", 1)
    return raw


class _SharedLock:
    """Many readers or one writer: add() reallocates the rows and labels that search(), label() and
    save() read, and ctypes runs all of them without the GIL. A waiting writer holds off new readers, so
    a stream of searches cannot starve add() (which is why the binding never nests two reads in one
    thread)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers, self._writers, self._writing = 0, 0, False  # _writers: waiting or writing

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            while self._writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        with self._cond:
            self._writers += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writers -= 1
                self._writing = False
                self._cond.notify_all()


def _time_ns(value):
    if hasattr(value, "timestamp"):  # a datetime (naive ones are local time, as datetime.timestamp says)
        return int(round(value.timestamp() * 1e9))
    return int(value)


def _search_options(offset, threshold, folder, after, before, types):
    """A jaclip_search_options for these filters, or None when there are none (the caller frees it)."""
    if not offset and threshold is None and folder is None and after is None and before is None and not types:
        return None
    opts = P()
    check(lib.jaclip_search_options_create(ctypes.byref(opts)))
    try:
        check(lib.jaclip_search_options_set_offset(opts, _count(offset, "offset") if offset else 0))
        if threshold is not None:
            check(lib.jaclip_search_options_set_threshold(opts, float(threshold)))
        if folder is not None:
            check(lib.jaclip_search_options_set_folder(opts, _text_bytes(os.fspath(folder))))
        if after is not None or before is not None:
            lo = -(1 << 63) if after is None else _time_ns(after)
            hi = (1 << 63) - 1 if before is None else _time_ns(before)
            check(lib.jaclip_search_options_set_time_range(opts, lo, hi))
        for t in [types] if isinstance(types, str) else (types or []):
            check(lib.jaclip_search_options_add_file_type(opts, _text_bytes(t)))
    except BaseException:
        lib.jaclip_search_options_free(opts)
        raise
    return opts


class Index(Owned):
    """An exact cosine-similarity index of labelled rows (jaclip_index): Index(dim) for an empty one,
    Index.load(path) for a saved one. Rows are stored L2-normalised. Any number of threads may search
    one index at once; add() waits for them. close() or `with` frees it."""

    def __init__(self, dim, fp16=False):
        """fp16=True stores rows as float16 (half the memory; scores within about 1e-3)."""
        dim = _count(dim, "dim")
        self._adopt(lambda out: lib.jaclip_index_create(out, dim))
        if fp16:
            with self._h as p:
                check(lib.jaclip_index_set_row_format(p, ROWS_FLOAT16))

    def _adopt(self, make):
        out = P()
        check(make(ctypes.byref(out)))
        self._h, self._lock = Handle(out.value, lib.jaclip_index_free, "index"), _SharedLock()

    @classmethod
    def load(cls, path, mmap=False, verify=True):
        """Opens an index file. mmap: use the rows where they lie in the page cache instead of copying
        them (the file must not be truncated meanwhile); verify=False skips the CRC32 of the vector data
        (lengths and labels are still checked). IndexFormatError for a foreign, truncated or corrupted
        file."""
        flags = (INDEX_MMAP if mmap else 0) | (0 if verify else INDEX_NO_CHECKSUM)
        encoded = os.fsencode(path)
        self = cls.__new__(cls)
        self._adopt(lambda out: lib.jaclip_index_load(out, encoded, flags))
        return self

    @staticmethod
    def append_file(path, embeddings, labels):
        """Appends rows (float32 [N, dim]) with their labels to an existing index file in place, durably
        (an interruption leaves the old rows, or the old rows plus these); no Index object is needed."""
        with CTensors((embeddings, FLOAT32)) as (t,):
            arr, _keep = _labels(labels, t)
            check(lib.jaclip_index_append_file(os.fsencode(path), t, arr))

    @staticmethod
    def merge(path, shards, unique_labels=False):
        """Writes one index file at path with the rows of the index files `shards`, in order
        (jaclip_index_merge): each shard's checksums verified, path replaced only once complete.
        unique_labels: refuse (InvalidArgumentError) a label occurring twice. IndexFormatError names a
        damaged shard; ShapeError one of another width."""
        if isinstance(shards, (str, bytes, os.PathLike)):
            raise TypeError("expected a list of shard paths, not a single path")
        raw = [os.fsencode(s) for s in shards]
        arr = (ctypes.c_char_p * max(len(raw), 1))(*raw)
        check(lib.jaclip_index_merge(os.fsencode(path), arr, len(raw), 1 if unique_labels else 0))

    @staticmethod
    def remove_file(path, labels):
        """Deletes every row labelled one of labels from the index file at path, durably (one commit);
        returns how many rows went."""
        raw = _label_list(labels)
        out = ctypes.c_size_t()
        check(lib.jaclip_index_remove_file(os.fsencode(path), (ctypes.c_char_p * max(len(raw), 1))(*raw), len(raw),
                                           ctypes.byref(out)))
        return out.value

    @staticmethod
    def compact_file(path, fingerprint=None):
        """Rewrites the index file at path without its deleted rows, atomically; records fingerprint if
        given."""
        check(lib.jaclip_index_compact_file(os.fsencode(path), None if fingerprint is None else
                                            _text_bytes(fingerprint)))

    def remove(self, labels):
        """Removes every row labelled one of labels (later rows move down); returns how many went."""
        raw = _label_list(labels)
        out = ctypes.c_size_t()
        with _Using(self._lock.exclusive(), self._h) as p:
            check(lib.jaclip_index_remove(p, (ctypes.c_char_p * max(len(raw), 1))(*raw), len(raw), ctypes.byref(out)))
        return out.value

    @property
    def fp16(self):
        """True when rows are stored as float16."""
        with self._read() as p:
            return lib.jaclip_index_row_format(p) == ROWS_FLOAT16

    @property
    def fingerprint(self):
        """The fingerprint of the model that made the rows (Model.fingerprint), or None if not recorded."""
        with self._read() as p:
            raw = lib.jaclip_index_fingerprint(p)
        return raw.decode("ascii") or None

    @fingerprint.setter
    def fingerprint(self, value):
        with _Using(self._lock.exclusive(), self._h) as p:
            check(lib.jaclip_index_set_fingerprint(p, None if value is None else _text_bytes(value)))

    @property
    def deleted_rows(self):
        """Rows deleted in the loaded file but still stored there (Index.compact_file drops them)."""
        with self._read() as p:
            return lib.jaclip_index_deleted_rows(p)

    def metadata(self, key):
        """The index's metadata value of key (str), or None: "root" (the folder relative labels start
        from), "labels" ("absolute" or "relative"), "orientation" ("exif-transpose" or "as-stored")."""
        with self._read() as p:
            raw = lib.jaclip_index_metadata(p, _text_bytes(key))
        return None if raw is None else raw.decode("utf-8")

    def set_metadata(self, key, value):
        """Sets (or, with None, removes) a metadata value in memory; saved by save()."""
        with _Using(self._lock.exclusive(), self._h) as p:
            check(lib.jaclip_index_set_metadata(p, _text_bytes(key), None if value is None else _text_bytes(value)))

    @staticmethod
    def set_metadata_file(path, key, value):
        """Sets (or, with None, removes) a metadata value in the index file at path, in one durable commit."""
        check(lib.jaclip_index_set_metadata_file(os.fsencode(path), _text_bytes(key),
                                                 None if value is None else _text_bytes(value)))

    def check_model(self, model, allow_unknown=True):
        """ModelMismatchError unless the index records model's fingerprint (or none, if allow_unknown)."""
        fp = model.fingerprint.encode("ascii")
        with self._read() as p:
            check(lib.jaclip_index_check_fingerprint(p, fp, FINGERPRINT_ALLOW_UNKNOWN if allow_unknown else 0))

    def _read(self):
        return _Using(self._lock.shared(), self._h)

    # -- rows
    def add(self, embeddings, labels):
        """Appends float32 [N, dim] rows (copied, L2-normalised) with one str label each; nothing is
        added on failure."""
        with CTensors((embeddings, FLOAT32)) as (t,):
            arr, _keep = _labels(labels, t)
            with _Using(self._lock.exclusive(), self._h) as p:
                check(lib.jaclip_index_add(p, t, arr))

    def __len__(self):
        with self._read() as p:
            return lib.jaclip_index_size(p)

    @property
    def dim(self):
        with self._read() as p:
            return lib.jaclip_index_dim(p)

    def label(self, i):
        """The label of row i; NotFoundError past the end."""
        i = operator.index(i)
        with self._read() as p:
            # Compared here, not in C: ctypes would wrap 2**64 + 1 to row 1. Copied before add() can move it.
            raw = lib.jaclip_index_label(p, i) if 0 <= i < lib.jaclip_index_size(p) else None
        if raw is None:
            raise _errors.NotFoundError(f"row {i} is not in the index", 13)
        return raw.decode("utf-8")

    def row_time(self, i):
        """(ns since the epoch or None, source) of row i: the time date filters compare
        (jaclip_index_row_time): source "exif" (the photo's capture time recorded at build/sync),
        "mtime" (the file's modification time from its stamp) or None (neither recorded)."""
        i = operator.index(i)
        out, source = ctypes.c_int64(), ctypes.c_int()
        with self._read() as p:
            if not 0 <= i < lib.jaclip_index_size(p):
                raise _errors.NotFoundError(f"row {i} is not in the index", 13)
            check(lib.jaclip_index_row_time(ctypes.byref(out), ctypes.byref(source), p, i))
        return (None, None) if source.value == 0 else (out.value, ("exif", "mtime")[source.value - 1])

    def labels(self):
        """Every label, in row order."""
        with self._read() as p:
            return [lib.jaclip_index_label(p, i).decode("utf-8") for i in range(lib.jaclip_index_size(p))]

    def find(self, label):
        """The lowest row labelled `label`; NotFoundError if none is."""
        raw = _text_bytes(label)
        if b"\0" in raw:
            raise _errors.NotFoundError("no label contains a NUL byte", 13)
        out = ctypes.c_size_t()
        with self._read() as p:
            check(lib.jaclip_index_find_label(ctypes.byref(out), p, raw))
        return out.value

    def embeddings(self, first=0, count=None):
        """float32 [count, dim] copy of rows first.. as stored (unit length); all from first by default."""
        first = _count(first, "first")
        with self._read() as p:
            if count is None:
                count = max(lib.jaclip_index_size(p) - first, 0)
            return call(lib.jaclip_index_embeddings, p, first, _count(count, "count"))

    # -- search
    def search(self, queries, k=10, *, offset=0, threshold=None, folder=None, after=None, before=None,
               types=None):
        """(indices int64 [Q, k'], scores float32 [Q, k']) of the k rows most cosine-similar to each row
        of queries (float32 [Q, dim]), best first, ties to the lower row; k' = min(k, len(self)).

        Filter, then rank (jaclip_index_search_with): folder (rows whose label lies under it, as labels
        are stored), after / before (the row's time, row_time(): the photo's EXIF capture time, else the
        file's modification time from its stamp; datetime, or ns since the epoch; after inclusive,
        before exclusive), types (extensions, e.g. ["jpg", "png"]). k results
        come back whenever k rows pass. offset skips the best ones (pages); threshold (a cosine) turns
        lower results into row -1, score -inf. Then k' = min(k, passing rows - offset)."""
        k = _count(k, "k")
        idx, val = P(), P()
        opts = _search_options(offset, threshold, folder, after, before, types)
        try:
            with CTensors((queries, FLOAT32)) as (t,), self._read() as p:
                check(lib.jaclip_index_search_with(ctypes.byref(idx), ctypes.byref(val), p, t, k, opts))
        finally:
            lib.jaclip_search_options_free(opts)
        return take(idx), take(val)

    def duplicates(self, threshold=0.95, *, exact_only=False, offset=0, limit=0):
        """Groups of duplicate rows (jaclip_index_duplicates): rows whose file stamps record the same
        content hash (exact) joined with rows at cosine >= threshold (near; 0.5 to 1). Groups ordered by
        their first row; offset / limit (0: all) choose a page. Returns Duplicates(total, groups), each
        group DuplicateGroup(exact, hits), hits Hit(label, score: cosine to the group's first, row)."""
        opts, d = P(), P()
        check(lib.jaclip_dupes_options_create(ctypes.byref(opts)))
        try:
            check(lib.jaclip_dupes_options_set_threshold(opts, float(threshold)))
            check(lib.jaclip_dupes_options_set_exact_only(opts, 1 if exact_only else 0))
            check(lib.jaclip_dupes_options_set_page(opts, _count(offset, "offset"), _count(limit, "limit")))
            with self._read() as p:
                check(lib.jaclip_index_duplicates(ctypes.byref(d), p, opts))
                try:
                    groups = []
                    row, score = ctypes.c_size_t(), ctypes.c_float()
                    for g in range(lib.jaclip_dupes_count(d)):
                        hits = []
                        for j in range(lib.jaclip_dupes_group_size(d, g)):
                            check(lib.jaclip_dupes_member(ctypes.byref(row), ctypes.byref(score), d, g, j))
                            label = lib.jaclip_index_label(p, row.value).decode("utf-8")
                            hits.append(Hit(label, float(score.value), int(row.value)))
                        groups.append(DuplicateGroup(bool(lib.jaclip_dupes_group_exact(d, g)), hits))
                    return Duplicates(int(lib.jaclip_dupes_total(d)), groups)
                finally:
                    lib.jaclip_dupes_free(d)
        finally:
            lib.jaclip_dupes_options_free(opts)

    def _hits(self, features, k, **filters):
        idx, val = self.search(features, k, **filters)
        with self._read() as p:
            # The rows found are still there: a concurrent add() only appends.
            return [Hit(lib.jaclip_index_label(p, int(i)).decode("utf-8"), float(v), int(i))
                    for i, v in zip(idx.tolist()[0], val.tolist()[0]) if i >= 0]

    def search_text(self, model, text, k=10, force=False, **filters):
        """The k rows best matching one text, encoded by model: a list of Hit(label, score, row).
        ModelMismatchError if the index records another model's fingerprint, unless force. filters:
        those of search() (offset, threshold, folder, after, before, types)."""
        if not isinstance(text, (str, bytes)):
            raise TypeError(f"expected one text, not {type(text).__name__}")
        if not force:
            self.check_model(model)
        return self._hits(model.encode_texts([text]), k, **filters)

    def search_image(self, model, image, k=10, force=False, **filters):
        """The k rows best matching one image (path, bytes or jaclip.Image), encoded by model: a list of
        Hit(label, score, row). ModelMismatchError as search_text. A path or bytes is turned upright by
        its EXIF orientation when the index records that its rows were (orientation exif-transpose)."""
        if not force:
            self.check_model(model)
        if self.metadata("orientation") == "exif-transpose" and isinstance(image, (str, bytes, bytearray, os.PathLike)):
            # embedded upright, as the index's rows were (a jaclip.Image is taken as given)
            from ._api import Image
            loaded = (Image.from_bytes(image, exif_transpose=True) if isinstance(image, (bytes, bytearray))
                      else Image(image, exif_transpose=True))
            try:
                return self._hits(model.encode_images([loaded]), k, **filters)
            finally:
                loaded.close()
        return self._hits(model.encode_images([image]), k, **filters)

    # -- files
    def save(self, path):
        """Writes the whole index to path atomically (a temporary file renamed over it) and durably."""
        with self._read() as p:
            check(lib.jaclip_index_save(p, os.fsencode(path)))

    def __repr__(self):
        if self.closed:
            return "<jaclip.Index (closed)>"
        return f"<jaclip.Index dim={self.dim} rows={len(self)}>"


class _Using:
    """Enters a lock context, then a handle (giving its pointer); leaves both in reverse."""

    def __init__(self, lock_cm, handle):
        self._lock_cm, self._handle = lock_cm, handle

    def __enter__(self):
        self._lock_cm.__enter__()
        try:
            return self._handle.__enter__()
        except BaseException:
            self._lock_cm.__exit__(None, None, None)
            raise

    def __exit__(self, *exc):
        try:
            self._handle.__exit__()
        finally:
            self._lock_cm.__exit__(None, None, None)
