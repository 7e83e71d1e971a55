"""softjit for xarray: ``softmax``, ``log_softmax`` and ``logsumexp`` over
named dimensions of a ``DataArray``.

The functions take ``dim=`` (a name, a sequence of names, or ``None`` for
every dimension) instead of ``axis=`` and keep coordinates, attributes and
the name of the input.  softmax and log_softmax return the input's
dimensions in the input's order; logsumexp drops the reduced dimensions.

They run through :func:`xarray.apply_ufunc` with ``dask="allowed"``: a
DataArray backed by dask stays lazy, and softjit's dask support takes over,
including a reduced dimension split over several chunks (see
:mod:`softjit.integrations.dask`).  ``where`` and ``b`` may be DataArrays (aligned and
broadcast by dimension name; coordinates must match exactly) or arrays that
broadcast against the input's shape.

Requires the ``xarray`` extra (``pip install "softjit[xarray]"``; add
``softjit[dask]`` for dask-backed arrays).

Examples
--------
>>> import numpy as np
>>> import xarray as xr
>>> import softjit.xarray as sx
>>> logits = xr.DataArray(
...     [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]],
...     dims=("sample", "class"),
...     coords={"class": ["cat", "dog", "fox"]},
...     attrs={"units": "logit"},
... )
>>> p = sx.softmax(logits, dim="class")
>>> p.values.round(4)
array([[0.09  , 0.2447, 0.6652],
       [0.3333, 0.3333, 0.3333]])
>>> p.dims, p["class"].values.tolist(), p.attrs
(('sample', 'class'), ['cat', 'dog', 'fox'], {'units': 'logit'})
>>> sx.logsumexp(logits, dim="class").values
array([3.40760596, 1.09861229])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

try:
    import xarray as xr
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'softjit.xarray needs xarray: pip install "softjit[xarray]"') from exc
from numpy.typing import DTypeLike

from . import _core
from ._validate import broadcast_to_shape

__all__ = ["log_softmax", "logsumexp", "softmax"]

DimLike = Hashable | Sequence[Hashable] | None


def _core_dims(obj: xr.DataArray, dim: DimLike) -> list[Hashable]:
    """The reduced dimensions as a list of names present in ``obj``."""
    if dim is None:
        return list(obj.dims)
    dims = [dim] if isinstance(dim, str) or not isinstance(dim, Sequence) else list(dim)
    missing = [d for d in dims if d not in obj.dims]
    if missing:
        raise ValueError(f"dim {missing} not found in the DataArray's dimensions {obj.dims}")
    if len(set(dims)) != len(dims):
        raise ValueError(f"dim={dim!r} repeats a dimension")
    return dims


def _as_input(value: Any, name: str, obj: xr.DataArray, core: list[Hashable]) -> xr.DataArray:
    """``where`` / ``b`` as a DataArray holding every core dimension.

    A plain (numpy or dask) array broadcasts against ``obj``'s shape, as in
    numpy; a DataArray by dimension name.
    """
    if not isinstance(value, xr.DataArray):
        value = np.asarray(value) if isinstance(value, (list, tuple)) else value
        arr = broadcast_to_shape(value, obj.shape, name, "the shape of the DataArray")
        value = xr.DataArray(arr, dims=obj.dims)
    missing = {d: obj.sizes[d] for d in core if d not in value.dims}
    return value.expand_dims(missing) if missing else value


def _apply(
    fn: Callable[..., Any],
    obj: xr.DataArray,
    dim: DimLike,
    extras: dict[str, Any],
    options: dict[str, Any],
    n_outputs: int,
    keep_attrs: bool,
) -> Any:
    """Run ``fn`` over the core dims ``dim`` with apply_ufunc.

    ``extras`` are array arguments (None ones are left out) and ``options``
    plain keyword arguments of ``fn``; ``n_outputs`` is 0 for an output
    with the core dims, else the number of reduced outputs.
    """
    if not isinstance(obj, xr.DataArray):
        raise TypeError(f"expected an xarray.DataArray; got {type(obj).__name__}")
    core = _core_dims(obj, dim)
    names = [k for k, v in extras.items() if v is not None]
    inputs = [obj] + [_as_input(extras[k], k, obj, core) for k in names]
    axis = tuple(range(-len(core), 0))

    def kernel(x: Any, *arrays: Any) -> Any:
        return fn(x, axis, **dict(zip(names, arrays, strict=True)), **options)

    result = xr.apply_ufunc(
        kernel,
        *inputs,
        input_core_dims=[core] * len(inputs),
        output_core_dims=[core] if n_outputs == 0 else [[]] * n_outputs,
        dask="allowed",
        keep_attrs=keep_attrs,
    )
    if n_outputs == 0:
        return result.transpose(..., *obj.dims).rename(obj.name)
    if n_outputs == 1:
        return result.rename(obj.name)
    return tuple(r.rename(obj.name) for r in result)


def softmax(
    obj: xr.DataArray,
    dim: DimLike,
    *,
    temperature: float = 1.0,
    where: Any = None,
    dtype: DTypeLike = None,
    keep_attrs: bool = True,
) -> xr.DataArray:
    """:func:`softjit.softmax` over the dimension(s) ``dim`` of a DataArray.

    Parameters
    ----------
    obj : xarray.DataArray
        Input, backed by numpy or dask.
    dim : str, sequence of str or None
        Dimension(s) to normalise over jointly; ``None`` means all.
    temperature : float, optional
        Computes ``softmax(obj / temperature)``; finite and > 0.
    where : DataArray or array_like of bool, optional
        Entries where this is False take no part and get 0.
    dtype : dtype, optional
        Float dtype to compute and return in.
    keep_attrs : bool, optional
        Keep ``obj.attrs`` (default True).

    Returns
    -------
    xarray.DataArray
        Same dimensions (in the same order), coordinates and name as ``obj``;
        lazy when ``obj`` is backed by dask.

    Examples
    --------
    >>> import xarray as xr
    >>> import softjit.xarray as sx
    >>> x = xr.DataArray([[1.0, 0.0], [3.0, 0.0]], dims=("class", "sample"))
    >>> sx.softmax(x, dim="class").values
    array([[0.11920292, 0.5       ],
           [0.88079708, 0.5       ]])
    """
    return _apply(
        _core.softmax,
        obj,
        dim,
        {"where": where},
        {"temperature": temperature, "dtype": dtype},
        0,
        keep_attrs,
    )


def log_softmax(
    obj: xr.DataArray,
    dim: DimLike,
    *,
    temperature: float = 1.0,
    where: Any = None,
    dtype: DTypeLike = None,
    keep_attrs: bool = True,
) -> xr.DataArray:
    """:func:`softjit.log_softmax` over the dimension(s) ``dim`` of a DataArray.

    Parameters are those of :func:`softmax`; masked entries get ``-inf``.

    Examples
    --------
    >>> import xarray as xr
    >>> import softjit.xarray as sx
    >>> x = xr.DataArray([0.0, 0.0], dims="class")
    >>> sx.log_softmax(x, dim="class").values
    array([-0.69314718, -0.69314718])
    """
    return _apply(
        _core.log_softmax,
        obj,
        dim,
        {"where": where},
        {"temperature": temperature, "dtype": dtype},
        0,
        keep_attrs,
    )


def logsumexp(
    obj: xr.DataArray,
    dim: DimLike,
    *,
    b: Any = None,
    return_sign: bool = False,
    where: Any = None,
    dtype: DTypeLike = None,
    keep_attrs: bool = True,
) -> xr.DataArray | tuple[xr.DataArray, xr.DataArray]:
    """:func:`softjit.logsumexp` over the dimension(s) ``dim`` of a DataArray.

    Parameters
    ----------
    obj : xarray.DataArray
        Input, backed by numpy or dask.
    dim : str, sequence of str or None
        Dimension(s) to reduce; ``None`` means all.
    b : DataArray or array_like, optional
        Weights, aligned and broadcast against ``obj``; may be negative.
    return_sign : bool, optional
        Also return the sign of the weighted sum.
    where : DataArray or array_like of bool, optional
        Entries where this is False take no part.
    dtype : dtype, optional
        Float dtype to compute and return in.
    keep_attrs : bool, optional
        Keep ``obj.attrs`` (default True).

    Returns
    -------
    xarray.DataArray or tuple of two
        ``obj``'s other dimensions and their coordinates; with
        ``return_sign``, ``(log|sum|, sign)``.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> import softjit.xarray as sx
    >>> x = xr.DataArray(np.log([[1.0, 3.0], [2.0, 2.0]]), dims=("class", "t"))
    >>> sx.logsumexp(x, dim="class").values
    array([1.09861229, 1.60943791])
    >>> value, sign = sx.logsumexp(x, dim="class", b=[[1.0], [-1.0]], return_sign=True)
    >>> sign.values
    array([-1.,  1.])
    """
    return _apply(
        _core.logsumexp,
        obj,
        dim,
        {"b": b, "where": where},
        {"return_sign": return_sign, "dtype": dtype},
        2 if return_sign else 1,
        keep_attrs,
    )
