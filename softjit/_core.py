"""The public functions: ``softmax``, ``log_softmax`` and ``logsumexp``.

These wrappers normalise the arguments (:mod:`softjit._validate`), choose
the dtype the kernels run in, allocate or check the output, and hand the
work to the row kernels (:mod:`softjit._run`), or to the numpy
implementation for complex input (:mod:`softjit._complex`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _complex, _dispatch, _first
from ._layout import rows_shape, same_layout
from ._options import PARALLEL_MIN_ELEMENTS, SHORT_ROW
from ._run import exact_rows_at, no_out, none, run_logsumexp, run_rows, run_rowwise
from ._validate import (
    as_array,
    as_mask,
    check_out,
    check_temperature,
    kernel_dtype,
    normalize_axis,
    result_dtype,
)
from .kernels import rows as row_kernels
from .kernels.kinds import Kind

AxisLike = int | tuple[int, ...] | None
DimLike = Hashable | Sequence[Hashable] | None



_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_ndarray = np.ndarray


# The kinds as plain ints for the per-call fast path, where an enum member
# would cost a class-attribute lookup and a conversion on every call.
_SOFTMAX, _LOG_SOFTMAX, _LOGSUMEXP = (int(k) for k in Kind)
#: The small-call entries by kind and one row or several (each compiles its
#: own kind and row class only).
_SMALL = {(_SOFTMAX, True): row_kernels.small_softmax_row,
          (_LOG_SOFTMAX, True): row_kernels.small_log_softmax_row,
          (_SOFTMAX, False): row_kernels.small_softmax_rows,
          (_LOG_SOFTMAX, False): row_kernels.small_log_softmax_rows}
_SMALL_ROW = (row_kernels.small_softmax_row, row_kernels.small_log_softmax_row)
#: The (kind, dtype) groups that run the full engine (see softjit._first).
_first_ready = _first.READY


def _last_axis(kind: int, x: Any) -> Any:
    """The common call, with the least Python overhead: softmax,
    log_softmax or logsumexp (``kind``) along the last axis with default
    options of a writable, aligned, C-contiguous native float32/float64
    ndarray of at least one dimension and one element.  Small arrays
    (fewer than ``PARALLEL_MIN_ELEMENTS`` elements, so rows shorter than
    ``LONG_ROW``) go to one compiled call, chosen by kind and row class (one
    row, several short rows, several longer rows) so that a first call
    compiles only what it needs; larger ones straight to the drivers (the
    same kernels, and bits, as the general path).  Returns None for
    anything else.  (Read-only arrays take the general path: numba would
    compile the small entry points a second time for them.)
    """
    if type(x) is not _ndarray:
        return None
    dt = x.dtype
    # (builtin native dtypes are singletons; flags.carray: C-contiguous,
    # aligned and writable)
    if (dt is not _F64 and dt is not _F32) or not x.flags.carray:
        return None
    if (kind, dt) not in _first_ready and _first.use_first(kind, dt):
        return None  # the first route, through the general path
    shape = x.shape
    if len(shape) == 1 and 0 < shape[0] < PARALLEL_MIN_ELEMENTS:  # one small row
        if kind == _LOGSUMEXP:
            res = np.empty(1, dt)
            if not row_kernels.small_logsumexp_row(x, res):
                _special_rows(kind, x.reshape(1, -1), no_out(dt), res)
            return res[0]
        out = np.empty(shape[0], dt)
        if not _SMALL_ROW[kind](x, out):
            _special_rows(kind, x.reshape(1, -1), out.reshape(1, -1), none(dt))
        return out
    size = x.size
    if not (size and shape):
        return None
    n = shape[-1]
    rows = size // n
    if size >= PARALLEL_MIN_ELEMENTS:
        return _with_drivers(kind, x, dt, shape, rows, n)
    one_row = rows == 1
    short = n <= SHORT_ROW and not one_row
    x2 = x if one_row or len(shape) == 2 else x.reshape(rows, n)
    if kind == _LOGSUMEXP:
        res = np.empty(rows, dt)
        if one_row:
            ok = row_kernels.small_logsumexp_row(x2, res)
        elif short:
            ok = row_kernels.small_short_logsumexp(x2, res, no_out(dt))
        else:
            ok = row_kernels.small_logsumexp_rows(x2, res, no_out(dt))
        if not ok:
            _special_rows(kind, x2.reshape(rows, n), no_out(dt), res)
        return res[0] if len(shape) == 1 else res.reshape(shape[:-1])
    out = np.empty(shape, dt)
    o2 = out if one_row or len(shape) == 2 else out.reshape(rows, n)
    if short:
        ok = row_kernels.small_short_rows(kind, x2, o2)
    else:
        ok = _SMALL[kind, one_row](x2, o2)
    if not ok:
        _special_rows(kind, x2.reshape(rows, n), o2.reshape(rows, n), none(dt))
    return out


def _special_rows(kind: int, x2: np.ndarray, o2: np.ndarray, res: np.ndarray) -> None:
    """A small call that met rows with special values (a maximum that is not
    finite, or a NaN: the rows the kernels left unwritten): those rows by
    the exact kernels (compiled only for input that needs them)."""
    bad = np.flatnonzero(~np.isfinite(x2.max(axis=1)))
    exact_rows_at(kind, x2, o2, res, np.empty_like(res), 1.0, bad)


def _with_drivers(kind: int, x: np.ndarray, dt: np.dtype, shape: tuple[int, ...],
                  rows: int, n: int) -> Any:
    """:func:`_last_axis` through the drivers (serial or multi-threaded)."""
    x2 = x.reshape(rows, n)
    x2.flags.writeable = False  # (a view: as the kernels always see their input)
    if kind == _LOGSUMEXP:
        res = np.empty(rows, dt)
        run_rows(kind, x2, no_out(dt), res, np.empty(rows, dt), 1.0, True)
        return res[0] if len(shape) == 1 else res.reshape(shape[:-1])
    out = np.empty(shape, dt)
    unused = none(dt)
    run_rows(kind, x2, out.reshape(rows, n), unused, unused, 1.0, True)
    return out


def _as_rows_input(x: ArrayLike, axis: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Return ``(original array, array of ndim >= 1, reduced axes)``.

    A 0-d input is treated as a one-element row; its axis may be
    ``None``, ``()``, ``0`` or ``-1``.
    """
    arr = as_array(x)
    work = arr.reshape(1) if arr.ndim == 0 else arr
    return arr, work, normalize_axis(axis, work.ndim)


def _softmax_family(
    kind: Kind,
    x: ArrayLike,
    axis: AxisLike,
    temperature: float,
    where: ArrayLike | None,
    out: np.ndarray | None,
    dtype: DTypeLike,
) -> np.ndarray:
    if _dispatch.is_dask(x) or _dispatch.is_dask(where):
        from .integrations import dask as dask_arrays

        return dask_arrays.softmax_like(kind, x, axis, temperature, where, out, dtype)
    arr, work, axes = _as_rows_input(x, axis)
    t = check_temperature(temperature)
    res_dt = result_dtype(arr.dtype, dtype)
    mask = None if where is None else as_mask(where, work.shape)
    if out is not None:
        check_out(out, arr.shape, res_dt)

    if res_dt.kind == "c":
        result = _complex.softmax_like(kind, work, axes, t, mask, res_dt).reshape(arr.shape)
        if out is None:
            return result[()] if arr.ndim == 0 else result
        np.copyto(out, result)
        return out

    k_dt = kernel_dtype(res_dt)
    private = work.dtype != k_dt  # computed in place in a converted copy
    xk = work
    if private:
        xk = np.empty_like(work, k_dt)
        np.copyto(xk, work, casting="unsafe")
    res = None if out is None else out.reshape(work.shape)

    if res is not None and res.dtype == k_dt:
        if same_layout(res, xk):
            xk = res  # out=x: in place
        elif np.may_share_memory(res, xk):
            xk = xk.copy()  # out overlaps x partially: read from a copy
        run_rowwise(kind, xk, res, axes, t, mask)
        return out

    # Compute in the kernel dtype: in place in a private copy of x when
    # there is one, else in a new array; cast to the result dtype at the end.
    target = xk if private else np.empty_like(xk)
    run_rowwise(kind, xk, target, axes, t, mask)
    if res is not None:
        np.copyto(res, target, casting="unsafe")
        return out
    result = target.astype(res_dt, copy=False).reshape(arr.shape)
    return result[()] if arr.ndim == 0 else result


def softmax(
    x: ArrayLike,
    axis: AxisLike = -1,
    *,
    temperature: float = 1.0,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    dim: DimLike = None,
) -> Any:
    r"""Softmax along an axis: ``exp(x) / sum(exp(x))``, computed stably.

    .. math:: \sigma(x)_i = \frac{e^{x_i / T}}{\sum_j e^{x_j / T}}

    The row maximum is subtracted before ``exp``, so any finite input gives
    a finite result that sums to 1; no RuntimeWarning is ever emitted.

    Parameters
    ----------
    x : array_like
        Input; lists, scalars and arrays of any shape and memory layout;
        also xarray DataArrays, pandas DataFrames and Series, numpy masked
        arrays and dask arrays, returned as the same type.
        float32 and float64 are computed and returned as such; float16 is
        computed in higher precision and returned as float16; bool and
        integers give float64.  Complex input is accepted (scipy's
        semantics).
    axis : int, tuple of ints or None, optional
        Axis or axes along which the softmax is taken (jointly, for a
        tuple); ``None`` means the whole array.  Default ``-1``: per row,
        as in torch and jax.  Note that ``scipy.special.softmax`` defaults
        to ``axis=None``.
    temperature : float, optional
        Computes ``softmax(x / temperature)`` without a temporary array.
        Must be finite and > 0.
    where : array_like of bool, optional
        Entries where this is False take no part and get 0.  Must
        broadcast to ``x``'s shape.  A slice with no True entry gives 0s.
    out : ndarray, optional
        Array of ``x``'s shape and of the result dtype to write into.
        ``out=x`` computes in place without allocating an array of that
        size.
    dtype : dtype, optional
        Float dtype to compute and return in (e.g. ``np.float32``).
    dim : str or sequence of str, optional
        For an ``xarray.DataArray`` only: the dimension(s) by name, instead
        of ``axis``.

    Returns
    -------
    ndarray, DataArray, DataFrame, Series or MaskedArray
        Same shape as ``x`` (a numpy scalar for 0-d input); values in
        [0, 1] summing to 1 along ``axis``.  Of ``x``'s type when that is
        an xarray DataArray, a pandas DataFrame or Series (labels kept), a
        numpy masked array (masked entries take no part, as with
        ``where=~mask``, and the result has ``x``'s mask) or a dask array
        (lazy).

    Notes
    -----
    Special values per slice: a NaN makes the slice NaN; ``-inf`` entries
    get 0; a slice of only ``-inf`` gives NaN; a single ``+inf`` gets 1 and
    the rest 0; several ``+inf`` give NaN.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> softjit.softmax([3.0, 1.0, 0.2])
    array([0.8360188 , 0.11314284, 0.05083836])

    Huge logits do not overflow:

    >>> softjit.softmax([1000.0, 2000.0, 3000.0, 4000.0, 5000.0])
    array([0., 0., 0., 0., 1.])

    One softmax per row of a batch (the default ``axis=-1``), over columns,
    or over the whole array:

    >>> x = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    >>> softjit.softmax(x)
    array([[0.09003057, 0.24472847, 0.66524096],
           [0.33333333, 0.33333333, 0.33333333]])
    >>> softjit.softmax(x, axis=0)
    array([[0.5       , 0.73105858, 0.88079708],
           [0.5       , 0.26894142, 0.11920292]])
    >>> softjit.softmax(x, axis=None).round(4)
    array([[0.0709, 0.1927, 0.5238],
           [0.0709, 0.0709, 0.0709]])

    Temperature and a mask:

    >>> softjit.softmax([1.0, 2.0, 3.0], temperature=10.0)
    array([0.30060961, 0.33222499, 0.3671654 ])
    >>> softjit.softmax([1.0, 2.0, 3.0], where=[True, True, False])
    array([0.26894142, 0.73105858, 0.        ])

    In place, preserving float32:

    >>> y = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    >>> _ = softjit.softmax(y, out=y)
    >>> y
    array([0.09003057, 0.24472848, 0.66524094], dtype=float32)
    """
    if (type(axis) is int and axis == -1 and where is out is dtype is dim is None
            and type(temperature) is float and temperature == 1.0):
        res = _last_axis(_SOFTMAX, x)
        if res is not None:
            return res
    other = _dispatch.kind_of(x)
    if other is not None and other != _dispatch.DASK:
        from .integrations import labels

        return labels.call(other, "softmax", softmax, x, axis, dim, dict(
            temperature=temperature, where=where, out=out, dtype=dtype))
    _dispatch.check_dim(other, dim)
    return _softmax_family(Kind.SOFTMAX, x, axis, temperature, where, out, dtype)


def log_softmax(
    x: ArrayLike,
    axis: AxisLike = -1,
    *,
    temperature: float = 1.0,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    dim: DimLike = None,
) -> Any:
    r"""Logarithm of the softmax along an axis, computed without ``log(0)``.

    .. math:: \log\sigma(x)_i = x_i / T - \log\sum_j e^{x_j / T}

    Unlike ``np.log(softmax(x))``, entries whose probability underflows
    stay finite.

    Parameters
    ----------
    x : array_like
        Input; see :func:`softmax` for the accepted dtypes and layouts.
    axis : int, tuple of ints or None, optional
        Axis or axes along which to normalise; ``None`` means the whole
        array.  Default ``-1`` (scipy's default is ``None``).
    temperature : float, optional
        Computes ``log_softmax(x / temperature)``; finite and > 0.
    where : array_like of bool, optional
        Entries where this is False take no part and get ``-inf``.
    out : ndarray, optional
        Array of ``x``'s shape and of the result dtype; ``out=x`` works in
        place.
    dtype : dtype, optional
        Float dtype to compute and return in.
    dim : str or sequence of str, optional
        For an ``xarray.DataArray`` only: the dimension(s) by name, instead
        of ``axis``.

    Returns
    -------
    ndarray, DataArray, DataFrame, Series or MaskedArray
        Same shape as ``x`` (a numpy scalar for 0-d input); values <= 0
        whose ``exp`` sums to 1 along ``axis``; of ``x``'s type as for
        :func:`softmax` (masked entries: masked in the result).

    Notes
    -----
    The normaliser is ``log1p`` of the sum of the terms other than the
    largest, so the largest entry keeps its tiny negative value:
    ``log_softmax([0, -40])[0]`` is about ``-4.25e-18``, not 0.  Special
    values follow :func:`softmax` (``-inf`` where softmax gives 0).

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> softjit.log_softmax([-10000.0, -1020.0, 100.0, -70220.0])
    array([-10100.,  -1120.,      0., -70320.])

    where ``np.log(softmax(x))`` would give ``-inf`` for three entries.

    >>> softjit.log_softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]]))
    array([[-0.69314718, -0.69314718],
           [-1.38629436, -0.28768207]])
    >>> float(softjit.log_softmax([0.0, -40.0])[0])
    -4.248354255291589e-18
    """
    if (type(axis) is int and axis == -1 and where is out is dtype is dim is None
            and type(temperature) is float and temperature == 1.0):
        res = _last_axis(_LOG_SOFTMAX, x)
        if res is not None:
            return res
    other = _dispatch.kind_of(x)
    if other is not None and other != _dispatch.DASK:
        from .integrations import labels

        return labels.call(other, "log_softmax", log_softmax, x, axis, dim, dict(
            temperature=temperature, where=where, out=out, dtype=dtype))
    _dispatch.check_dim(other, dim)
    return _softmax_family(Kind.LOG_SOFTMAX, x, axis, temperature, where, out, dtype)


def logsumexp(
    x: ArrayLike,
    axis: AxisLike = -1,
    *,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    dim: DimLike = None,
) -> Any:
    r"""``log(sum(b * exp(x)))`` along an axis, computed stably.

    Parameters
    ----------
    x : array_like
        Input; see :func:`softmax` for the accepted dtypes and layouts.
    axis : int, tuple of ints or None, optional
        Axis or axes to reduce; ``None`` reduces the whole array.  Default
        ``-1`` (scipy's default is ``None``).
    b : array_like, optional
        Weights broadcastable with ``x``; may be negative (then the sum can
        be negative: see ``return_sign``).  Entries with weight 0 take no
        part, even when ``x`` is infinite there.
    keepdims : bool, optional
        Keep the reduced axes as dimensions of size one.
    return_sign : bool, optional
        Return ``(log|s|, sign(s))`` for the sum ``s``.  Without it a
        negative sum gives NaN.
    where : array_like of bool, optional
        Entries where this is False take no part; a slice with no True
        entry gives ``-inf``.
    out : ndarray, optional
        Array of the reduced shape and the result dtype to write into.
    dtype : dtype, optional
        Float dtype to compute and return in.
    dim : str or sequence of str, optional
        For an ``xarray.DataArray`` only: the dimension(s) by name, instead
        of ``axis``.

    Returns
    -------
    res : ndarray
        The reduced result (a numpy scalar when it has no dimensions).
        For a DataArray, a DataArray without the reduced dimensions; for a
        DataFrame, a Series over the remaining axis (the index for
        ``axis=-1``), for a Series a scalar; for a masked array, a masked
        array masked where a whole slice was masked; for dask, lazy.
    sign : ndarray
        Only with ``return_sign``: +1, 0 or -1 (a complex phase for complex
        input).

    Notes
    -----
    An empty slice gives ``-inf``; a slice with a NaN gives NaN; any
    ``+inf`` gives ``+inf``.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> float(softjit.logsumexp([1000.0, 1000.0]))
    1000.6931471805599
    >>> softjit.logsumexp(np.log([[1.0, 2.0], [3.0, 5.0]]))
    array([1.09861229, 2.07944154])
    >>> softjit.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    (np.float64(1.5413248546129181), np.float64(-1.0))
    """
    if (type(axis) is int and axis == -1 and b is where is out is dtype is dim is None
            and not keepdims and not return_sign):
        res = _last_axis(_LOGSUMEXP, x)
        if res is not None:
            return res
    other = _dispatch.kind_of(x)
    if other is not None and other != _dispatch.DASK:
        from .integrations import labels

        return labels.call(other, "logsumexp", logsumexp, x, axis, dim, dict(
            b=b, keepdims=keepdims, return_sign=return_sign, where=where, out=out,
            dtype=dtype))
    _dispatch.check_dim(other, dim)
    if other == _dispatch.DASK or _dispatch.is_dask(b):
        from .integrations import dask as dask_arrays

        return dask_arrays.logsumexp(x, axis, b, keepdims, return_sign, where, out, dtype)
    arr = as_array(x)
    barr = None
    if b is not None:
        barr = as_array(b, "b")
        try:
            shape = np.broadcast_shapes(arr.shape, barr.shape)
        except ValueError:
            raise ValueError(
                f"b with shape {barr.shape} does not broadcast with x of shape {arr.shape}"
            ) from None
        arr = np.broadcast_to(arr, shape)
        barr = np.broadcast_to(barr, shape)
    in_dt = arr.dtype if barr is None else np.result_type(arr.dtype, barr.dtype)
    res_dt = result_dtype(in_dt, dtype)
    work = arr.reshape(1) if arr.ndim == 0 else arr
    bwork = None if barr is None else barr.reshape(work.shape)
    axes = normalize_axis(axis, work.ndim)
    mask = None if where is None else as_mask(where, work.shape)
    kept = tuple(1 if i in axes else s for i, s in enumerate(work.shape))
    if arr.ndim == 0:
        red_shape: tuple[int, ...] = ()
    elif keepdims:
        red_shape = kept
    else:
        red_shape = tuple(s for i, s in enumerate(work.shape) if i not in axes)
    if out is not None:
        check_out(out, red_shape, res_dt)

    if res_dt.kind == "c":
        value, sign = _complex.logsumexp(work, bwork, axes, mask, return_sign, res_dt)
        value = value.reshape(red_shape)
        sign = None if sign is None else sign.reshape(red_shape)
    else:
        k_dt = kernel_dtype(res_dt)
        rows, _ = rows_shape(work.shape, axes)
        value = np.empty(rows, k_dt)
        sign = np.empty(rows, k_dt)
        bk = None if bwork is None else bwork.astype(k_dt, copy=False)
        run_logsumexp(work.astype(k_dt, copy=False), bk, axes, mask, value, sign)
        if not return_sign:
            value[sign < 0] = np.nan
        value = value.astype(res_dt, copy=False).reshape(red_shape)
        sign = sign.astype(res_dt, copy=False).reshape(red_shape)

    if out is not None:
        np.copyto(out, value, casting="unsafe")
        value = out
    elif value.ndim == 0:
        value = value[()]
    if not return_sign:
        return value
    return value, (sign[()] if sign.ndim == 0 else sign)
