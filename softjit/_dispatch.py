"""The one dispatch point for inputs that are not plain numpy arrays.

The public functions ask :func:`kind_of` what their data argument is and
hand anything but a plain array (or array-like) to the code that knows it,
so that the caller gets the type it passed back:

* dask arrays -> lazy dask arrays (:mod:`softjit.integrations.dask`);
* xarray ``DataArray`` -> ``DataArray`` (``axis=`` by position or ``dim=`` by
  name), through :mod:`softjit.xarray`;
* pandas ``DataFrame`` / ``Series`` -> the same type with its labels
  (:mod:`softjit.integrations.labels`);
* numpy masked arrays -> masked arrays: masked entries take no part,
  exactly as ``where=~mask`` (:mod:`softjit.integrations.labels`).

Nothing here imports dask, xarray or pandas: a value can only be one of
their types if the caller imported them already (``sys.modules``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

DASK = "dask"
XARRAY = "xarray"
PANDAS = "pandas"
MASKED = "masked"


def kind_of(x: Any) -> str | None:
    """Which integration handles ``x``, or None for numpy arrays and
    anything else that :func:`numpy.asarray` converts."""
    if isinstance(x, np.ndarray):
        return MASKED if isinstance(x, np.ma.MaskedArray) else None
    modules = sys.modules
    da = modules.get("dask.array")
    if da is not None and isinstance(x, da.Array):
        return DASK
    xr = modules.get("xarray")
    if xr is not None and isinstance(x, xr.DataArray):
        return XARRAY
    pd = modules.get("pandas")
    if pd is not None and isinstance(x, (pd.DataFrame, pd.Series)):
        return PANDAS
    return None


def is_dask(x: Any) -> bool:
    """True for a ``dask.array.Array`` (without importing dask)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(x, da.Array)


def check_dim(kind: str | None, dim: Any) -> None:
    """``dim=`` is for DataArrays only."""
    if dim is not None and kind != XARRAY:
        raise TypeError("dim= names dimensions of an xarray.DataArray; "
                        "use axis= for other inputs")
