"""The gufunc layer: numba generalized ufuncs over the last axis.

==============  ===============  =======================================
name            core signature   computes
==============  ===============  =======================================
``softmax``     ``(n)->(n)``     softmax of each core row
``log_softmax`` ``(n)->(n)``     log_softmax of each core row
``logsumexp``   ``(n)->()``      logsumexp of each core row
==============  ===============  =======================================

They are real numpy gufuncs (float32 and float64 loops; integer input is
cast to float64 by numpy): they broadcast over leading dimensions and take
numpy's ``axis=``/``axes=``, ``out=`` and ``keepdims=`` arguments, so they
plug into ``dask.array.apply_gufunc`` and ``xarray.apply_ufunc``.  They
share their row kernels with :func:`softjit.softmax` and follow the same
special-value rules, but have no temperature, mask or multi-axis options;
use the functions in :mod:`softjit` for those.

Each gufunc is built on first access (``softjit.gufuncs.softmax``), not
when the module is imported, and its machine code is cached on disk.

Examples
--------
>>> import numpy as np
>>> from softjit import gufuncs
>>> x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
>>> gufuncs.softmax(x)
array([[0.09003057, 0.24472847, 0.66524096],
       [0.33333333, 0.33333333, 0.33333333]])
>>> gufuncs.softmax(x, axis=0)
array([[0.73105858, 0.88079708, 0.95257413],
       [0.26894142, 0.11920292, 0.04742587]])
>>> gufuncs.logsumexp(x)
array([3.40760596, 1.09861229])
>>> gufuncs.logsumexp.signature
'(n)->()'
"""

from __future__ import annotations

import functools
from typing import Any

from numba import guvectorize

from . import _rows
from ._options import GUFUNC

# Built on first access by the module-level __getattr__ below.
__all__ = ["log_softmax", "logsumexp", "softmax"]  # noqa: F822

_ROW_TYPES = ["void(float32[:], float32[:])", "void(float64[:], float64[:])"]


def _softmax_core(x, out):
    _rows.softmax_row(x, out, 1.0, None)


def _log_softmax_core(x, out):
    _rows.log_softmax_row(x, out, 1.0, None)


def _logsumexp_core(x, out):
    out[0], _ = _rows.logsumexp_row(x, None)


_BUILDERS = {
    "softmax": (_softmax_core, "(n)->(n)"),
    "log_softmax": (_log_softmax_core, "(n)->(n)"),
    "logsumexp": (_logsumexp_core, "(n)->()"),
}


@functools.cache
def _build(name: str) -> Any:
    core, signature = _BUILDERS[name]
    gufunc = guvectorize(_ROW_TYPES, signature, **GUFUNC)(core)
    gufunc.__doc__ = f"{name} over the core axis: a numba gufunc with signature {signature}."
    return gufunc


def __getattr__(name: str) -> Any:
    if name in _BUILDERS:
        return _build(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

