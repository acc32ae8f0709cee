"""Ann: approximate search over an Index (jaclip_ann, faiss in the plugin libjaclip-faiss.so.1), and its
file beside the index (docs/ann.md)."""
import ctypes
import os

from . import _errors
from ._handle import Handle, Owned
from ._index import _count
from ._lib import P, check, lib
from ._tensor import FLOAT32, CTensors, take

KINDS = ("auto", "exact", "ivf-flat", "ivf-pq", "hnsw")  # jaclip_ann_kind values, in order


def _kind_value(kind):
    if kind not in KINDS:
        raise _errors.InvalidArgumentError(f"unknown ANN kind {kind!r}: one of {', '.join(KINDS)}", 1)
    return KINDS.index(kind)


class Ann(Owned):
    """An approximate-search structure over the rows of one Index: Ann.build(index) or
    Ann.load(path, index). It keeps the index alive; adding to the index makes its searches fail
    until rebuilt. Scores are exact cosines; only which rows are found is approximate. Any number of
    threads may search at once. close() or `with` frees it (never the index)."""

    def __init__(self, *_):
        raise TypeError("use Ann.build(index) or Ann.load(path, index)")

    @classmethod
    def _adopt(cls, index, make):
        self = cls.__new__(cls)
        out = P()
        with index._read() as p:
            check(make(ctypes.byref(out), p))
        self._h, self._index = Handle(out.value, lib.jaclip_ann_free, "ANN"), index
        return self

    @classmethod
    def build(cls, index, kind="auto"):
        """Builds the structure of kind over every row of index: "auto" (by size: exact below 20000
        rows, "ivf-flat" below 200000, "ivf-pq" from there), "exact", "ivf-flat", "ivf-pq" or "hnsw"."""
        value = _kind_value(kind)
        return cls._adopt(index, lambda out, p: lib.jaclip_ann_build(out, p, value, 0))

    @classmethod
    def load(cls, path, index):
        """Loads an ANN file saved for index; IndexFormatError when it is damaged, foreign or stale
        (built from other rows: rebuild it)."""
        encoded = os.fsencode(path)
        return cls._adopt(index, lambda out, p: lib.jaclip_ann_load(out, encoded, p, 0))

    @property
    def kind(self):
        with self._h as p:
            return KINDS[lib.jaclip_ann_kind_of(p)]

    def set_params(self, nprobe=0, ef_search=0, rerank=0):
        """Search knobs (0 keeps one): IVF lists visited, HNSW candidate list, IVF-PQ re-ranked
        candidates per result."""
        args = [_count(v, name) for v, name in ((nprobe, "nprobe"), (ef_search, "ef_search"), (rerank, "rerank"))]
        with self._h as p:
            check(lib.jaclip_ann_set_params(p, *args))

    def search(self, queries, k=10):
        """(indices int64 [Q, k'], scores float32 [Q, k']) as Index.search gives them, approximately:
        a row the structure misses is absent (rarely, the tail of a row is -1 with score -inf)."""
        k = _count(k, "k")
        idx, val = P(), P()
        with CTensors((queries, FLOAT32)) as (t,), self._index._read(), self._h as p:
            check(lib.jaclip_ann_search(ctypes.byref(idx), ctypes.byref(val), p, t, k))
        return take(idx), take(val)

    def save(self, path):
        """Writes the ANN file atomically (docs/ann.md); by convention INDEX + ".ann"."""
        with self._h as p:
            check(lib.jaclip_ann_save(p, os.fsencode(path)))

    def __repr__(self):
        return "<jaclip.Ann (closed)>" if self.closed else f"<jaclip.Ann {self.kind} rows={len(self._index)}>"
