"""softjit: fast, accurate softmax, log_softmax and logsumexp for numpy.

Importing softjit compiles nothing: numba compiles each kernel on first
use and caches it on disk.

Layers
------
``softjit.softmax``, ``softjit.log_softmax``, ``softjit.logsumexp``
    The public functions: any axis or axes, temperature, masks, ``out=``,
    dtype rules.  They run numba row kernels, multi-threaded for large
    arrays (:mod:`softjit._core`, :mod:`softjit._run`, :mod:`softjit.kernels`).
``softjit.softmax_vjp``, ``softmax_jvp``, ``log_softmax_vjp``, ``softmax_jacobian``
    Derivatives of softmax and log_softmax from their outputs
    (:mod:`softjit.derivatives`).
``softjit.cross_entropy``, ``margin_ranking_loss``, ``multi_margin_loss``
    Losses on logits, each with a fused ``..._with_grad`` form
    (:mod:`softjit.losses`).
:mod:`softjit.gufuncs`
    numba generalized ufuncs with core signatures ``(n)->(n)`` and
    ``(n)->()`` that broadcast over leading dimensions and accept numpy's
    ``axis=``/``out=``; suited to ``dask.array.apply_gufunc`` and
    ``xarray.apply_ufunc``.
"""

import importlib
from typing import Any

from ._core import log_softmax, logsumexp, softmax
from .derivatives import log_softmax_vjp, softmax_jacobian, softmax_jvp, softmax_vjp
from .losses import (
    cross_entropy,
    cross_entropy_with_grad,
    margin_ranking_loss,
    margin_ranking_loss_with_grad,
    multi_margin_loss,
    multi_margin_loss_with_grad,
)

__version__ = "0.1.0"

#: Submodules that import on first attribute access (``softjit.xarray``
#: needs the ``xarray`` extra; importing it here would make every
#: ``import softjit`` pay for it).
_LAZY = ("gufuncs", "xarray")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

__all__ = [
    "__version__",
    "cross_entropy",
    "cross_entropy_with_grad",
    "log_softmax",
    "log_softmax_vjp",
    "logsumexp",
    "margin_ranking_loss",
    "margin_ranking_loss_with_grad",
    "multi_margin_loss",
    "multi_margin_loss_with_grad",
    "softmax",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
]
