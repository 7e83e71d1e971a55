"""Argument checks and reductions shared by the losses."""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from .. import _dispatch
from .._validate import (
    as_array,
    normalize_axis,
    real_array,
)

Reduction = Literal["none", "mean", "sum"]
#: What a loss returns: a numpy scalar for ``'mean'``/``'sum'``, an array
#: of per-example losses for ``'none'``, or a lazy dask array for dask
#: input.
LossValue = np.floating | np.ndarray
_REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------


def _logits_array(x: ArrayLike, name: str, fn: str) -> np.ndarray:
    arr = real_array(x, name, fn)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class axis)")
    return arr


def _any_dask(*values: Any) -> bool:
    """True when one of ``values`` is a ``dask.array.Array``."""
    return any(_dispatch.is_dask(v) for v in values)


def _class_axis(axis: Any, ndim: int) -> int:
    if axis is None or isinstance(axis, tuple):
        raise TypeError(f"axis must be an int (the class axis); got {axis!r}")
    (ax,) = normalize_axis(axis, ndim)
    return ax


def _reduction(reduction: Any) -> str:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum'; got {reduction!r}")
    return reduction


def _real(value: Any, name: str) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    return float(value)


def _int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int; got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int; got {value!r}") from None


def _weights(weight: Any, n_classes: int) -> np.ndarray:
    w = real_array(weight, "weight", "the weight argument")
    if w.shape != (n_classes,):
        raise ValueError(
            f"weight must be a 1-D array of length {n_classes} (one per class); "
            f"got shape {w.shape}"
        )
    return np.ascontiguousarray(w, dtype=np.float64)


def _class_targets(
    target: np.ndarray, n_classes: int, ignore_index: int | None
) -> np.ndarray:
    """Integer class targets as a flat int64 array (C order), checked to lie
    in ``[0, n_classes)``; ``ignore_index`` entries become -1."""
    flat = target.reshape(-1)
    ignored = None
    if ignore_index is not None:
        ignored = flat == ignore_index
    bad = (flat < 0) | (flat >= n_classes)
    if ignored is not None:
        bad &= ~ignored
    if bad.any():
        k = int(np.argmax(bad))
        where = np.unravel_index(k, target.shape) if target.ndim else ()
        extra = "" if ignore_index is None else f" and is not ignore_index={ignore_index}"
        raise IndexError(
            f"target {flat[k]} at index {tuple(int(i) for i in where)} is out of range "
            f"for {n_classes} classes{extra}"
        )
    y = flat.astype(np.int64)
    if ignored is not None:
        y[ignored] = -1
    return y


def _target_kind(t: np.ndarray, logits_shape: tuple[int, ...], reduced: tuple[int, ...]) -> str:
    """``"index"`` or ``"prob"`` from the target's shape, with the dtype check."""
    if t.shape == logits_shape:
        if t.dtype.kind != "f":
            raise TypeError(
                f"target has the logits' shape {logits_shape}, so it holds class "
                f"probabilities and must be floating point; got dtype {t.dtype} "
                f"(class-index targets have shape {reduced})"
            )
        return "prob"
    if t.shape == reduced:
        if t.dtype.kind not in "iu":
            raise TypeError(
                f"target has shape {reduced}, so it holds class indices and must be "
                f"an integer array; got dtype {t.dtype} (probability targets have the "
                f"logits' shape {logits_shape})"
            )
        return "index"
    raise ValueError(
        f"target must have shape {reduced} (class indices) or {logits_shape} "
        f"(class probabilities); got {t.shape}"
    )


def _index_target(target: Any, reduced: tuple[int, ...]) -> np.ndarray:
    t = as_array(target, "target")
    if t.shape != reduced:
        raise ValueError(f"target must have shape {reduced} (class indices); got {t.shape}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must be an integer array of class indices; got dtype {t.dtype}")
    return t


def _reduce(
    loss_rows: np.ndarray,
    reduction: str,
    denom: float,
    reduced: tuple[int, ...],
    res_dt: np.dtype,
) -> Any:
    """The loss from the float64 per-row losses: per row, summed, or summed
    and divided by ``denom``; a numpy scalar of ``res_dt`` when 0-d."""
    if reduction == "none":
        res = loss_rows.astype(res_dt).reshape(reduced)
        return res[()] if res.ndim == 0 else res
    with np.errstate(all="ignore"):
        total = float(np.sum(loss_rows))
        if reduction == "mean":
            total = total / denom if denom != 0 else math.nan
        return res_dt.type(total)


def _grad_out(grad: np.ndarray | None, res_dt: np.dtype) -> np.ndarray | None:
    return None if grad is None else grad.astype(res_dt, copy=False)


def keeps_types(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a loss the public functions' types-in, types-out rule: logits
    (or scores) as an xarray DataArray, pandas DataFrame or numpy masked
    array give per-example losses over their other axes, with labels, and
    a gradient like them (a masked array's mask acts as ``where=~mask``)."""

    @functools.wraps(fn)
    def wrapper(x: Any, *args: Any, **kwargs: Any) -> Any:
        other = _dispatch.kind_of(x)
        if other is None or other == _dispatch.DASK:
            return fn(x, *args, **kwargs)
        from ..integrations import labels

        return labels.loss_call(other, fn, x, args, kwargs)

    return wrapper
