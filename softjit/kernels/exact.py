"""Row kernels: softmax, log_softmax and logsumexp of one row, and drivers
that apply them to every row of a 2-D ``(rows, n)`` array.

The row functions are plain ``@njit`` functions shared by both layers: the
drivers below loop over rows (serially or with ``prange``), and the gufunc
layer (:mod:`softjit.gufuncs`) calls them on each core slice.

Arithmetic is done in float64 whatever the storage dtype, with the row
maximum subtracted before ``exp``, so finite input never overflows.  The
special values follow the project's table: a NaN makes the row NaN, a row
of ``-inf`` gives NaN (softmax, log_softmax) or ``-inf`` (logsumexp), a single
``+inf`` takes all the mass, several ``+inf`` give NaN.  ``mask`` (a boolean
row or ``None``) removes entries: they take no part, softmax gives them 0
and log_softmax ``-inf``; a row with no valid entry gives 0 / ``-inf``.

numba prunes the ``mask is None`` branches at compile time, so the unmasked
kernels carry no mask test in their loops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from .._options import PARALLEL, SERIAL


def mask_row(mask, r):
    """Row ``r`` of a 2-D mask, or None when there is no mask (numba only)."""
    raise NotImplementedError("mask_row is only callable from numba code")


@overload(mask_row)
def _mask_row_impl(mask, r):
    if isinstance(mask, types.NoneType):
        return lambda mask, r: None
    return lambda mask, r: mask[r]


@njit(**SERIAL)
def scan_max(x, mask):
    """Return (max of the valid entries as float64, count of valid entries,
    whether a valid entry is NaN)."""
    m = -np.inf
    nvalid = 0
    has_nan = False
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            continue
        v = np.float64(x[i])
        nvalid += 1
        if v > m:
            m = v
        elif v != v:
            has_nan = True
    return m, nvalid, has_nan


@njit(**SERIAL)
def count_posinf(x, mask):
    """Number of valid ``+inf`` entries."""
    c = 0
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            continue
        if x[i] == np.inf:
            c += 1
    return c


@njit(**SERIAL)
def fill_special(x, out, mask, valid_value, masked_value, inf_value):
    """Fill ``out`` for a row that needs no arithmetic.

    Valid entries get ``valid_value``, masked ones ``masked_value``; when
    ``inf_value`` is not NaN, valid ``+inf`` entries get ``inf_value``.
    """
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            out[i] = masked_value
        elif inf_value == inf_value and x[i] == np.inf:
            out[i] = inf_value
        else:
            out[i] = valid_value


@njit(**SERIAL)
def special_row(x, out, mask, m, nvalid, has_nan, one, zero):
    """Handle a row whose result is fixed by its special values.

    ``one``/``zero`` are what softmax (1, 0) or log_softmax (0, -inf) give
    for certain and impossible entries.  Return True when the row is done.
    """
    if nvalid == 0:
        fill_special(x, out, mask, zero, zero, np.nan)
        return True
    if has_nan or m == -np.inf:
        fill_special(x, out, mask, np.nan, zero, np.nan)
        return True
    if m == np.inf:
        if count_posinf(x, mask) == 1:
            fill_special(x, out, mask, zero, zero, one)
        else:
            fill_special(x, out, mask, np.nan, zero, np.nan)
        return True
    return False


@njit(**SERIAL)
def softmax_row(x, out, t, mask):
    """``out = softmax(x / t)`` over the valid entries of one row."""
    m, nvalid, has_nan = scan_max(x, mask)
    if special_row(x, out, mask, m, nvalid, has_nan, 1.0, 0.0):
        return
    s = 0.0
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            out[i] = 0.0
            continue
        e = math.exp((np.float64(x[i]) - m) / t)
        out[i] = e
        s += e
    r = 1.0 / s
    for i in range(x.shape[0]):
        out[i] = out[i] * r


@njit(**SERIAL)
def log_softmax_row(x, out, t, mask):
    """``out = log_softmax(x / t)`` over the valid entries of one row.

    The normaliser is ``log1p`` of the sum of the terms other than the
    (first) maximum, so the largest entry keeps its tiny negative value.
    """
    m, nvalid, has_nan = scan_max(x, mask)
    if special_row(x, out, mask, m, nvalid, has_nan, 0.0, -np.inf):
        return
    s = 0.0
    seen_max = False
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            continue
        v = np.float64(x[i])
        if v == m and not seen_max:
            seen_max = True
            continue
        s += math.exp((v - m) / t)
    lse = math.log1p(s)
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            out[i] = -np.inf
        else:
            out[i] = (np.float64(x[i]) - m) / t - lse


@njit(**SERIAL)
def logsumexp_row(x, mask):
    """Return ``(log(sum(exp(x))), sign)`` over the valid entries."""
    m, nvalid, has_nan = scan_max(x, mask)
    if has_nan:
        return np.nan, np.nan
    if nvalid == 0 or m == -np.inf:
        return -np.inf, 0.0
    if m == np.inf:
        return np.inf, 1.0
    s = 0.0
    seen_max = False
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            continue
        v = np.float64(x[i])
        if v == m and not seen_max:
            seen_max = True
            continue
        s += math.exp(v - m)
    return m + math.log1p(s), 1.0


@njit(**SERIAL)
def logsumexp_weighted_row(x, b, mask):
    """Return ``(log|sum(b * exp(x))|, sign of the sum)``.

    As in scipy, an entry whose weight is 0 takes no part (even if it is
    infinite or NaN); weights may be negative.
    """
    m = -np.inf
    nvalid = 0
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            continue
        w = np.float64(b[i])
        if w == 0.0:
            continue
        v = np.float64(x[i])
        if v != v or w != w:
            return np.nan, np.nan
        nvalid += 1
        if v > m:
            m = v
    if nvalid == 0 or m == -np.inf:
        return -np.inf, 0.0
    if m == np.inf:
        # Only the +inf entries matter; their weights' signs decide.
        pos = False
        neg = False
        for i in range(x.shape[0]):
            if mask is not None and not mask[i]:
                continue
            w = np.float64(b[i])
            if x[i] == np.inf and w != 0.0:
                if w > 0.0:
                    pos = True
                else:
                    neg = True
        if pos and neg:
            return np.nan, np.nan
        return np.inf, 1.0 if pos else -1.0
    # bm: weight on the maximum; rest: the other terms.  The result is
    # log|bm + rest| = log|bm| + log1p(rest / bm) (+ m), as precise as the
    # unweighted form when all weights are positive.
    bm = 0.0
    rest = 0.0
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            continue
        w = np.float64(b[i])
        if w == 0.0:
            continue
        v = np.float64(x[i])
        if v == m:
            bm += w
        else:
            rest += w * math.exp(v - m)
    if bm == 0.0:
        if rest == 0.0:
            return -np.inf, 0.0
        return m + math.log(abs(rest)), 1.0 if rest > 0.0 else -1.0
    ratio = rest / bm
    sign = 1.0 if bm > 0.0 else -1.0
    if ratio < -1.0:
        sign = -sign
        core = math.log1p(-ratio - 2.0)
    elif ratio == -1.0:
        return -np.inf, 0.0
    else:
        core = math.log1p(ratio)
    return m + math.log(abs(bm)) + core, sign


# Drivers: one serial and one parallel loop per operation.  They are
# separate functions (not one function compiled twice) because numba's
# on-disk cache does not tell compilation options apart.


@njit(**SERIAL)
def softmax_rows_serial(x, out, t, mask):
    for r in range(x.shape[0]):
        softmax_row(x[r], out[r], t, mask_row(mask, r))


@njit(**PARALLEL)
def softmax_rows_parallel(x, out, t, mask):
    for r in prange(x.shape[0]):
        softmax_row(x[r], out[r], t, mask_row(mask, r))


@njit(**SERIAL)
def log_softmax_rows_serial(x, out, t, mask):
    for r in range(x.shape[0]):
        log_softmax_row(x[r], out[r], t, mask_row(mask, r))


@njit(**PARALLEL)
def log_softmax_rows_parallel(x, out, t, mask):
    for r in prange(x.shape[0]):
        log_softmax_row(x[r], out[r], t, mask_row(mask, r))


@njit(**SERIAL)
def logsumexp_rows_serial(x, b, res, sign, mask):
    for r in range(x.shape[0]):
        row_mask = mask_row(mask, r)
        if b is None:
            res[r], sign[r] = logsumexp_row(x[r], row_mask)
        else:
            res[r], sign[r] = logsumexp_weighted_row(x[r], b[r], row_mask)


@njit(**PARALLEL)
def logsumexp_rows_parallel(x, b, res, sign, mask):
    for r in prange(x.shape[0]):
        row_mask = mask_row(mask, r)
        if b is None:
            res[r], sign[r] = logsumexp_row(x[r], row_mask)
        else:
            res[r], sign[r] = logsumexp_weighted_row(x[r], b[r], row_mask)
