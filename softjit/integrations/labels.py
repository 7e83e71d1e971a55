"""Labelled and masked inputs of the public functions: xarray DataArrays,
pandas DataFrames and Series, numpy masked arrays.

Each is unwrapped into a numpy (or dask) array, computed by the public
function itself, and wrapped again as the type that was passed, with its
labels: see :mod:`softjit._dispatch` for the routing.  This module is
imported only when such an input arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from .._dispatch import MASKED, PANDAS, XARRAY
from .._validate import normalize_axis

_ROWWISE = ("softmax", "log_softmax")


def _dims_of_axis(x: Any, axis: Any) -> list[Hashable]:
    """The DataArray's dimension names that ``axis`` selects."""
    axes = normalize_axis(axis, max(x.ndim, 1)) if x.ndim else ()
    return [x.dims[a] for a in axes]


def _plain(value: Any) -> Any:
    """pandas or masked values of ``where``/``b`` as plain arrays."""
    if value is None:
        return None
    if hasattr(value, "to_numpy") and not hasattr(value, "dims"):
        return value.to_numpy()
    if isinstance(value, np.ma.MaskedArray):
        return value.filled(False if value.dtype == bool else 0)
    return value


def call(kind: str, op: str, fn: Callable[..., Any], x: Any, axis: Any, dim: Any,
         options: dict[str, Any]) -> Any:
    """``fn(x, axis, **options)`` (``op``: softmax, log_softmax or
    logsumexp) for a DataArray, pandas object or masked array ``x``,
    returned as ``x``'s type."""
    if kind == XARRAY:
        return _xarray(op, x, axis, dim, options)
    if kind == PANDAS:
        return _pandas(op, fn, x, axis, options)
    if kind == MASKED:
        return _masked(op, fn, x, axis, options)
    raise AssertionError(kind)  # pragma: no cover


def _xarray(op: str, x: Any, axis: Any, dim: Any, options: dict[str, Any]) -> Any:
    from .. import xarray as sx

    if dim is not None and axis != -1:
        raise TypeError(f"{op}: give axis= (by position) or dim= (by name), not both")
    if options.get("out") is not None:
        raise TypeError(f"{op}: out= is not supported for an xarray.DataArray")
    if options.pop("keepdims", False):
        raise TypeError(f"{op}: keepdims= is not supported for an xarray.DataArray")
    options.pop("out", None)
    if dim is None:
        dim = _dims_of_axis(x, axis)
    return getattr(sx, op)(x, dim, **options)


def _pandas(op: str, fn: Callable[..., Any], x: Any, axis: Any, options: dict[str, Any]) -> Any:
    import pandas as pd

    options = {k: _plain(v) for k, v in options.items()}
    values = x.to_numpy()
    result = fn(values, axis, **options)
    if op in _ROWWISE:
        if isinstance(x, pd.Series):
            return pd.Series(result, index=x.index, name=x.name)
        return pd.DataFrame(result, index=x.index, columns=x.columns)
    if options.get("return_sign"):
        value, sign = result
        return _reduced(x, axis, value, options), _reduced(x, axis, sign, options)
    return _reduced(x, axis, result, options)


def _reduced(x: Any, axis: Any, value: Any, options: dict[str, Any]) -> Any:
    """logsumexp of a pandas object: a Series over the axis that remains
    (the index for ``axis=-1`` of a DataFrame), else the scalar."""
    import pandas as pd

    if isinstance(x, pd.Series) or options.get("keepdims"):
        return value
    axes = normalize_axis(axis, 2)
    if axes == (1,):
        return pd.Series(value, index=x.index)
    if axes == (0,):
        return pd.Series(value, index=x.columns)
    return value


def _masked(op: str, fn: Callable[..., Any], x: Any, axis: Any, options: dict[str, Any]) -> Any:
    mask = np.ma.getmaskarray(x)
    data = np.ma.getdata(x)
    where = options.get("where")
    keep = ~mask
    if where is not None:
        keep = keep & np.broadcast_to(np.asarray(_plain(where), dtype=bool), mask.shape)
    options["where"] = keep
    if options.get("b") is not None:
        options["b"] = _plain(options["b"])
    result = fn(data, axis, **options)
    if op in _ROWWISE:
        return np.ma.MaskedArray(result, mask=mask.copy())
    axes = normalize_axis(axis, max(mask.ndim, 1)) if mask.ndim else ()
    empty = mask.all(axis=axes, keepdims=bool(options.get("keepdims"))) if axes else mask
    if options.get("return_sign"):
        value, sign = result
        return _masked_result(value, empty), _masked_result(sign, empty)
    return _masked_result(result, empty)


def _masked_result(value: Any, mask: np.ndarray) -> Any:
    """``value`` masked by ``mask``; a reduction to one value gives that
    value, or ``np.ma.masked`` when its whole slice was masked (as numpy's
    masked reductions do)."""
    if np.ndim(value) == 0:
        return np.ma.masked if bool(mask) else value
    return np.ma.MaskedArray(value, mask=np.array(mask, copy=True))


def like(template: Any, result: np.ndarray) -> Any:
    """``result`` (of ``template``'s shape) as ``template``'s type with its
    labels: for the derivatives, whose output has their input's shape."""
    import sys

    xr = sys.modules.get("xarray")
    if xr is not None and isinstance(template, xr.DataArray):
        return template.copy(data=result)
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(template, pd.Series):
        return pd.Series(result, index=template.index, name=template.name)
    if pd is not None and isinstance(template, pd.DataFrame):
        return pd.DataFrame(result, index=template.index, columns=template.columns)
    if isinstance(template, np.ma.MaskedArray):
        return np.ma.MaskedArray(result, mask=np.ma.getmaskarray(template).copy())
    return result


def unwrap(value: Any, reference: Any = None) -> Any:
    """The array inside a DataArray (transposed to ``reference``'s dims when
    that is a DataArray), pandas object or masked array (its data; the
    mask is handled by the caller)."""
    if value is None:
        return None
    if hasattr(value, "dims") and hasattr(value, "transpose"):
        if reference is not None and hasattr(reference, "dims"):
            value = value.transpose(*reference.dims)
        return value.data
    if hasattr(value, "to_numpy"):
        return value.to_numpy()
    if isinstance(value, np.ma.MaskedArray):
        return np.ma.getdata(value)
    return value


def loss_call(kind: str, fn: Callable[..., Any], x: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
    """A loss (or loss-and-gradient) ``fn`` of a DataArray, pandas object or
    masked array ``x`` (the logits or scores): computed on the arrays
    inside, the per-example losses (``reduction='none'``) returned over
    ``x``'s other axes with their labels, the gradient like ``x``."""
    axis = kwargs.pop("axis", args[-1] if len(args) > (1 if _has_target(fn) else 0) else -1)
    if len(args) > (1 if _has_target(fn) else 0):
        args = args[:-1]
    if kind == MASKED:
        keep = ~np.ma.getmaskarray(x)
        where = kwargs.get("where")
        kwargs["where"] = keep if where is None else keep & np.asarray(_plain(where), bool)
    elif kwargs.get("where") is not None:
        kwargs["where"] = unwrap(kwargs["where"], x)
    plain_args = tuple(unwrap(a) for a in args)
    result = fn(unwrap(x), *plain_args, axis, **kwargs)
    if isinstance(result, tuple):
        loss, grad = result
        return _loss_like(x, axis, loss), like(x, grad)
    return _loss_like(x, axis, result)


def _has_target(fn: Callable[..., Any]) -> bool:
    return not fn.__name__.startswith("margin_ranking")


def _loss_like(x: Any, axis: int, loss: Any) -> Any:
    """Per-example losses over ``x``'s axes other than ``axis``, labelled;
    a scalar loss as it is."""
    if np.ndim(loss) == 0:
        return loss
    import sys

    ax = normalize_axis(axis, x.ndim)[0]
    xr = sys.modules.get("xarray")
    if xr is not None and isinstance(x, xr.DataArray):
        return x.isel({x.dims[ax]: 0}, drop=True).copy(data=loss)
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(x, pd.DataFrame):
        return pd.Series(loss, index=x.index if ax == 1 else x.columns)
    if isinstance(x, np.ma.MaskedArray):
        return np.ma.MaskedArray(loss, mask=np.ma.getmaskarray(x).all(axis=ax))
    return loss
