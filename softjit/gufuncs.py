"""The gufunc layer: numba generalized ufuncs over the last axis.

=============================  ==================  ==========================================
name                           core signature      computes
=============================  ==================  ==========================================
``softmax``                    ``(n)->(n)``        softmax of each core row
``log_softmax``                ``(n)->(n)``        log_softmax of each core row
``logsumexp``                  ``(n)->()``         logsumexp of each core row
``softmax_vjp``                ``(n),(n)->(n)``    ``y * (g - sum(g * y))`` from softmax ``y``
``softmax_jvp``                ``(n),(n)->(n)``    ``y * (v - sum(y * v))`` (the same product)
``log_softmax_vjp``            ``(n),(n)->(n)``    ``g - exp(logp) * sum(g)``
``softmax_jacobian``           ``(n)->(n,n)``      ``diag(y) - outer(y, y)``
``cross_entropy``              ``(n),()->()``      ``logsumexp(x) - x[label]``
``cross_entropy_with_grad``    ``(n),()->(),(n)``  that loss and ``softmax(x) - onehot``
``margin_ranking_loss``        ``(n),(),()->()``   ``sum max(0, margin - s[pos] + s[j])``
``multi_margin_loss``          ``(n),(),()->()``   torch's multi-margin loss with ``p=1``
=============================  ==================  ==========================================

They are real numpy gufuncs (float32 and float64 loops; integer input is
cast to float64 by numpy): they broadcast over leading dimensions and take
numpy's ``axis=``/``axes=``, ``out=`` and ``keepdims=`` arguments, so they
plug into ``dask.array.apply_gufunc`` and ``xarray.apply_ufunc``.  They
share their row kernels with :func:`softjit.softmax` and follow the same
special-value rules, but have no temperature, mask or multi-axis options;
use the functions in :mod:`softjit` for those.

The loss gufuncs take the integer label (``pos``: the positive's index)
and the margin as scalar core inputs, so those broadcast too, e.g.
``gufuncs.cross_entropy(logits, labels)`` with ``labels`` of the batch
shape.  They give one unreduced, unweighted loss per core row; a label
outside ``[0, n)`` gives NaN (a gufunc cannot raise).  Weights, label
smoothing, ``ignore_index``, reductions and probability targets are in
:func:`softjit.cross_entropy` and the other loss functions.

Each gufunc is built on first access (``softjit.gufuncs.softmax``), not
when the module is imported, and its machine code is cached on disk
(one process at a time builds a gufunc: see :mod:`softjit.kernels._cache`).

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

import numpy as np
from numba import guvectorize

from ._options import GUFUNC
from .kernels import gradients as grad_kernels
from .kernels import rows as row_kernels
from .kernels import steps
from .kernels._cache import build_lock
from .kernels._llvm import fp_flags_restore, fp_flags_save
from .kernels.kinds import Kind

# Built on first access by the module-level __getattr__ below.
__all__ = [  # noqa: F822
    "cross_entropy",
    "cross_entropy_with_grad",
    "log_softmax",
    "log_softmax_vjp",
    "logsumexp",
    "margin_ranking_loss",
    "multi_margin_loss",
    "softmax",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
]

_ROW_TYPES = ["void(float32[:], float32[:])", "void(float64[:], float64[:])"]


# The core functions see one row, of any stride: unit-stride rows run the
# vectorized kernels in place, strided ones through a contiguous buffer.
# They leave the floating-point exception flags as they found them (numpy
# would report the vector code's NaN comparisons as RuntimeWarnings).  The
# kind is passed as np.int64, not a literal: softmax and log_softmax then
# share one compiled rowwise (numba compiles one version per literal).


def _softmax_core(x, out):
    flags = fp_flags_save()
    o = steps.as_unit(out)
    row_kernels.rowwise(np.int64(Kind.SOFTMAX), steps.as_unit(x), o, 1.0, 1.0,
                       steps.row_scratch(x.shape[0]))
    steps.write_back(out, o)
    fp_flags_restore(flags)


def _log_softmax_core(x, out):
    flags = fp_flags_save()
    o = steps.as_unit(out)
    row_kernels.rowwise(np.int64(Kind.LOG_SOFTMAX), steps.as_unit(x), o, 1.0, 1.0,
                       steps.row_scratch(x.shape[0]))
    steps.write_back(out, o)
    fp_flags_restore(flags)


def _logsumexp_core(x, out):
    flags = fp_flags_save()
    out[0], _ = row_kernels.logsumexp_row(steps.as_unit(x), np.empty(x.shape[0]))
    fp_flags_restore(flags)


# Derivatives and losses (softjit.kernels.gradients): plain row kernels.


def _softmax_vjp_core(y, g, out):
    grad_kernels.softmax_vjp_row(y, g, out, None, np.inf)


def _log_softmax_vjp_core(logp, g, out):
    grad_kernels.log_softmax_vjp_row(logp, g, out, None, np.inf)


def _softmax_jacobian_core(y, out):
    grad_kernels.softmax_jacobian_row(y, out, np.inf)


def _cross_entropy_core(x, label, out):
    flags = fp_flags_save()
    out[0] = grad_kernels.cross_entropy_label_row(x, label, None)
    fp_flags_restore(flags)


def _cross_entropy_with_grad_core(x, label, loss, grad):
    flags = fp_flags_save()
    loss[0] = grad_kernels.cross_entropy_label_row(x, label, grad)
    fp_flags_restore(flags)


def _margin_ranking_loss_core(s, pos, margin, out):
    out[0] = grad_kernels.margin_ranking_gufunc_row(s, pos, margin)


def _multi_margin_loss_core(x, label, margin, out):
    out[0] = grad_kernels.multi_margin_gufunc_row(x, label, margin)


_BUILDERS = {
    "softmax": (_softmax_core, "(n)->(n)"),
    "log_softmax": (_log_softmax_core, "(n)->(n)"),
    "logsumexp": (_logsumexp_core, "(n)->()"),
    "softmax_vjp": (_softmax_vjp_core, "(n),(n)->(n)"),
    "softmax_jvp": (_softmax_vjp_core, "(n),(n)->(n)"),
    "log_softmax_vjp": (_log_softmax_vjp_core, "(n),(n)->(n)"),
    "softmax_jacobian": (_softmax_jacobian_core, "(n)->(n,n)"),
    "cross_entropy": (_cross_entropy_core, "(n),()->()"),
    "cross_entropy_with_grad": (_cross_entropy_with_grad_core, "(n),()->(),(n)"),
    "margin_ranking_loss": (_margin_ranking_loss_core, "(n),(),()->()"),
    "multi_margin_loss": (_multi_margin_loss_core, "(n),(),()->()"),
}

# Loop types of the gufuncs whose arguments are not one float row in and
# one out (_ROW_TYPES); labels and positions are int64.
_FLOATS = ("float32", "float64")
_TYPES = {
    "softmax_vjp": [f"void({t}[:], {t}[:], {t}[:])" for t in _FLOATS],
    "softmax_jvp": [f"void({t}[:], {t}[:], {t}[:])" for t in _FLOATS],
    "log_softmax_vjp": [f"void({t}[:], {t}[:], {t}[:])" for t in _FLOATS],
    "softmax_jacobian": [f"void({t}[:], {t}[:, :])" for t in _FLOATS],
    "cross_entropy": [f"void({t}[:], int64, {t}[:])" for t in _FLOATS],
    "cross_entropy_with_grad": [f"void({t}[:], int64, {t}[:], {t}[:])" for t in _FLOATS],
    "margin_ranking_loss": [f"void({t}[:], int64, {t}, {t}[:])" for t in _FLOATS],
    "multi_margin_loss": [f"void({t}[:], int64, {t}, {t}[:])" for t in _FLOATS],
}


@functools.cache
def _build(name: str) -> Any:
    core, signature = _BUILDERS[name]
    with build_lock(core):  # see kernels._cache: concurrent builds can corrupt numba's cache
        gufunc = guvectorize(_TYPES.get(name, _ROW_TYPES), signature, **GUFUNC)(core)
    gufunc.__doc__ = f"{name} over the core axis: a numba gufunc with signature {signature}."
    return gufunc


def __getattr__(name: str) -> Any:
    if name in _BUILDERS:
        return _build(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

