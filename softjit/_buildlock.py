"""One gufunc build at a time, across threads and processes.

numba caches a gufunc in two files: the compiled core and the wrapper
that calls the core by a symbol name, which carries a number that
depends on how many functions the process compiled before.  When two
processes build the same gufunc at the same time with no cache entry,
the cache can end up holding one process's core beside the other's
wrapper, and every later process that loads the pair crashes
(segmentation fault) until the cache is deleted (numba issue #10128).
That happens with several worker processes (multiprocessing, dask,
job arrays) starting on a new install.

softjit builds each gufunc under :func:`build_lock`: a lock for the
threads of this process and, when numba caches to disk, an advisory
file lock (``flock``) beside the cache files, so a second process waits
for the first to finish and then loads the consistent pair.  The
operating system releases a file lock when its process exits, so a
process that dies while building cannot leave it held.  Where ``flock``
does not exist (Windows), only the thread lock is taken.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator

from numba.core.caching import FunctionCache

from ._options import CACHE

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

#: Name of the lock file, created in the cache directory of the gufunc cores.
LOCK_NAME = "softjit-gufunc-build.lock"

_THREAD_LOCK = threading.Lock()


def lock_path(core: Callable[..., object]) -> str | None:
    """The lock file for building a gufunc from ``core``: in the directory
    where numba caches ``core`` (shared by every process that would write
    those files), or in the temporary directory if that one cannot be
    created; None when nothing is cached to disk (nothing to race on)."""
    if not CACHE or fcntl is None:
        return None
    try:
        directory = FunctionCache(core).cache_path
        os.makedirs(directory, exist_ok=True)
    except (OSError, RuntimeError):
        directory = tempfile.gettempdir()
    return os.path.join(directory, LOCK_NAME)


@contextlib.contextmanager
def build_lock(core: Callable[..., object]) -> Iterator[None]:
    """Hold the thread lock and, when there is a disk cache, the file lock
    of :func:`lock_path` for the duration of the ``with`` block."""
    with _THREAD_LOCK:
        path = lock_path(core)
        fd = None
        if path is not None:
            try:
                # Read-only is enough for flock, and works on a lock file
                # created by another user.
                fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
            except OSError:
                fd = None  # cannot lock here: build as numba alone would
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            if fd is not None:
                os.close(fd)  # releases the lock
