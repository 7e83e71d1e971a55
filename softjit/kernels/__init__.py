"""The numba kernels of softjit: numba code only, no Python-level policy.

:mod:`~softjit.kernels._llvm`
    every ``@intrinsic`` (bit casts, borrowed views, ``llvm.maxnum``,
    streaming stores, floating-point flags): the one module that knows
    numba's and LLVM's internals.
:mod:`~softjit.kernels._cache`
    a file lock around numba's cache writes, for every compiled function
    of this package.
:mod:`~softjit.kernels.primitives`
    ``exp``, ``log1p`` and error-free sums that vectorize.
:mod:`~softjit.kernels.exact`
    the exact scalar row kernels: masks, weights, and the owner of the
    special-value rules.
:mod:`~softjit.kernels.steps`
    the steps every row kernel shares: maximum, shifted ``exp``, the sums
    (one summation order), scaling, logsumexp from a sum, row buffers.
:mod:`~softjit.kernels.rows`
    vectorized kernels for rows along memory, and their drivers.
:mod:`~softjit.kernels.short_rows`, :mod:`~softjit.kernels.long_rows`
    rows of at most ``SHORT_ROW`` elements in transposed blocks; rows of
    ``LONG_ROW`` elements or more in chunks spread over the threads.
:mod:`~softjit.kernels.columns`
    kernels for rows that lie across memory.
:mod:`~softjit.kernels.gradients`
    derivatives and losses.
:mod:`~softjit.kernels.double_double`
    double-double ``exp``, ``log`` and logsumexp (float64 results near 0).
:mod:`~softjit.kernels.transpose`
    tiled copies of rows that lie across memory into rows along it.
"""

from . import (
    _cache,
    columns,
    double_double,
    exact,
    gradients,
    long_rows,
    primitives,
    rows,
    short_rows,
    steps,
    transpose,
)

# One process at a time writes a kernel to numba's on-disk cache: every
# compiled function of this package, found by walking it.
_cache.guard_cache_saves(__name__)

__all__ = [
    "columns", "double_double", "exact", "gradients", "long_rows", "primitives", "rows",
    "short_rows", "steps", "transpose",
]
