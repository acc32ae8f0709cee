"""Ownership of one C handle: freed once, by close() or by the garbage collector, never while a call
that uses it is running, and never used after it is freed."""
import threading
import weakref

from ._errors import ClosedError


class Handle:
    __slots__ = ("_ptr", "_kind", "_lock", "_users", "_closing", "_finalizer", "__weakref__")

    def __init__(self, ptr, free, kind):
        self._ptr, self._kind = ptr, kind
        self._lock = threading.Lock()
        self._users, self._closing = 0, False
        # finalize also runs at interpreter exit, so a handle nobody closed is still freed once.
        self._finalizer = weakref.finalize(self, free, ptr) if free else None

    @property
    def closed(self):
        return self._closing

    def __enter__(self):
        with self._lock:
            if self._closing:
                raise ClosedError(f"the {self._kind} is closed", 1)
            self._users += 1
            return self._ptr

    def __exit__(self, *exc):
        with self._lock:
            self._users -= 1
            free_now = self._closing and self._users == 0
        if free_now:
            self._release()

    def close(self):
        """Frees the handle now, or as soon as the calls running on it (in other threads) return."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            free_now = self._users == 0
        if free_now:
            self._release()

    def _release(self):
        self._ptr = None
        if self._finalizer is not None:
            self._finalizer()


class Owned:
    """close(), `closed` and `with` for a binding object that owns its C handle in self._h."""

    @property
    def closed(self):
        return self._h.closed

    def close(self):
        """Frees the C object now, or when the calls running on it in other threads return; later calls
        raise jaclip.ClosedError."""
        self._h.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
