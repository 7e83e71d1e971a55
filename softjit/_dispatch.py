"""Run the row kernels over an N-d array along any set of axes.

The reduced axes are moved last and the array is seen as a 2-D
``(rows, n)`` array: a view when the memory layout allows it (any
C-contiguous array reduced over trailing axes, transposed and many strided
inputs), otherwise a contiguous copy.  Small arrays, and callers that find
another thread inside a parallel kernel, run the serial driver.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import _fastrows, _rows
from ._options import LONG_ROW, PARALLEL_LOCK, PARALLEL_MIN_ELEMENTS, parallel_allowed


def moved_last(arr: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """A view of ``arr`` with ``axes`` (sorted) moved to the end."""
    keep = [a for a in range(arr.ndim) if a not in axes]
    return arr.transpose(keep + list(axes))


def rows_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, int]:
    """``(rows, n)``: the number of reduced slices and their length."""
    n = math.prod(shape[a] for a in axes)
    rows = math.prod(s for i, s in enumerate(shape) if i not in axes)
    return rows, n


def rows_view(arr: np.ndarray, axes: tuple[int, ...], rows: int, n: int) -> np.ndarray | None:
    """``arr`` as a 2-D ``(rows, n)`` view, or None if that needs a copy."""
    if axes == (arr.ndim - 1,) and arr.flags.c_contiguous:
        return arr.reshape(rows, n)  # the common case, without the general path
    try:
        return np.reshape(moved_last(arr, axes), (rows, n), copy=False)
    except ValueError:
        return None


def rows_input(arr: np.ndarray, axes: tuple[int, ...], rows: int, n: int) -> np.ndarray:
    """``arr`` as a 2-D ``(rows, n)`` array, copied only when needed."""
    view = rows_view(arr, axes, rows, n)
    if view is not None:
        return view
    return np.ascontiguousarray(moved_last(arr, axes)).reshape(rows, n)


def _use_parallel(rows: int, n: int) -> bool:
    return (rows > 1 or n >= LONG_ROW) and rows * n >= PARALLEL_MIN_ELEMENTS and parallel_allowed()


def _unit_rows(*arrays: np.ndarray) -> bool:
    return all(a.strides[1] == a.itemsize for a in arrays)


# (serial, parallel, long-row parallel) drivers: the masked ones handle
# masks; the fast ones everything else, long rows split across threads.
_MASKED_DRIVERS = {
    "softmax": (_rows.softmax_rows_serial, _rows.softmax_rows_parallel),
    "log_softmax": (_rows.log_softmax_rows_serial, _rows.log_softmax_rows_parallel),
}
_FAST_DRIVERS = {
    "softmax": (_fastrows.softmax_rows_serial, _fastrows.softmax_rows_parallel,
                _fastrows.softmax_long_rows),
    "log_softmax": (_fastrows.log_softmax_rows_serial, _fastrows.log_softmax_rows_parallel,
                    _fastrows.log_softmax_long_rows),
    "logsumexp": (_fastrows.logsumexp_rows_serial, _fastrows.logsumexp_rows_parallel,
                  _fastrows.logsumexp_long_rows),
}


def _run(drivers: tuple, rows: int, n: int, unit: bool, *args) -> None:
    """Call the serial, parallel or long-row driver of ``drivers``."""
    if _use_parallel(rows, n) and PARALLEL_LOCK.acquire(blocking=False):
        try:
            if n >= LONG_ROW and unit and len(drivers) > 2:
                drivers[2](*args)
            elif len(drivers) > 2:
                drivers[1](*args, min(rows, 4 * numba.get_num_threads()))
            else:
                drivers[1](*args)
        finally:
            PARALLEL_LOCK.release()
    else:
        drivers[0](*args)


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
    x2 = rows_view(x, axes, rows, n)
    x_copied = x2 is None
    if x_copied:
        x2 = rows_input(x, axes, rows, n)
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
    if m2 is None:
        _run(_FAST_DRIVERS[kind], rows, n, _unit_rows(x2, o2), x2, o2, temperature)
    else:
        _run(_MASKED_DRIVERS[kind], rows, n, False, x2, o2, temperature, m2)
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
    x2 = rows_input(x, axes, rows, n)
    b2 = None if b is None else rows_input(b, axes, rows, n)
    m2 = None if mask is None else rows_input(mask, axes, rows, n)
    if b2 is None and m2 is None:
        _run(_FAST_DRIVERS["logsumexp"], rows, n, _unit_rows(x2), x2, res, sign)
    else:
        drivers = (_rows.logsumexp_rows_serial, _rows.logsumexp_rows_parallel)
        _run(drivers, rows, n, False, x2, b2, res, sign, m2)
