"""Recycled memory for large results.

A new array of tens of megabytes comes from the operating system as fresh
pages (the C allocator maps blocks above its threshold, at most 32 MiB on
glibc, and unmaps them when they are freed), and the kernel zeroes every
page when the result is first written: for a float32 4096x4096 softmax
about 4-5 ms on top of 10-11 ms of work, on every call.  softjit keeps the
memory of large results that the caller has dropped and gives it to the
next result of the same size, as a loop that computes a new softmax each
step would want.

A pooled result is a plain ``numpy.ndarray`` whose chain of ``base``
objects ends at a lease of the block (a ctypes byte array over it, see
:func:`lease_type`); every view of it holds that chain, so the block goes
back to the pool only when the result and all views of it are gone.  At
most ``POOL_MAX_BYTES`` of free blocks are kept (results larger than that
are not pooled); :func:`release_memory` frees them.

The pool never waits for its lock: a caller (or a ``__del__`` run by the
garbage collector at any moment) that finds it taken allocates, or frees,
as numpy would.  A forked child starts with an empty pool.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import threading
from typing import Any

import numpy as np

#: Results of at least this many bytes are taken from the pool.  Smaller
#: blocks are already reused by the C allocator.
POOL_MIN_BYTES = 32 << 20

#: At most this many bytes of free blocks are kept for later results.
POOL_MAX_BYTES = 512 << 20

#: Block sizes are rounded up to a multiple of this, so that results of
#: nearly the same size share blocks (and huge pages fill whole blocks).
_GRAIN = 2 << 20

_lock = threading.Lock()
_free: list[np.ndarray] = []  # free blocks, the most recently freed last


class Lease:
    """What every lease type has (see :func:`lease_type`): every lease is an
    instance of this, and a pooled result's chain of ``base`` objects ends
    at one."""

    block: np.ndarray

    def __del__(self) -> None:
        try:
            _give_back(self.block)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def _refuse(self, *args: Any) -> Any:
        raise TypeError("a softjit memory lease cannot be copied or pickled")

    # A copy would give the block back a second time, while it is in use.
    __copy__ = __deepcopy__ = __reduce__ = __reduce_ex__ = _refuse


@functools.cache
def lease_type(nbytes: int) -> type:
    """The lease type for blocks of ``nbytes``: a ctypes byte array over the
    block (an object with a writable buffer, so that numpy's arrays on it
    behave as arrays on their own memory, their ``WRITEABLE`` flag
    included) that gives the block back to the pool when the last array
    that uses it is gone."""
    return type("Lease", (Lease, ctypes.c_char * nbytes), {})


def _on_block(block: np.ndarray, shape: tuple[int, ...], dtype: np.dtype,
              order: str) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` (C or Fortran ``order``) on the
    block, owned by a new lease of it."""
    lease = lease_type(block.nbytes).from_buffer(block)
    lease.block = block
    count = math.prod(shape)
    flat = np.frombuffer(lease, dtype, count)
    if order == "F":
        return flat.reshape(shape[::-1]).T
    return flat.reshape(shape)


def _give_back(block: np.ndarray) -> None:
    """Keep ``block`` for a later result if the pool has room."""
    if block.nbytes > POOL_MAX_BYTES or not _lock.acquire(blocking=False):
        return  # freed as numpy would free it
    try:
        _free.append(block)
        total = sum(b.nbytes for b in _free)
        while _free and total > POOL_MAX_BYTES:
            total -= _free.pop(0).nbytes  # the least recently freed first
    finally:
        _lock.release()


def _take(nbytes: int) -> np.ndarray:
    """A free block of exactly ``nbytes`` (a multiple of the grain), or a
    new one."""
    if _lock.acquire(blocking=False):
        try:
            for i in range(len(_free) - 1, -1, -1):
                if _free[i].nbytes == nbytes:
                    return _free.pop(i)
        finally:
            _lock.release()
    return np.empty(nbytes, np.uint8)


def empty(shape: tuple[int, ...], dtype: Any, order: str = "C") -> np.ndarray:
    """``numpy.empty(shape, dtype, order)``, from the pool when large.

    Examples
    --------
    >>> empty((2, 3), np.float32).shape
    (2, 3)
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if not POOL_MIN_BYTES <= nbytes <= POOL_MAX_BYTES or dtype.hasobject:
        return np.empty(shape, dtype, order=order)
    return _on_block(_take(-(-nbytes // _GRAIN) * _GRAIN), shape, dtype, order)


def empty_like(a: np.ndarray, dtype: Any = None) -> np.ndarray:
    """``numpy.empty_like(a, dtype)`` (the same shape and memory order),
    from the pool when it is large and C- or Fortran-ordered.

    Examples
    --------
    >>> a = np.ones((3, 4), order="F")
    >>> b = empty_like(a)
    >>> b.shape, b.dtype, b.flags.f_contiguous
    ((3, 4), dtype('float64'), True)
    """
    dtype = a.dtype if dtype is None else dtype
    if a.flags.c_contiguous:
        return empty(a.shape, dtype)
    if a.flags.f_contiguous:
        return empty(a.shape, dtype, order="F")
    return np.empty_like(a, dtype)


def release_memory() -> int:
    """Free the memory softjit keeps for later results.

    Large C- or Fortran-ordered results (of ``softmax``, ``log_softmax``,
    the derivatives' VJP and JVP, the losses' gradients) reuse the memory
    of earlier ones that are no longer referenced, which saves the
    operating system's zeroing of fresh pages on every call; up to 512 MiB
    of such free memory is kept.  This frees it.

    Returns
    -------
    int
        The number of bytes freed.

    Examples
    --------
    >>> import softjit
    >>> softjit.release_memory() >= 0
    True
    """
    with _lock:
        freed = sum(b.nbytes for b in _free)
        _free.clear()
    return freed


def _after_fork_in_child() -> None:
    """A forked child starts with an empty pool and a free lock (another
    thread of the parent may have held it; writing to the parent's blocks
    would copy their pages anyway)."""
    global _lock, _free
    _lock = threading.Lock()
    _free = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def pooled_bytes() -> int:
    """Bytes of free blocks held for later results."""
    with _lock:
        return sum(b.nbytes for b in _free)

