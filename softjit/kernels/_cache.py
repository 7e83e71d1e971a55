"""Writing numba's on-disk cache one process at a time: gufunc builds and kernel saves.

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

numba's cache of a plain compiled function has a rarer race of the same
kind: a cache write reads the index, picks a data file name and writes
both, so two processes writing different signatures of one function at
the same moment can leave an index entry that names the other one's
machine code.  :func:`guard_cache_saves` makes every cache write of
softjit's compiled functions take a second file lock, so the writes of
different processes follow one another.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from numba.core.caching import FunctionCache
from numba.core.registry import CPUDispatcher

from .._options import CACHE

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

#: Name of the lock file, created in the cache directory of the gufunc cores.
LOCK_NAME = "softjit-gufunc-build.lock"
#: Name of the lock file that cache writes take (a separate file: a cache
#: write happens inside a gufunc build, and a process holding one flock on
#: a file would wait for itself on a second one).
SAVE_LOCK_NAME = "softjit-cache-write.lock"

_THREAD_LOCK = threading.Lock()


def lock_path(core: Callable[..., object], name: str = LOCK_NAME) -> str | None:
    """The lock file ``name`` for ``core``: in the directory where numba
    caches ``core`` (shared by every process that would write those
    files), or in the temporary directory if that one cannot be created;
    None when nothing is cached to disk (nothing to race on)."""
    if not CACHE or fcntl is None:
        return None
    try:
        directory = FunctionCache(core).cache_path
        os.makedirs(directory, exist_ok=True)
    except (OSError, RuntimeError):
        directory = tempfile.gettempdir()
    return os.path.join(directory, name)


@contextlib.contextmanager
def file_lock(path: str | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the
    duration of the ``with`` block; no lock if ``path`` is None or cannot
    be opened."""
    fd = None
    if path is not None:
        try:
            # Read-only is enough for flock, and works on a lock file
            # created by another user.
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError:
            fd = None  # cannot lock here: go on as numba alone would
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # e.g. a network file system without locks
                pass
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


@contextlib.contextmanager
def file_lock_nowait(path: str) -> Iterator[bool]:
    """Try an exclusive ``flock`` on ``path`` (created if missing) without
    waiting; the ``with`` block gets whether this process holds it (True
    too where locks do not exist: nothing to race with then)."""
    if fcntl is None:
        yield True
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError:  # a file system without locks
            pass
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def build_lock(core: Callable[..., object]) -> Iterator[None]:
    """Hold the thread lock and, when there is a disk cache, the file lock
    of :func:`lock_path` for the duration of the ``with`` block."""
    with _THREAD_LOCK, file_lock(lock_path(core)):
        yield


def compiled_functions(package: str) -> Iterator[CPUDispatcher]:
    """Every numba dispatcher defined at module level in ``package`` and
    its submodules (imported here if they were not)."""
    root = importlib.import_module(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
    for name in names:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == name:
                yield obj


def guard_cache_saves(package: str) -> None:
    """Make the cache writes of every compiled function of ``package``
    (:func:`compiled_functions`) hold the file lock ``SAVE_LOCK_NAME`` of
    their cache directory.

    numba offers no public hook around a cache write: this wraps the
    ``save_overload`` method of each dispatcher's cache object (numba calls
    it after compiling), the one place where softjit touches a private
    numba attribute; :func:`is_guarded` tells whether it is in force.
    Loading is not locked: numba replaces each file in one step.
    """
    for dispatcher in compiled_functions(package):
        _guard(dispatcher)


def is_guarded(dispatcher: Any) -> bool:
    """Whether cache writes of ``dispatcher`` take the save lock (always
    False when nothing is cached to disk or ``flock`` does not exist)."""
    save = getattr(getattr(dispatcher, "_cache", None), "save_overload", None)
    return bool(getattr(save, "locked", False))


def _guard(dispatcher: Any) -> None:
    cache = getattr(dispatcher, "_cache", None)
    save = getattr(cache, "save_overload", None)
    if save is None or getattr(save, "locked", False):
        return
    if not CACHE or fcntl is None:
        return

    def locked_save(sig: Any, data: Any) -> None:
        # the path is found here, not at import: only compiling writes
        with file_lock(lock_path(dispatcher.py_func, SAVE_LOCK_NAME)):
            save(sig, data)

    locked_save.locked = True  # type: ignore[attr-defined]
    cache.save_overload = locked_save
