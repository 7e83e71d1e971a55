"""softjit: fast, accurate softmax, log_softmax and logsumexp for numpy.

Importing softjit compiles nothing: numba compiles each kernel on first
use and caches it on disk.

Layers
------
``softjit.softmax``, ``softjit.log_softmax``, ``softjit.logsumexp``
    The public functions: any axis or axes, temperature, masks, ``out=``,
    dtype rules.  They run numba row kernels, multi-threaded for large
    arrays (:mod:`softjit._rows`, :mod:`softjit._dispatch`).
:mod:`softjit.gufuncs`
    numba generalized ufuncs with core signatures ``(n)->(n)`` and
    ``(n)->()`` that broadcast over leading dimensions and accept numpy's
    ``axis=``/``out=``; suited to ``dask.array.apply_gufunc`` and
    ``xarray.apply_ufunc``.
"""

from ._api import log_softmax, logsumexp, softmax

__version__ = "0.1.0"

__all__ = ["__version__", "log_softmax", "logsumexp", "softmax"]
