"""The first route: light kernels while the full engine compiles behind them.

The full row engine (multi-threaded drivers, strided rows, pipelined row
maxima, streaming stores, transposed blocks of short rows) takes several
seconds to compile for each operation and dtype.  Until it is in numba's
on-disk cache, rows along memory (of fewer than ``LONG_ROW`` elements, no
mask or weights) go to the first-route kernels of
:mod:`softjit.kernels.rows`: one serial loop over C-contiguous rows
through the same per-row steps, so the same bits, compiled in about a
second.  Meanwhile a background process per operation and dtype
compiles the full engine into the cache (at low priority, one group after
another) and leaves a marker file beside it; once the marker is there, calls switch to the full
engine, which then loads from the cache.  A later process finds the
markers and runs the full engine from its first call.

Rules:

* no first route and no background process where numba has no writable
  cache (nothing could be handed over), nor when the environment variable
  ``SOFTJIT_FIRST_ROUTE`` is ``0`` (or ``off``/``false``/``no``): calls then
  compile the full engine themselves, as before;
* a background process holds a file lock for its operation and dtype, so
  that several processes starting at once (a pool, dask workers) build
  each group once; the others keep the first route until the marker shows;
* the background processes end with the process that started them (they
  are stopped at exit and stop themselves when their parent is gone), and
  a forked child starts its own if it needs them;
* the state is guarded by a lock, so threads may call softjit at any time.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._options import CACHE
from .kernels.kinds import Kind

#: The environment variable that turns the first route off (``0``, ``off``,
#: ``false`` or ``no``).
ENV = "SOFTJIT_FIRST_ROUTE"
#: Seconds between looks for a marker that another process's background
#: build will write.
RECHECK_SECONDS = 2.0

_OFF = {"0", "off", "false", "no"}


def enabled() -> bool:
    """Whether the first route is in force in this process (a writable
    numba cache, and ``SOFTJIT_FIRST_ROUTE`` not set to turn it off)."""
    return CACHE and os.environ.get(ENV, "1").strip().lower() not in _OFF


_LOCK = threading.Lock()
#: (kind, dtype) groups whose full engine is known to be in the cache.
READY: set[tuple[int, np.dtype]] = set()
#: Groups whose full engine is not ready yet, with when their marker was
#: last looked for.
_PENDING: dict[tuple[int, np.dtype], float] = {}
#: Groups waiting for this process's background build, in order; the one
#: being built and its process.
_QUEUE: list[tuple[int, np.dtype]] = []
_BUILDING: list[tuple[tuple[int, np.dtype], subprocess.Popen[bytes]]] = []
_ENABLED = enabled()
_FORCED = False


def use_first(kind: int, dtype: np.dtype) -> bool:
    """Whether a call of ``kind`` on ``dtype`` rows takes the first route now
    (queueing the background build of the full engine on the first such
    call of the process)."""
    key = (int(kind), dtype)
    if _FORCED:
        return True
    if not _ENABLED or key in READY:
        return False
    with _LOCK:
        return _first_locked(key)


def _first_locked(key: tuple[int, np.dtype]) -> bool:
    if key in READY:
        return False
    _poll_locked()
    now = time.monotonic()
    looked = _PENDING.get(key)
    if looked is None:  # the first call of this group in this process
        if marker(*key).exists():
            READY.add(key)
            return False
        _PENDING[key] = now
        _QUEUE.append(key)
        _poll_locked()
        return True
    if now - looked < RECHECK_SECONDS:
        return True
    _PENDING[key] = now
    if marker(*key).exists():
        del _PENDING[key]
        READY.add(key)
        return False
    return True  # being built here or by another process


def _poll_locked() -> None:
    """Reap a finished background build and start the next queued one (one
    at a time: they compile with one core each)."""
    if _BUILDING:
        key, worker = _BUILDING[0]
        if worker.poll() is None:
            return
        _BUILDING.clear()
        if marker(*key).exists():
            _PENDING.pop(key, None)
            READY.add(key)
    while _QUEUE and not _BUILDING:
        key = _QUEUE.pop(0)
        worker = _start(*key)
        if worker is not None:
            _BUILDING.append((key, worker))


@contextmanager
def first_route_only() -> Iterator[None]:
    """Within the ``with`` block, every call that the first route serves
    takes it, whatever is compiled, and no background build starts: to
    compare the first route with the full engine (its bits are the same)."""
    global _FORCED
    with _LOCK:
        before, _FORCED = _FORCED, True
    try:
        yield
    finally:
        with _LOCK:
            _FORCED = before


@contextmanager
def full_engine() -> Iterator[None]:
    """Within the ``with`` block, calls of this thread and every other run
    the full engine (compiling it if needed): for timing the engine
    itself, as the benchmark does."""
    global _ENABLED
    with _LOCK:
        before, _ENABLED = _ENABLED, False
    try:
        yield
    finally:
        with _LOCK:
            _ENABLED = before


def status() -> dict[str, str]:
    """The state of each (operation, dtype) group this process has used:
    ``"ready"`` (the full engine runs) or ``"building"`` (the first route
    runs); the first route's on/off state under ``"first route"``.

    Examples
    --------
    >>> status()["first route"] in ("on", "off")
    True
    """
    out = {"first route": "on" if _ENABLED else "off"}
    with _LOCK:
        for kind, dt in sorted(READY, key=str):
            out[f"{Kind(kind).name.lower()} {dt}"] = "ready"
        for kind, dt in sorted(_PENDING, key=str):
            out[f"{Kind(kind).name.lower()} {dt}"] = "building"
    return out


def wait(timeout: float = 900.0) -> bool:
    """Wait until this process's background builds (those queued too) have
    ended, at most ``timeout`` seconds; return whether none is left."""
    deadline = time.monotonic() + timeout
    while True:
        with _LOCK:
            _poll_locked()
            worker = _BUILDING[0][1] if _BUILDING else None
        if worker is None:
            return True
        try:
            worker.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False


# ------------------------------------------------------------- the markers


def _source_key() -> str:
    """A digest of what the compiled kernels depend on: the kernels'
    source, numba's and Python's versions and the CPU that numba compiles
    for (the parts of numba's own cache key)."""
    import numba
    from numba.core.registry import cpu_target

    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([*(here / "kernels").glob("*.py"), here / "_options.py"]):
        digest.update(path.read_bytes())
    magic = cpu_target.target_context.codegen().magic_tuple()
    digest.update(repr((numba.__version__, sys.version, magic)).encode())
    return digest.hexdigest()[:16]


_KEY: list[str] = []


def _cache_dir() -> Path:
    from numba.core.caching import FunctionCache

    from .kernels import rows

    return Path(FunctionCache(rows.first_softmax_rows.py_func).cache_path)


def marker(kind: int, dtype: np.dtype) -> Path:
    """The file that says the full engine of ``kind`` on ``dtype`` is in
    numba's cache (beside the cache files, so that clearing the cache
    clears it too)."""
    if not _KEY:
        _KEY.append(_source_key())
    name = f"softjit-engine-{Kind(kind).name.lower()}-{np.dtype(dtype).name}-{_KEY[0]}.ready"
    return _cache_dir() / name


def mark_ready(kind: int, dtype: np.dtype) -> None:
    """Write the marker of ``kind`` on ``dtype`` (after its full engine was
    compiled into the cache)."""
    path = marker(kind, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


# ------------------------------------------------------ background builds

_WORKERS: list[subprocess.Popen[bytes]] = []


def _start(kind: int, dtype: np.dtype) -> subprocess.Popen[bytes] | None:
    """Start the background build of ``kind`` on ``dtype``; None if the
    process cannot be started."""
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, **{ENV: "0"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    code = (f"from softjit import _first; "
            f"raise SystemExit(_first.build({int(kind)}, {np.dtype(dtype).name!r}, {os.getpid()}))")
    try:
        worker = subprocess.Popen([sys.executable, "-c", code], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    except OSError:
        return None
    _WORKERS.append(worker)
    return worker


def _stop_workers() -> None:
    """Stop this process's background builds (at exit): a build cut short
    writes no marker, and numba replaces its cache files whole."""
    for w in _WORKERS:
        if w.poll() is None:
            w.terminate()
    for w in _WORKERS:
        try:
            w.wait(5)
        except subprocess.TimeoutExpired:
            w.kill()


def _after_fork_in_child() -> None:
    # The parent's background processes are not this process's children:
    # a group still pending here is queued anew on its next call.
    global _LOCK
    _LOCK = threading.Lock()
    _WORKERS.clear()
    _BUILDING.clear()
    _QUEUE.clear()
    _PENDING.clear()


atexit.register(_stop_workers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: Exit status of a build that found another process building its group.
BUSY = 3


def build(kind: int, dtype: str, parent: int | None = None, nice: bool = True) -> int:
    """Compile the full engine of ``kind`` on ``dtype`` into numba's cache
    and write its marker (the body of a background process; runs with the
    first route off).  ``parent``: stop if that process is gone; ``nice``:
    at low priority.  Returns 0, or :data:`BUSY` when another process holds
    the group's lock."""
    from .cli import warm
    from .kernels._cache import file_lock_nowait

    if nice and hasattr(os, "nice"):
        os.nice(10)  # the user's own work first
    with file_lock_nowait(str(marker(kind, dtype)) + ".lock") as held:
        if not held:
            return BUSY
        for run in warm.engine_calls(Kind(kind), dtype):
            if parent is not None and os.getppid() != parent:
                return 1  # the process that wanted it is gone
            run()
        mark_ready(kind, dtype)
    return 0
