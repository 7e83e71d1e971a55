"""Run the row kernels over an N-d array along any set of axes: the one
serial/parallel policy, and its thread and fork safety.

Arrays are seen as rows by :mod:`softjit._layout`; rows along memory go to
the row kernels, rows across memory to the column kernels, masked rows to
the exact kernels.  Small arrays, callers that find another thread inside
a parallel kernel, and processes forked after a thread pool started on a
layer that is not fork-safe run the serial driver.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numba
import numpy as np

from . import _first
from ._layout import (
    across_view,
    moved_last,
    read_only,
    rows_copy,
    rows_input,
    rows_shape,
    rows_view,
)
from ._options import LONG_ROW, PARALLEL_MIN_ELEMENTS, SHORT_ROW
from .kernels import columns as column_kernels
from .kernels import exact as exact_rows
from .kernels import long_rows, short_rows, transpose
from .kernels import rows as row_kernels
from .kernels.kinds import Kind

#: Held while a parallel driver runs.  numba's ``workqueue`` threading layer
#: aborts the process when two Python threads enter parallel code at once;
#: a caller that finds the lock taken runs the serial driver instead, which
#: is both safe under every threading layer and avoids oversubscribing the
#: cores when many threads (e.g. dask's threaded scheduler) call softjit.
PARALLEL_LOCK = threading.Lock()


_forked_after_parallel = False


def parallel_allowed() -> bool:
    """False in a process forked after its parent started numba's thread
    pool on a layer that is not fork-safe (GNU OpenMP kills such a child
    when it enters a parallel region; ``workqueue`` is not fork-safe
    either).  Such a child runs the serial kernels."""
    return not _forked_after_parallel


def _after_fork_in_child() -> None:
    global _forked_after_parallel
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no thread pool was started before the fork
        return
    if layer != "tbb":
        _forked_after_parallel = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run_drivers(serial, parallel, rows: int, work: int, *args) -> None:
    """Call ``parallel(*args)`` when there are several rows, ``work``
    (elements touched) reaches the parallel threshold and no other thread
    is inside a parallel kernel; else ``serial(*args)``.

    The policy of :func:`run_rowwise`, for any serial/parallel driver pair.
    """
    if (
        rows > 1
        and work >= PARALLEL_MIN_ELEMENTS
        and parallel_allowed()
        and PARALLEL_LOCK.acquire(blocking=False)
    ):
        try:
            parallel(*args)
        finally:
            PARALLEL_LOCK.release()
    else:
        serial(*args)


def _use_parallel(rows: int, n: int) -> bool:
    return (rows > 1 or n >= LONG_ROW) and rows * n >= PARALLEL_MIN_ELEMENTS and parallel_allowed()


class Drivers(NamedTuple):
    """The numba drivers of one kernel family."""

    serial: Callable[..., Any]
    parallel: Callable[..., Any]
    #: whether ``parallel`` takes the number of row blocks as last argument
    takes_blocks: bool = True


# The masked drivers handle masks; the others everything else: rows of
# medium length (one entry per kind, so that a first call compiles its own
# kind only), long rows split across threads, short rows in transposed
# blocks.
_MASKED = {
    Kind.SOFTMAX: Drivers(exact_rows.softmax_rows_serial, exact_rows.softmax_rows_parallel,
                          takes_blocks=False),
    Kind.LOG_SOFTMAX: Drivers(exact_rows.log_softmax_rows_serial,
                              exact_rows.log_softmax_rows_parallel, takes_blocks=False),
    Kind.LOGSUMEXP: Drivers(exact_rows.logsumexp_rows_serial, exact_rows.logsumexp_rows_parallel,
                            takes_blocks=False),
}
_ROWS = {
    Kind.SOFTMAX: Drivers(row_kernels.softmax_rows_serial, row_kernels.softmax_rows_parallel),
    Kind.LOG_SOFTMAX: Drivers(row_kernels.log_softmax_rows_serial,
                              row_kernels.log_softmax_rows_parallel),
    Kind.LOGSUMEXP: Drivers(row_kernels.logsumexp_rows_serial,
                            row_kernels.logsumexp_rows_parallel),
}
_LONG = Drivers(long_rows.long_rows_serial, long_rows.long_rows_parallel, takes_blocks=False)
_SHORT = Drivers(short_rows.short_rows_serial, short_rows.short_rows_parallel)
_COLUMNS = Drivers(column_kernels.columns_serial, column_kernels.columns_parallel)
_TILED_COPY = Drivers(transpose.tiled_copy_serial, transpose.tiled_copy_parallel,
                      takes_blocks=False)
_NONE = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0)}


def none(dtype: np.dtype) -> np.ndarray:
    """An empty array for the unused arguments of a driver: of the kernel
    dtype, so that every call compiles to the same signature."""
    return _NONE[dtype]


_NO_OUT = {dt: np.empty((1, 0), dt) for dt in _NONE}
#: the column kernels' unused ``out`` for logsumexp (one slab, never written)
_NO_OUT3 = {dt: np.empty((1, 0, 0), dt) for dt in _NONE}


def no_out(dtype: np.dtype) -> np.ndarray:
    """The unused ``out`` of logsumexp for a driver (one row, never written;
    writable even when ``x`` is read-only)."""
    return _NO_OUT[dtype]


#: Row blocks per thread of the parallel drivers (load balance); of the
#: largest thread count, so that no call asks numba for the current one.
_BLOCKS = 4 * numba.config.NUMBA_NUM_THREADS


def _run(drivers: Drivers, rows: int, n: int, *args: Any) -> None:
    """Call the serial or the parallel driver."""
    if _use_parallel(rows, n) and PARALLEL_LOCK.acquire(blocking=False):
        try:
            if drivers.takes_blocks:
                drivers.parallel(*args, min(rows, _BLOCKS))
            else:
                drivers.parallel(*args)
        finally:
            PARALLEL_LOCK.release()
    else:
        drivers.serial(*args)


def run_rows(kind: int, x2: np.ndarray, out2: np.ndarray, res: np.ndarray, sign: np.ndarray,
             temperature: float = 1.0, contiguous: bool = False) -> None:
    """The row kernels without a mask: softmax or log_softmax (``kind``, a
    :class:`Kind` or its int)
    of the rows of the read-only 2-D ``x2`` into ``out2`` (of its shape),
    or logsumexp into the 1-D ``res`` and ``sign`` (``out2`` then
    ``no_out(dtype)``, ``res`` and ``sign`` else ``none(dtype)``).
    ``contiguous``: the caller knows both arrays to be C-contiguous."""
    rows, n = x2.shape
    if n >= LONG_ROW:
        special = np.zeros(rows, np.uint8)
        _run(_LONG, rows, n, int(kind), x2, out2, res, sign, temperature, special)
        refine = np.flatnonzero(special == 2)
        if refine.size:
            long_rows.refine_rows(x2, refine, res)
        exact = np.flatnonzero(special == 1)
        if exact.size:
            exact_rows_at(kind, x2, out2, res, sign, temperature, exact)
        return
    if _first.use_first(kind, x2.dtype):
        first_rows(kind, x2, out2, res, sign, temperature)
        return
    special = np.zeros(rows, np.uint8)
    if n <= SHORT_ROW and (contiguous or (x2.flags.c_contiguous and out2.flags.c_contiguous)):
        _run(_SHORT, rows, n, int(kind), x2, out2, res, sign, temperature, special)
    else:
        _run(_ROWS[kind], rows, n, x2, out2, res, sign, temperature, special)
    if special.any():
        exact_rows_at(kind, x2, out2, res, sign, temperature, np.flatnonzero(special))


_FIRST = {Kind.SOFTMAX: row_kernels.first_softmax_rows,
          Kind.LOG_SOFTMAX: row_kernels.first_log_softmax_rows}


def first_rows(kind: int, x2: np.ndarray, out2: np.ndarray, res: np.ndarray, sign: np.ndarray,
               temperature: float) -> None:
    """:func:`run_rows` by the first-route kernels (:mod:`softjit._first`),
    rows of fewer than ``LONG_ROW`` elements: C-contiguous arrays go in as
    they are (one compiled signature), others through C-ordered copies."""
    rows, n = x2.shape
    xc = read_only(np.ascontiguousarray(x2))
    special = np.zeros(rows, np.uint8)
    if kind == Kind.LOGSUMEXP:
        rc = res if res.flags.c_contiguous else np.empty(rows, res.dtype)
        row_kernels.first_logsumexp_rows(xc, rc, special)
        refine = np.flatnonzero(special == 2)
        if refine.size:
            row_kernels.first_refine_rows(xc, refine, rc)
        if rc is not res:
            res[...] = rc
        sign[...] = 1.0
    else:
        oc = out2 if out2.flags.c_contiguous else np.empty((rows, n), out2.dtype)
        _FIRST[kind](xc, oc, temperature, special)
        if oc is not out2:
            out2[...] = oc
    exact = np.flatnonzero(special == 1)
    if exact.size:
        exact_rows_at(kind, x2, out2, res, sign, temperature, exact)


def exact_rows_at(kind: int, x2: np.ndarray, out2: np.ndarray, res: np.ndarray,
                  sign: np.ndarray, temperature: float, rows: np.ndarray) -> None:
    """Rows ``rows`` of :func:`run_rows`'s arrays by the exact kernels: the
    rows with a special value (a maximum that is not finite, or a NaN), which
    the vectorized kernels leave to them.  The exact kernels are compiled
    the first time an input has such rows."""
    xs = np.ascontiguousarray(x2[rows])
    if kind == Kind.LOGSUMEXP:
        rs = np.empty(len(rows), res.dtype)
        ss = np.empty(len(rows), sign.dtype)
        exact_rows.logsumexp_rows_serial(xs, None, rs, ss, None)
        res[rows] = rs
        sign[rows] = ss
        return
    os_ = np.empty_like(xs)
    _MASKED[kind].serial(xs, os_, temperature, None)
    out2[rows] = os_


#: Arrays with no 2-D view are processed slab by slab along their first axis
#: (each slab a view) when a slab has at least this many elements, instead
#: of being copied whole: reducing a middle axis needs no array-sized copy.
SLAB_MIN_ELEMENTS = 1 << 14


def _by_slabs(axes: tuple[int, ...], rows: int, n: int, *arrays: np.ndarray | None) -> bool:
    """Whether to split along axis 0: it is not reduced, slabs are large,
    and some array would otherwise need a copy."""
    x = arrays[0]
    if x.ndim < 2 or 0 in axes or x.shape[0] < 2 or rows * n // x.shape[0] < SLAB_MIN_ELEMENTS:
        return False
    return any(a is not None and rows_view(a, axes, rows, n) is None for a in arrays)


def _sub_axes(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a - 1 for a in axes)


def columns_match_rows(kind: Kind, dtype: np.dtype, n: int) -> bool:
    """Whether the column kernels give the row kernels' bits for rows of
    ``n`` elements.  They sum in the row kernels' order for float32 rows
    (but float32 softmax rows of ``LONG_ROW`` elements or more, whose sums
    are chunked) and float64 rows of at most ``SHORT_ROW`` elements; in
    another order for longer float64 rows.  Rows across memory that they
    cannot take are copied into rows along memory instead, so that a row
    gives the same bits on every route (tests/test_invariance.py)."""
    if dtype.itemsize == 8:
        return n <= SHORT_ROW
    return n < LONG_ROW or kind is not Kind.SOFTMAX


def run_rowwise(
    kind: Kind,
    x: np.ndarray,
    out: np.ndarray,
    axes: tuple[int, ...],
    temperature: float,
    mask: np.ndarray | None,
) -> None:
    """Write ``softmax`` or ``log_softmax`` (``kind``) of ``x`` into ``out``.

    ``x`` and ``out`` have the same shape and the kernel dtype; ``out`` may
    be ``x`` itself (in place).  ``mask`` is None or a boolean array of
    ``x``'s shape.
    """
    rows, n = rows_shape(x.shape, axes)
    if rows * n == 0:
        return
    if mask is None and n < LONG_ROW and _first.use_first(kind, x.dtype):
        first_rowwise(kind, x, out, axes, temperature)
        return
    across = mask is None and columns_match_rows(kind, x.dtype, n)
    x3 = across_view(x, axes, rows, n) if across else None
    o3 = None if x3 is None else x3 if out is x else across_view(out, axes, rows, n)
    if o3 is not None and o3.shape == x3.shape:  # (out may split into other slabs)
        unused = none(x.dtype)
        _run(_COLUMNS, rows, n, int(kind), read_only(x3), o3, unused, unused, temperature)
        return
    if _by_slabs(axes, rows, n, x, out, mask):
        for i in range(x.shape[0]):
            xi = x[i]
            run_rowwise(kind, xi, xi if out is x else out[i], _sub_axes(axes), temperature,
                        None if mask is None else mask[i])
        return
    x2 = rows_view(x, axes, rows, n)
    if x2 is not None and mask is None and _across_memory(x2):
        o2 = x2 if out is x else rows_view(out, axes, rows, n)
        if o2 is not None:
            _rows_via_buffers(kind, x2, o2, none(x2.dtype), none(x2.dtype), temperature)
            return
    x_copied = x2 is None
    if x_copied:
        x2 = rows_copy(x, axes, rows, n)  # writable: in place, the kernels write it
    m2 = None if mask is None else rows_input(mask, axes, rows, n)
    if out is x:
        # In place; when x had no 2-D view, x2 is a private copy: work in it
        # and copy the result back.
        o2, staged = x2, x_copied
    else:
        o2 = rows_view(out, axes, rows, n)
        staged = o2 is None
        if staged:
            o2 = np.empty((rows, n), out.dtype)
    x2 = read_only(x2)
    if m2 is None:
        unused = none(x2.dtype)
        run_rows(kind, x2, o2, unused, unused, temperature)
    else:
        _run(_MASKED[kind], rows, n, x2, o2, temperature, m2)
    if staged:
        moved_out = moved_last(out, axes)
        np.copyto(moved_out, o2.reshape(moved_out.shape))


def _c_rows(arr: np.ndarray, axes: tuple[int, ...], rows: int, n: int) -> np.ndarray | None:
    """The C-contiguous 2-D ``(rows, n)`` view of ``arr``, or None."""
    view = rows_view(arr, axes, rows, n)
    return view if view is not None and view.flags.c_contiguous else None


def first_rowwise(kind: int, x: np.ndarray, out: np.ndarray | None, axes: tuple[int, ...],
                  temperature: float, res: np.ndarray | None = None,
                  sign: np.ndarray | None = None) -> None:
    """:func:`run_rowwise` (or, with ``res``/``sign``, :func:`run_logsumexp`)
    without mask or weights on the first route (:mod:`softjit._first`), for
    every layout: rows that are not C-ordered go through a C-ordered copy
    (the column kernels give the row kernels' bits, so the result is the
    full engine's)."""
    rows, n = rows_shape(x.shape, axes)
    x2 = _c_rows(x, axes, rows, n)
    x2 = read_only(rows_copy(x, axes, rows, n) if x2 is None else x2)
    if out is None:
        first_rows(Kind.LOGSUMEXP, x2, no_out(x.dtype), res, sign, 1.0)
        return
    o2 = _c_rows(out, axes, rows, n)
    staged = o2 is None
    if staged:
        o2 = np.empty((rows, n), out.dtype)
    unused = none(x.dtype)
    first_rows(kind, x2, o2, unused, unused, temperature)
    if staged:
        moved_out = moved_last(out, axes)
        np.copyto(moved_out, o2.reshape(moved_out.shape))


#: Rows whose elements are farther apart in memory than this many bytes
#: (and that the column kernels do not take) go through row-ordered buffers
#: filled tile by tile (:mod:`softjit.kernels.transpose`) when the array has
#: at least ``PARALLEL_MIN_ELEMENTS`` elements; the row kernels would gather
#: each row element by element, a cache miss per element.
ACROSS_STRIDE_BYTES = 64
#: ... buffers of about this many bytes each (input and output), so that the
#: memory a call takes beyond its result stays small.
ACROSS_BUFFER_BYTES = 1 << 23


def _across_memory(view: np.ndarray) -> bool:
    """Whether the rows of the 2-D ``view`` lie across memory and are
    worth copying tile by tile."""
    return abs(view.strides[1]) > ACROSS_STRIDE_BYTES and view.size >= PARALLEL_MIN_ELEMENTS


def _rows_via_buffers(kind: int, x2: np.ndarray, o2: np.ndarray, res: np.ndarray,
                      sign: np.ndarray, temperature: float) -> None:
    """:func:`run_rows` on rows that lie across memory (2-D views ``x2`` and
    ``o2``, which may be the same memory), a span of rows at a time: copied
    tile by tile into a row-ordered buffer, computed by the row kernels (so
    the bits are theirs) and, for softmax and log_softmax, copied back the
    same way; logsumexp writes ``res``/``sign``."""
    rows, n = x2.shape
    tile = transpose.TILE
    step = max(1, ACROSS_BUFFER_BYTES // (n * x2.itemsize))
    if step > tile:
        step -= step % tile  # whole tiles
    span = min(step, rows)
    xb = np.empty((span, n), x2.dtype)
    ob = np.empty((span, n), x2.dtype) if kind != Kind.LOGSUMEXP else None
    for r0 in range(0, rows, step):
        r1 = min(r0 + step, rows)
        k = r1 - r0
        _run(_TILED_COPY, k, n, read_only(x2[r0:r1]), xb[:k])
        if ob is None:
            run_rows(kind, read_only(xb[:k]), no_out(x2.dtype), res[r0:r1], sign[r0:r1],
                     temperature, True)
        else:
            run_rows(kind, read_only(xb[:k]), ob[:k], res, sign, temperature, True)
            _run(_TILED_COPY, k, n, read_only(ob[:k]), o2[r0:r1])


def run_logsumexp(
    x: np.ndarray,
    b: np.ndarray | None,
    axes: tuple[int, ...],
    mask: np.ndarray | None,
    res: np.ndarray,
    sign: np.ndarray,
) -> None:
    """Write logsumexp of ``x`` over ``axes`` into the 1-D ``res`` (one entry
    per reduced slice, in C order of the kept axes) and its sign into
    ``sign``.  ``b`` (weights) and ``mask`` have ``x``'s shape or are None."""
    rows, n = rows_shape(x.shape, axes)
    if rows == 0:
        return
    if n == 0:  # sums of no terms: log(0), sign 0 (as for weights summing to 0)
        res.fill(-np.inf)
        sign.fill(0.0)
        return
    if b is None and mask is None and n < LONG_ROW and _first.use_first(Kind.LOGSUMEXP, x.dtype):
        first_rowwise(Kind.LOGSUMEXP, x, None, axes, 1.0, res, sign)
        return
    across = b is None and mask is None and columns_match_rows(Kind.LOGSUMEXP, x.dtype, n)
    x3 = across_view(x, axes, rows, n) if across else None
    if x3 is not None:
        _run(_COLUMNS, rows, n, int(Kind.LOGSUMEXP), read_only(x3), _NO_OUT3[x.dtype], res, sign,
             1.0)
        return
    if _by_slabs(axes, rows, n, x, b, mask):
        res_i = res.reshape(x.shape[0], -1)
        sign_i = sign.reshape(x.shape[0], -1)
        for i in range(x.shape[0]):
            run_logsumexp(x[i], None if b is None else b[i], _sub_axes(axes),
                          None if mask is None else mask[i], res_i[i], sign_i[i])
        return
    x2 = rows_view(x, axes, rows, n)
    if x2 is not None and b is None and mask is None and _across_memory(x2):
        _rows_via_buffers(int(Kind.LOGSUMEXP), x2, x2, res, sign, 1.0)
        return
    x2 = read_only(rows_copy(x, axes, rows, n) if x2 is None else x2)
    b2 = None if b is None else rows_input(b, axes, rows, n)
    m2 = None if mask is None else rows_input(mask, axes, rows, n)
    if b2 is None and m2 is None:
        run_rows(Kind.LOGSUMEXP, x2, no_out(x2.dtype), res, sign)
    else:
        _run(_MASKED[Kind.LOGSUMEXP], rows, n, x2, b2, res, sign, m2)
