"""Run the row kernels over an N-d array along any set of axes.

The reduced axes are moved last and the array is seen as a 2-D
``(rows, n)`` array: a view when the memory layout allows it (any
C-contiguous array reduced over trailing axes, transposed and many strided
inputs), otherwise a contiguous copy.  Rows that lie across memory (an
axis-0 reduction of a C-ordered array, the last axis of a Fortran-ordered
one, middle axes) go to the column kernels as an ``(a, n, b)`` view
instead (:func:`across_view`).  Small arrays, and callers that find
another thread inside a parallel kernel, run the serial driver.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numba
import numpy as np

from . import _columns, _fastrows, _rows
from ._options import (
    LONG_ROW,
    PARALLEL_LOCK,
    PARALLEL_MIN_ELEMENTS,
    SHORT_ROW,
    parallel_allowed,
)


def moved_last(arr: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """A view of ``arr`` with ``axes`` (sorted) moved to the end."""
    keep = [a for a in range(arr.ndim) if a not in axes]
    return arr.transpose(keep + list(axes))


def same_layout(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` are the same elements of the same buffer."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
    )


def rows_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, int]:
    """``(rows, n)``: the number of reduced slices and their length."""
    n = math.prod(shape[a] for a in axes)
    rows = math.prod(s for i, s in enumerate(shape) if i not in axes)
    return rows, n


def reshaped_view(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``arr`` reshaped to ``shape`` without a copy, or None if that needs one.

    Examples
    --------
    >>> a = np.zeros((4, 6))
    >>> reshaped_view(a, (2, 2, 6)).shape, reshaped_view(a.T, (24,)) is None
    ((2, 2, 6), True)
    """
    try:
        return np.reshape(arr, shape, copy=False)
    except ValueError:
        return None
    except TypeError:  # numpy < 2.1: no copy= argument
        view = arr.view()
        try:
            view.shape = shape
        except AttributeError:
            return None
        return view


def rows_view(arr: np.ndarray, axes: tuple[int, ...], rows: int, n: int) -> np.ndarray | None:
    """``arr`` as a 2-D ``(rows, n)`` view, or None if that needs a copy."""
    if axes == (arr.ndim - 1,) and arr.flags.c_contiguous:
        return arr.reshape(rows, n)  # the common case, without the general path
    return reshaped_view(moved_last(arr, axes), (rows, n))


def rows_copy(arr: np.ndarray, axes: tuple[int, ...], rows: int, n: int) -> np.ndarray:
    """A C-contiguous ``(rows, n)`` copy of ``arr`` (``axes`` last)."""
    return np.ascontiguousarray(moved_last(arr, axes)).reshape(rows, n)


def read_only(arr: np.ndarray) -> np.ndarray:
    """``arr``, or a read-only view of it.

    numba types read-only and writable arrays apart and compiles every
    kernel once for each; giving the kernels their inputs read-only
    always means one compilation serves both (the view costs well under
    a microsecond).
    """
    if arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return arr


def rows_input(arr: np.ndarray, axes: tuple[int, ...], rows: int, n: int) -> np.ndarray:
    """A kernel input: ``arr`` as a read-only 2-D ``(rows, n)`` array
    (see :func:`read_only`), copied only when needed."""
    view = rows_view(arr, axes, rows, n)
    return read_only(rows_copy(arr, axes, rows, n) if view is None else view)


def _use_parallel(rows: int, n: int) -> bool:
    return (rows > 1 or n >= LONG_ROW) and rows * n >= PARALLEL_MIN_ELEMENTS and parallel_allowed()


class Drivers(NamedTuple):
    """The numba drivers of one kernel family."""

    serial: Callable[..., Any]
    parallel: Callable[..., Any]
    #: the long-row drivers (rows of at least LONG_ROW elements, each
    #: split into chunks; in parallel, the chunks spread over the threads;
    #: the arguments of ``serial``), or None
    long_serial: Callable[..., Any] | None = None
    long_parallel: Callable[..., Any] | None = None
    #: whether ``parallel`` takes the number of row blocks as last argument
    takes_blocks: bool = True


# The masked drivers handle masks; the fast ones everything else, long rows
# split across threads and short rows in transposed blocks.
_MASKED = {
    "softmax": Drivers(_rows.softmax_rows_serial, _rows.softmax_rows_parallel,
                       takes_blocks=False),
    "log_softmax": Drivers(_rows.log_softmax_rows_serial, _rows.log_softmax_rows_parallel,
                           takes_blocks=False),
    "logsumexp": Drivers(_rows.logsumexp_rows_serial, _rows.logsumexp_rows_parallel,
                         takes_blocks=False),
}
_FAST = Drivers(_fastrows.rows_serial, _fastrows.rows_parallel, _fastrows.long_rows_serial,
                _fastrows.long_rows_parallel)
_SHORT = Drivers(_fastrows.short_rows_serial, _fastrows.short_rows_parallel)
_COLUMNS = Drivers(_columns.columns_serial, _columns.columns_parallel)
_KIND = {"softmax": 0, "log_softmax": 1, "logsumexp": 2}
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
    """Call the serial, parallel or long-row driver."""
    long = drivers.long_serial is not None and n >= LONG_ROW
    if _use_parallel(rows, n) and PARALLEL_LOCK.acquire(blocking=False):
        try:
            if long:
                drivers.long_parallel(*args)
            elif drivers.takes_blocks:
                drivers.parallel(*args, min(rows, _BLOCKS))
            else:
                drivers.parallel(*args)
        finally:
            PARALLEL_LOCK.release()
    elif long:
        drivers.long_serial(*args)
    else:
        drivers.serial(*args)


def run_rows(kind: int, x2: np.ndarray, out2: np.ndarray, res: np.ndarray, sign: np.ndarray,
             temperature: float = 1.0, contiguous: bool = False) -> None:
    """The row kernels without a mask: softmax (kind 0) or log_softmax (1)
    of the rows of the read-only 2-D ``x2`` into ``out2`` (of its shape),
    or logsumexp (2) into the 1-D ``res`` and ``sign`` (``out2`` then
    ``no_out(dtype)``, ``res`` and ``sign`` else ``none(dtype)``).
    ``contiguous``: the caller knows both arrays to be C-contiguous."""
    rows, n = x2.shape
    if n <= SHORT_ROW and (contiguous or (x2.flags.c_contiguous and out2.flags.c_contiguous)):
        _run(_SHORT, rows, n, kind, x2, out2, res, sign, temperature)
    else:
        _run(_FAST, rows, n, kind, x2, out2, res, sign, temperature)


def across_view(arr: np.ndarray, axes: tuple[int, ...], rows: int, n: int) -> np.ndarray | None:
    """``arr`` as a 3-D ``(a, n, b)`` view for the column kernels
    (:mod:`softjit._columns`), or None: ``a`` slabs of ``b > 1`` rows of
    ``n > 1`` elements, the rows lying across memory
    (unit stride along the last axis).  Such are an axis-0 reduction of a
    C-ordered matrix, a last-axis one of a Fortran-ordered matrix and a
    reduction over middle axes of a C-ordered array (``a`` the kept axes
    before them, ``b`` those after)."""
    if n < 2 or rows < 2 or (axes == (arr.ndim - 1,) and arr.flags.c_contiguous):
        return None  # (the common case: rows along memory, for the row kernels)
    view = rows_view(arr, axes, rows, n)
    if view is not None:
        return view.T[None] if view.strides[0] == view.itemsize else None
    if axes != tuple(range(axes[0], axes[-1] + 1)):
        return None
    b = math.prod(arr.shape[axes[-1] + 1:])
    if b < 2:
        return None
    view = reshaped_view(arr, (rows // b, n, b))
    return view if view is not None and view.strides[2] == view.itemsize else None


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


def run_rowwise(
    kind: str,
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
    x3 = None if mask is not None else across_view(x, axes, rows, n)
    o3 = None if x3 is None else x3 if out is x else across_view(out, axes, rows, n)
    if o3 is not None and o3.shape == x3.shape:  # (out may split into other slabs)
        unused = none(x.dtype)
        _run(_COLUMNS, rows, n, _KIND[kind], read_only(x3), o3, unused, unused, temperature)
        return
    if _by_slabs(axes, rows, n, x, out, mask):
        for i in range(x.shape[0]):
            xi = x[i]
            run_rowwise(kind, xi, xi if out is x else out[i], _sub_axes(axes), temperature,
                        None if mask is None else mask[i])
        return
    x2 = rows_view(x, axes, rows, n)
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
        run_rows(_KIND[kind], x2, o2, unused, unused, temperature)
    else:
        _run(_MASKED[kind], rows, n, x2, o2, temperature, m2)
    if staged:
        moved_out = moved_last(out, axes)
        np.copyto(moved_out, o2.reshape(moved_out.shape))


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
    x3 = None if b is not None or mask is not None else across_view(x, axes, rows, n)
    if x3 is not None:
        _run(_COLUMNS, rows, n, 2, read_only(x3), _NO_OUT3[x.dtype], res, sign, 1.0)
        return
    if _by_slabs(axes, rows, n, x, b, mask):
        res_i = res.reshape(x.shape[0], -1)
        sign_i = sign.reshape(x.shape[0], -1)
        for i in range(x.shape[0]):
            run_logsumexp(x[i], None if b is None else b[i], _sub_axes(axes),
                          None if mask is None else mask[i], res_i[i], sign_i[i])
        return
    x2 = rows_input(x, axes, rows, n)
    b2 = None if b is None else rows_input(b, axes, rows, n)
    m2 = None if mask is None else rows_input(mask, axes, rows, n)
    if b2 is None and m2 is None:
        run_rows(2, x2, no_out(x2.dtype), res, sign)
    else:
        _run(_MASKED["logsumexp"], rows, n, x2, b2, res, sign, m2)
