"""dask arrays in, lazy dask arrays out.

:func:`softjit.softmax`, :func:`softjit.log_softmax` and
:func:`softjit.logsumexp` hand a ``dask.array.Array`` (``x``; for softmax
and log_softmax also ``where``, for ``logsumexp`` also ``b``) to this
module, which builds a task graph and computes nothing; a numpy operand
takes the dask operand's chunks.  The graph depends on where the reduced
axes lie.  :func:`softjit.cross_entropy` and
:func:`softjit.cross_entropy_with_grad` go to :mod:`softjit.integrations.dask_losses`.

**The reduced axes lie in one chunk** (the usual layout: rows split over
chunks, classes in one chunk).  One blockwise task per chunk calls softjit
on the block with every option (temperature, mask, weights, dtype), so the
result is exactly softjit's.

**A reduced axis is split over several chunks.**  A tree reduction
(:func:`dask.array.reduction`) combines per-chunk partials; the whole axis
is never gathered into one chunk.  The partial of a slice is
``(m, l, s, k)``:

* ``m``: the maximum of the slice (entries that take part only);
* ``l, s = logsumexp((x - m) / T, b, return_sign=True)``: softjit's own
  kernel on the shifted chunk, so ``l`` is small and precise;
* ``k``: the number of ``+inf`` entries.

Partials combine associatively, by softjit again:
``M = max(m_i)``, ``L, S = logsumexp(l_i + (m_i - M) / T, b=s_i,
return_sign=True)``, ``K = sum(k_i)``.  Where ``m_i`` is not finite the
shift is 0 and ``l_i`` is that same infinity (or NaN), so no ``inf - inf``
arises, and NaN, ``+inf`` (with the signs of their weights) and empty
slices follow softjit's rules at every level of the tree.  Then

* logsumexp ``= M + L`` with sign ``S``;
* softmax ``= exp((x - M) / T) * exp(-L)``, log_softmax ``= (x - M) / T - L``
  (a blockwise step): the row kernels' arithmetic, so logits of any
  magnitude keep full precision.  Rows whose ``M`` is not finite follow the
  special-value table: NaN stays NaN, a row of only ``-inf`` gives NaN,
  exactly one ``+inf`` in the whole row (``K == 1``) gives 1 there and 0
  elsewhere, several give NaN.

A mask enters the partials as ``-inf`` entries (or zero weights); the
normalize step gives masked entries 0 / ``-inf``.  Partials are float64 and
the result is cast to the result dtype at the end, as the row kernels do.
Complex input with a split reduced axis raises ``NotImplementedError``.

``out=`` is refused with a ``TypeError``: dask arrays are immutable; use
the returned array (or :func:`dask.array.store`).

**Cross-entropy.**  When ``logits``, ``target``, ``weight`` or ``where`` is
a dask array, the loss (and the gradient) are lazy dask arrays with
softjit's semantics and options.  The arguments are checked at call time
(shapes, dtypes, options: the numpy checks on zero-strided stand-ins);
only a class index out of range is found when the result is computed (an
``IndexError`` naming the chunk).  Numpy targets, weights and masks are
chunked as the logits.  Each block yields float64 per-row losses, each
row's weight in the mean (torch's: the target class's weight, 0 for
ignored rows and rows with no valid class) and the unscaled gradient;
``'sum'`` adds the losses up, ``'mean'`` divides by the lazily summed row
weights (NaN when they sum to 0), and the gradient of the mean is the
unscaled one times that lazy ``1 / denominator``.

* **Class axis in one chunk:** one task per block runs softjit's kernels
  on whole rows (:func:`dask.array.apply_gufunc`).
* **Class axis split:** never gathered.  The softmax partials above give
  each row's maximum and log-sum-exp; each chunk adds up
  ``-q_c log_softmax(x)_c`` over its classes with target mass ``q_c``
  (weights, label smoothing over the row's valid classes, absent classes),
  the sums are added over the chunks, and the gradient is
  ``sum(q) softmax(x) - q``.  Special rows (NaN, only ``-inf``, several
  ``+inf``, mass on an impossible class) give what the kernels give.

Examples
--------
>>> import dask.array as da
>>> import numpy as np
>>> import softjit
>>> x = da.from_array(np.array([[1.0, 2.0, 3.0, 4.0]]), chunks=(1, 2))
>>> y = softjit.softmax(x)   # lazy: nothing is computed yet
>>> y.compute()
array([[0.0320586 , 0.08714432, 0.23688282, 0.64391426]])
>>> float(softjit.logsumexp(x, axis=None).compute())
4.440189698561196

Cross-entropy of logits whose rows are split over two chunks:

>>> logits = da.from_array(np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), chunks=(1, 3))
>>> loss, dlogits = softjit.cross_entropy_with_grad(logits, [0, 1])   # lazy
>>> round(float(loss.compute()), 12)
0.318539769649
>>> dlogits.compute()
array([[-0.17049943,  0.12121649,  0.04928295],
       [ 0.05430187, -0.09876047,  0.04445861]])
"""

from __future__ import annotations

import functools
from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .. import _core
from .._validate import (
    as_array,
    check_temperature,
    normalize_axis,
    result_dtype,
)
from ..kernels.kinds import Kind

AxisLike = int | tuple[int, ...] | None

#: The partial of a reduced slice (see the module docstring).
PARTIAL = np.dtype(
    [("max", np.float64), ("lse", np.float64), ("sign", np.float64), ("ninf", np.int64)]
)

_SOFTMAX_FUNCS = {Kind.SOFTMAX: _core.softmax, Kind.LOG_SOFTMAX: _core.log_softmax}
# What softmax / log_softmax give to a certain entry and to an impossible one.
_ONE_ZERO = {Kind.SOFTMAX: (1.0, 0.0), Kind.LOG_SOFTMAX: (0.0, -np.inf)}


# --------------------------------------------------------------------------- arguments


def _refuse_out(out: Any) -> None:
    if out is not None:
        raise TypeError(
            "out= is not supported for dask arrays, which are immutable; use the "
            "returned dask array (or dask.array.store to write it into an array)"
        )


def _check_dtype(arr: da.Array, name: str) -> np.dtype:
    """The dtype of a dask array, refused as softjit refuses numpy input."""
    return as_array(np.empty(0, arr.dtype), name).dtype


def _in_one_chunk(x: da.Array, axes: tuple[int, ...]) -> bool:
    return all(len(x.chunks[a]) == 1 for a in axes)


def _empty(ndim: int, dtype: DTypeLike) -> np.ndarray:
    """A meta array: given to dask so that it never calls our functions (and
    compiles no kernel) to infer one."""
    return np.empty((0,) * ndim, dtype)


def _aligned(value: ArrayLike, x: da.Array, name: str, what: str) -> da.Array:
    """``value`` (numpy, dask or array-like) broadcast to ``x``'s shape and
    chunked as ``x``, without materialising the broadcast."""
    arr = value if isinstance(value, da.Array) else np.asarray(value)
    try:
        ok = np.broadcast_shapes(arr.shape, x.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} with shape {arr.shape} does not broadcast to {what} {x.shape}")
    arr = da.asarray(arr).reshape((1,) * (x.ndim - arr.ndim) + arr.shape)
    own = tuple((1,) if n == 1 else c for n, c in zip(arr.shape, x.chunks, strict=True))
    return da.broadcast_to(arr.rechunk(own), x.shape, chunks=x.chunks)


def _aligned_mask(where: ArrayLike | None, x: da.Array) -> da.Array | None:
    if where is None:
        return None
    dtype = where.dtype if isinstance(where, da.Array) else np.asarray(where).dtype
    if dtype != np.bool_:
        raise TypeError(f"where must be a boolean array; got dtype {dtype}")
    return _aligned(where, x, "where", "the shape of x")


def _chunked_like(arr: np.ndarray, other: da.Array | None) -> da.Array:
    """A numpy array as a dask array that takes ``other``'s chunks along the
    (trailing-aligned) axes of equal length, one chunk elsewhere."""
    chunks = [(n,) for n in arr.shape]
    if other is not None:
        lead = arr.ndim - other.ndim
        for i, c in enumerate(other.chunks):
            if 0 <= i + lead and other.shape[i] == arr.shape[i + lead]:
                chunks[i + lead] = c
    return da.from_array(arr, chunks=tuple(chunks))


def _refuse_complex(dtype: np.dtype) -> None:
    if dtype.kind == "c":
        raise NotImplementedError(
            "complex input with the reduced axis split over several chunks is not "
            "supported; rechunk so that the reduced axes lie in one chunk"
        )


# --------------------------------------------------------------------------- partials


def _finite_or_zero(m: np.ndarray) -> np.ndarray:
    """The shift to subtract: the maximum where it is finite, else 0."""
    return np.where(np.isfinite(m), m, 0.0)


def _pack(shape: tuple[int, ...], **fields: Any) -> np.ndarray:
    part = np.zeros(shape, PARTIAL)
    for name, value in fields.items():
        part[name] = value
    return part


def _partial(
    xb: np.ndarray,
    bb: np.ndarray | None = None,
    axis: tuple[int, ...] = (),
    keepdims: bool = True,
    *,
    temperature: float,
) -> np.ndarray:
    """The partial of each slice of one chunk (the reduction's ``chunk``).

    Entries with a zero weight take no part, as in softjit.
    """
    shape = tuple(1 if i in axis else n for i, n in enumerate(xb.shape))
    if xb.size == 0:  # also dask's meta inference: no kernel call
        return _pack(shape, max=-np.inf, lse=-np.inf)
    if xb.dtype.kind != "f":  # bool, integers: -inf needs a float
        xb = xb.astype(np.float64)
    counted = xb if bb is None else np.where(bb != 0, xb, -np.inf)
    with np.errstate(all="ignore"):
        m = np.max(counted, axis=axis, keepdims=True, initial=-np.inf).astype(np.float64)
        z = _shifted(xb, m, temperature)
    lse, sign = _core.logsumexp(z, axis, b=bb, keepdims=True, return_sign=True, dtype=np.float64)
    ninf = np.sum(counted == np.inf, axis=axis, keepdims=True)
    return _pack(shape, max=m, lse=lse, sign=sign, ninf=ninf)


def _shifted(xb: np.ndarray, m: np.ndarray, temperature: float) -> np.ndarray:
    """``(x - m) / T`` in a new float64 array (``m`` replaced by 0 where it
    is not finite), as the row kernels compute it."""
    z = np.subtract(xb, _finite_or_zero(m), dtype=np.float64)
    if temperature != 1.0:
        z /= temperature
    return z


def _combine(
    part: np.ndarray, axis: tuple[int, ...], keepdims: bool = True, *, temperature: float
) -> np.ndarray:
    """Combine partials along ``axis`` (the reduction's ``combine`` and
    ``aggregate``)."""
    m = part["max"]
    with np.errstate(all="ignore"):
        big = np.max(m, axis=axis, keepdims=True, initial=-np.inf)
        terms = part["lse"] + (m - _finite_or_zero(big)) / temperature
    lse, sign = _core.logsumexp(terms, axis, b=part["sign"], keepdims=True, return_sign=True)
    ninf = np.sum(part["ninf"], axis=axis, keepdims=True)
    return _pack(big.shape, max=big, lse=lse, sign=sign, ninf=ninf)


def _partials(
    x: da.Array, b: da.Array | None, axes: tuple[int, ...], temperature: float
) -> da.Array:
    """One partial per reduced slice (keepdims), by a tree reduction."""
    combine = functools.partial(_combine, temperature=temperature)
    return da.reduction(
        x,
        functools.partial(_partial, temperature=temperature),
        combine,
        combine=combine,
        axis=axes,
        keepdims=True,
        dtype=PARTIAL,
        meta=_empty(x.ndim, PARTIAL),
        weights=b,
        concatenate=True,
        name="softjit-partials",
    )


# --------------------------------------------------------------------------- softmax family


def softmax_like(
    kind: Kind,
    x: da.Array,
    axis: AxisLike,
    temperature: float,
    where: ArrayLike | None,
    out: Any,
    dtype: DTypeLike,
) -> da.Array:
    """Lazy ``softmax`` / ``log_softmax`` (``kind``) when ``x`` or ``where``
    is a dask array (a numpy ``x`` takes the mask's chunks)."""
    _refuse_out(out)
    if not isinstance(x, da.Array):
        x = _chunked_like(as_array(x), where)
    t = check_temperature(temperature)
    res_dt = result_dtype(_check_dtype(x, "x"), dtype)
    work = x.reshape(1) if x.ndim == 0 else x
    axes = normalize_axis(axis, work.ndim)
    mask = _aligned_mask(where, work)
    options = dict(kind=kind, temperature=t, out_dtype=res_dt, meta=_empty(work.ndim, res_dt))
    if _in_one_chunk(work, axes):
        res = da.map_blocks(_softmax_block, work, mask, axes=axes, **options)
    else:
        _refuse_complex(res_dt)
        xm = work if mask is None else da.where(mask, work, -np.inf)
        res = da.map_blocks(_normalize_block, work, _partials(xm, None, axes, t), mask, **options)
    return res.reshape(()) if x.ndim == 0 else res


def _softmax_block(
    xb: np.ndarray,
    mb: np.ndarray | None,
    *,
    kind: Kind,
    axes: tuple[int, ...],
    temperature: float,
    out_dtype: np.dtype,
) -> np.ndarray:
    """softjit on one block that holds whole reduced slices."""
    return _SOFTMAX_FUNCS[kind](xb, axes, temperature=temperature, where=mb, dtype=out_dtype)


def _normalize_block(
    xb: np.ndarray,
    part: np.ndarray,
    mb: np.ndarray | None,
    *,
    kind: Kind,
    temperature: float,
    out_dtype: np.dtype,
) -> np.ndarray:
    """softmax or log_softmax of one block given its slices' combined partials."""
    m, lse = part["max"], part["lse"]
    one, zero = _ONE_ZERO[kind]
    with np.errstate(all="ignore"):
        res = _shifted(xb, m, temperature)
        if kind is Kind.SOFTMAX:
            np.exp(res, out=res)
            res *= np.exp(-lse)
        else:
            res -= lse
    special = ~np.isfinite(m)
    if special.any():
        # NaN, all -inf, or +inf: 1 (0 for log_softmax) at a row's only +inf.
        single = (m == np.inf) & (part["ninf"] == 1)
        fixed = np.where(single, np.where(xb == np.inf, one, zero), np.nan)
        np.copyto(res, fixed, where=np.broadcast_to(special, res.shape))
    if mb is not None:
        np.copyto(res, zero, where=~mb)
    return res.astype(out_dtype, copy=False)


# --------------------------------------------------------------------------- logsumexp


def logsumexp(
    x: ArrayLike,
    axis: AxisLike,
    b: ArrayLike | None,
    keepdims: bool,
    return_sign: bool,
    where: ArrayLike | None,
    out: Any,
    dtype: DTypeLike,
) -> da.Array | tuple[da.Array, da.Array]:
    """Lazy ``logsumexp`` when ``x`` or ``b`` is a dask array."""
    _refuse_out(out)
    work = da.asarray(x)
    in_dt = _check_dtype(work, "x")
    bwork = None
    if b is not None:
        bwork = da.asarray(b)
        in_dt = np.result_type(in_dt, _check_dtype(bwork, "b"))
        try:
            np.broadcast_shapes(work.shape, bwork.shape)
        except ValueError:
            raise ValueError(
                f"b with shape {bwork.shape} does not broadcast with x of shape {work.shape}"
            ) from None
        # Broadcast and chunk alike (a numpy operand takes the other's chunks).
        work, bwork = da.broadcast_arrays(work, bwork)
    res_dt = result_dtype(in_dt, dtype)
    scalar = work.ndim == 0
    if scalar:
        work = work.reshape(1)
        bwork = None if bwork is None else bwork.reshape(1)
    axes = normalize_axis(axis, work.ndim)
    mask = _aligned_mask(where, work)
    pair_dt = _pair_dtype(res_dt, return_sign)
    options = dict(return_sign=return_sign, out_dtype=res_dt, meta=_empty(work.ndim, pair_dt))

    if _in_one_chunk(work, axes):
        chunks = tuple((1,) * len(c) if i in axes else c for i, c in enumerate(work.chunks))
        pairs = da.map_blocks(
            _logsumexp_block, work, bwork, mask, axes=axes, chunks=chunks, **options
        )
    else:
        _refuse_complex(res_dt)
        if mask is not None and bwork is None:
            work = da.where(mask, work, -np.inf)  # adds exp(-inf) = 0
        elif mask is not None:
            bwork = da.where(mask, bwork, 0)  # a zero weight removes the entry
        pairs = _partials(work, bwork, axes, 1.0).map_blocks(_logsumexp_finish, **options)

    fields = ["value", "sign"] if return_sign else ["value"]
    outputs = [
        pairs.map_blocks(_field, field=f, meta=_empty(work.ndim, pair_dt[f])) for f in fields
    ]
    if scalar:
        outputs = [o.reshape(()) for o in outputs]
    elif not keepdims:
        outputs = [o.squeeze(axis=axes) for o in outputs]
    return tuple(outputs) if return_sign else outputs[0]


def _pair_dtype(res_dt: np.dtype, return_sign: bool) -> np.dtype:
    """``(value, sign)`` of logsumexp; with ``return_sign`` the value of a
    complex sum is its real ``log|s|``."""
    value_dt = np.empty(0, res_dt).real.dtype if return_sign else res_dt
    return np.dtype([("value", value_dt), ("sign", res_dt)])


def _as_pair(
    value: np.ndarray, sign: np.ndarray | None, return_sign: bool, dtype: np.dtype
) -> np.ndarray:
    pair = np.zeros(np.shape(value), _pair_dtype(dtype, return_sign))
    pair["value"] = value
    if sign is not None:
        pair["sign"] = sign
    return pair


def _field(pair: np.ndarray, *, field: str) -> np.ndarray:
    return np.ascontiguousarray(pair[field])


def _logsumexp_block(
    xb: np.ndarray,
    bb: np.ndarray | None,
    mb: np.ndarray | None,
    *,
    axes: tuple[int, ...],
    return_sign: bool,
    out_dtype: np.dtype,
) -> np.ndarray:
    """softjit on one block that holds whole reduced slices."""
    res = _core.logsumexp(
        xb, axes, b=bb, keepdims=True, return_sign=return_sign, where=mb, dtype=out_dtype
    )
    value, sign = res if return_sign else (res, None)
    return _as_pair(value, sign, return_sign, out_dtype)


def _logsumexp_finish(part: np.ndarray, *, return_sign: bool, out_dtype: np.dtype) -> np.ndarray:
    """``(M + L, S)`` from the combined partials; without ``return_sign`` a
    negative sum gives NaN, as in softjit."""
    with np.errstate(all="ignore"):
        value = part["max"] + part["lse"]
    sign = part["sign"]
    if not return_sign:
        value = np.where(sign < 0, np.nan, value)
    return _as_pair(value, sign, return_sign, out_dtype)
