"""N-d arrays seen as rows: the reduced axes moved last and the array
viewed as a 2-D ``(rows, n)`` array when its memory layout allows it (any
C-contiguous array reduced over trailing axes, transposed and many strided
inputs), else copied; rows that lie across memory (an axis-0 reduction of a
C-ordered array, the last axis of a Fortran-ordered one, middle axes) seen
as an ``(a, n, b)`` view for the column kernels (:func:`across_view`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


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


def across_view(arr: np.ndarray, axes: tuple[int, ...], rows: int, n: int) -> np.ndarray | None:
    """``arr`` as a 3-D ``(a, n, b)`` view for the column kernels
    (:mod:`softjit.kernels.columns`), or None: ``a`` slabs of ``b > 1`` rows of
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


def empty_rows_layout(shape: tuple[int, ...], axes: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array of ``shape`` whose memory has ``axes`` last, so
    that it always has a ``(rows, n)`` view (C-contiguous when ``axes`` are
    the trailing axes)."""
    keep = [a for a in range(len(shape)) if a not in axes]
    order = keep + list(axes)
    buf = np.empty([shape[a] for a in order], dtype)
    return buf.transpose(np.argsort(order))
