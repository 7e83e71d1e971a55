"""Vectorized kernels for rows without a mask.

Per row, three passes while the row is in cache:

1. ``m = max(x)``, vectorized (:func:`softjit._simd.max_no_nan`);
2. ``e = exp((x - m) / t)`` into a float64 scratch row, summed in blocks of
   vectorized partial sums joined by a compensated sum;
3. ``out = e * (1 / sum)``, rounded once to the output dtype.

All arithmetic is float64: float32 rows use a shorter ``exp`` that is
exact enough for float32 results (:mod:`softjit._simd`).  log_softmax and
logsumexp sum the terms below the maximum separately from the count of
entries equal to it, so that ``log1p`` of the exact remainder keeps the
largest entry's tiny negative value.

A row whose maximum is not finite, or whose sum is NaN (a NaN entry), is
recomputed by the exact scalar kernels of :mod:`softjit._rows`, which own
the special-value rules.  Rows of at least ``LONG_ROW`` elements are
processed in chunks split across threads (an online max and sum, then a
second pass that recomputes ``exp``), so no scratch row leaves the cache.

Rows that are not unit-stride are copied into a buffer first; ``out``
may be ``x`` itself (in place) — the in-place loops take one array, so
that LLVM need not prove two arrays disjoint before vectorizing.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from . import _rows
from ._options import LONG_ROW_CHUNK, PARALLEL, REDUCE, SERIAL, SUM_BLOCK
from ._simd import exp_neg_f64_2, exp_neg_f64_for_f32, max_no_nan, two_diff, unit_stride_view


def shifted_exp(v, m, inv_t, x):
    """``exp((v - m) * inv_t)`` for ``v <= m``, as precise as the dtype of
    the array ``x`` needs (numba only).

    float64: ``v - m`` is formed exactly (a double-double), so the result's
    error does not grow with ``|v - m|``; float32: ``v - m`` is exact in
    float64 and a shorter ``exp`` suffices for float32 results.
    """
    raise NotImplementedError("shifted_exp is only callable from numba code")


@overload(shifted_exp)
def _shifted_exp_impl(v, m, inv_t, x):
    if isinstance(x, types.Array) and x.dtype == types.float32:
        return lambda v, m, inv_t, x: exp_neg_f64_for_f32((np.float64(v) - m) * inv_t)

    def impl(v, m, inv_t, x):
        d, d_lo = two_diff(v, m)
        return exp_neg_f64_2(d * inv_t, d_lo * inv_t)

    return impl


# ---------------------------------------------------------------- blocks


@njit(**REDUCE)
def row_max(x):
    """Maximum of a non-empty row (unspecified if it holds a NaN)."""
    m = x[0]
    for i in range(1, x.shape[0]):
        m = max_no_nan(m, x[i])
    return np.float64(m)


@njit(**SERIAL)
def neumaier_add(s, c, v):
    """Add ``v`` to the compensated sum ``(s, c)``."""
    t = s + v
    if abs(s) >= abs(v):
        c += (s - t) + v
    else:
        c += (v - t) + s
    return t, c


@njit(**REDUCE)
def exp_store_block(x, lo, hi, m, inv_t, dst):
    """``dst[i] = exp((x[i] - m) * inv_t)`` for ``lo <= i < hi``; return
    ``(sum of the terms of entries != m, count of entries == m)``."""
    s = 0.0
    k = 0
    for i in range(lo, hi):
        v = x[i]
        e = shifted_exp(v, m, inv_t, x)
        dst[i] = e
        s += e if v != m else 0.0
        k += 1 if v == m else 0
    return s, k


@njit(**REDUCE)
def exp_sum_block(x, lo, hi, m, inv_t):
    """``(sum of exp((x - m) * inv_t) over entries != m, count of entries == m)``.

    A NaN entry makes the sum NaN.
    """
    s = 0.0
    k = 0
    for i in range(lo, hi):
        v = x[i]
        e = shifted_exp(v, m, inv_t, x)
        s += e if v != m else 0.0
        k += 1 if v == m else 0
    return s, k


@njit(**SERIAL)
def exp_store(x, m, inv_t, dst):
    """Compensated-sum form of :func:`exp_store_block` over the whole row."""
    n = x.shape[0]
    s = 0.0
    c = 0.0
    k = 0
    for lo in range(0, n, SUM_BLOCK):
        v, kb = exp_store_block(x, lo, min(lo + SUM_BLOCK, n), m, inv_t, dst)
        s, c = neumaier_add(s, c, v)
        k += kb
    return s + c, k


@njit(**SERIAL)
def exp_sum(x, m, inv_t):
    """Compensated-sum form of :func:`exp_sum_block` over the whole row."""
    n = x.shape[0]
    s = 0.0
    c = 0.0
    k = 0
    for lo in range(0, n, SUM_BLOCK):
        v, kb = exp_sum_block(x, lo, min(lo + SUM_BLOCK, n), m, inv_t)
        s, c = neumaier_add(s, c, v)
        k += kb
    return s + c, k


@njit(**SERIAL)
def scale_into(src, r, out, lo, hi):
    for i in range(lo, hi):
        out[i] = src[i] * r


@njit(**SERIAL)
def shift_into(x, m, inv_t, lse, out, lo, hi):
    for i in range(lo, hi):
        out[i] = (np.float64(x[i]) - m) * inv_t - lse


@njit(**SERIAL)
def shift_inplace(a, m, inv_t, lse, lo, hi):
    for i in range(lo, hi):
        a[i] = (np.float64(a[i]) - m) * inv_t - lse


@njit(**SERIAL)
def exp_scale_into(x, m, inv_t, r, out, lo, hi):
    for i in range(lo, hi):
        out[i] = shifted_exp(x[i], m, inv_t, x) * r


@njit(**SERIAL)
def exp_scale_inplace(a, m, inv_t, r, lo, hi):
    for i in range(lo, hi):
        a[i] = shifted_exp(a[i], m, inv_t, a) * r


# ------------------------------------------------------------------ rows


@njit(**SERIAL)
def softmax_row(x, out, t, inv_t, scratch):
    """softmax of a unit-stride row into ``out`` (may be ``x``)."""
    n = x.shape[0]
    if n == 0:
        return
    m = row_max(x)
    if -np.inf < m < np.inf:
        s, k = exp_store(x, m, inv_t, scratch)
        if s == s:
            scale_into(scratch, 1.0 / (s + k), out, 0, n)
            return
    _rows.softmax_row(x, out, t, None)


@njit(**SERIAL)
def log_softmax_row(x, out, t, inv_t):
    """log_softmax of a unit-stride row into ``out`` (may be ``x``)."""
    n = x.shape[0]
    if n == 0:
        return
    m = row_max(x)
    if -np.inf < m < np.inf:
        s, k = exp_sum(x, m, inv_t)
        if s == s:
            lse = math.log1p(s + (k - 1))
            if x.ctypes.data == out.ctypes.data:
                shift_inplace(out, m, inv_t, lse, 0, n)
            else:
                shift_into(x, m, inv_t, lse, out, 0, n)
            return
    _rows.log_softmax_row(x, out, t, None)


@njit(**SERIAL)
def logsumexp_row(x):
    """``(logsumexp(x), sign)`` of a unit-stride row."""
    if x.shape[0] > 0:
        m = row_max(x)
        if -np.inf < m < np.inf:
            s, k = exp_sum(x, m, 1.0)
            if s == s:
                return m + math.log1p(s + (k - 1)), 1.0
    return _rows.logsumexp_row(x, None)


@njit(**SERIAL)
def unit_row(row, buf):
    """``row`` typed unit-stride, or copied into ``buf`` when it is strided."""
    if row.strides[0] == row.itemsize:
        return unit_stride_view(row)
    for i in range(row.shape[0]):
        buf[i] = row[i]
    return buf


@njit(**SERIAL)
def as_unit(row):
    """``row`` typed unit-stride, or a new contiguous copy when it is strided."""
    if row.strides[0] == row.itemsize:
        return unit_stride_view(row)
    return unit_row(row, np.empty(row.shape[0], row.dtype))


@njit(**SERIAL)
def row_buffer(a, n):
    """A buffer for the rows of the 2-D ``a`` (rows >= 1): a new one when
    they are strided, else (no allocation) the first row, never written."""
    if a.strides[1] == a.itemsize:
        return unit_stride_view(a[0])
    return np.empty(n, a.dtype)


@njit(**SERIAL)
def write_back(orow, o):
    """Copy the computed row ``o`` into ``orow`` unless it is ``orow`` itself."""
    if orow.strides[0] != orow.itemsize:
        for i in range(orow.shape[0]):
            orow[i] = o[i]


@njit(**SERIAL)
def softmax_rows_range(x, out, t, lo, hi):
    n = x.shape[1]
    scratch = np.empty(n)
    xbuf = row_buffer(x, n)
    obuf = row_buffer(out, n)
    inv_t = 1.0 / t
    for r in range(lo, hi):
        o = unit_row(out[r], obuf)
        softmax_row(unit_row(x[r], xbuf), o, t, inv_t, scratch)
        write_back(out[r], o)


@njit(**SERIAL)
def log_softmax_rows_range(x, out, t, lo, hi):
    n = x.shape[1]
    xbuf = row_buffer(x, n)
    obuf = row_buffer(out, n)
    inv_t = 1.0 / t
    for r in range(lo, hi):
        o = unit_row(out[r], obuf)
        log_softmax_row(unit_row(x[r], xbuf), o, t, inv_t)
        write_back(out[r], o)


@njit(**SERIAL)
def logsumexp_rows_range(x, res, sign, lo, hi):
    xbuf = row_buffer(x, x.shape[1])
    for r in range(lo, hi):
        res[r], sign[r] = logsumexp_row(unit_row(x[r], xbuf))


# -------------------------------------------------------------- long rows


@njit(**SERIAL)
def chunk_stats(xr, c, inv_t, ms, ss, ks):
    """Max, sum of the terms below it and count of entries equal to it,
    for chunk ``c`` of the row."""
    lo = c * LONG_ROW_CHUNK
    chunk = xr[lo:min(lo + LONG_ROW_CHUNK, xr.shape[0])]
    m = row_max(chunk)
    ms[c] = m
    ss[c] = 0.0
    ks[c] = 0
    if -np.inf < m < np.inf:
        ss[c], ks[c] = exp_sum(chunk, m, inv_t)
    elif m != -np.inf:
        ss[c] = np.nan  # +inf or NaN: the row is special


@njit(**SERIAL)
def combine_chunks(ms, ss, ks, inv_t):
    """Row max ``M`` and ``sum(exp((x - M) * inv_t)) - 1`` from chunk stats;
    NaN when the row needs the exact scalar kernel."""
    big = -np.inf
    for c in range(ms.shape[0]):
        if ss[c] != ss[c]:
            return np.nan, np.nan
        big = max(big, ms[c])
    if big == -np.inf:
        return np.nan, np.nan
    s = 0.0
    comp = 0.0
    count_max = 0
    for c in range(ms.shape[0]):
        if ms[c] == big:
            s, comp = neumaier_add(s, comp, ss[c])
            count_max += ks[c]
        elif ms[c] > -np.inf:
            f = math.exp((ms[c] - big) * inv_t)
            s, comp = neumaier_add(s, comp, (ss[c] + ks[c]) * f)
    return big, (s + comp) + (count_max - 1)


@njit(**PARALLEL)
def softmax_long_rows(x, out, t):
    """softmax of unit-stride rows of at least ``LONG_ROW`` elements, each
    split across threads."""
    n = x.shape[1]
    nch = (n + LONG_ROW_CHUNK - 1) // LONG_ROW_CHUNK
    ms = np.empty(nch)
    ss = np.empty(nch)
    ks = np.empty(nch, np.int64)
    inv_t = 1.0 / t
    for r in range(x.shape[0]):
        xr = unit_stride_view(x[r])
        orow = unit_stride_view(out[r])
        for c in prange(nch):
            chunk_stats(xr, c, inv_t, ms, ss, ks)
        big, rest = combine_chunks(ms, ss, ks, inv_t)
        if rest != rest:
            _rows.softmax_row(xr, orow, t, None)
            continue
        scale = 1.0 / (1.0 + rest)
        inplace = xr.ctypes.data == orow.ctypes.data
        for c in prange(nch):
            lo = c * LONG_ROW_CHUNK
            hi = min(lo + LONG_ROW_CHUNK, n)
            if inplace:
                exp_scale_inplace(orow, big, inv_t, scale, lo, hi)
            else:
                exp_scale_into(xr, big, inv_t, scale, orow, lo, hi)


@njit(**PARALLEL)
def log_softmax_long_rows(x, out, t):
    """log_softmax of unit-stride rows of at least ``LONG_ROW`` elements."""
    n = x.shape[1]
    nch = (n + LONG_ROW_CHUNK - 1) // LONG_ROW_CHUNK
    ms = np.empty(nch)
    ss = np.empty(nch)
    ks = np.empty(nch, np.int64)
    inv_t = 1.0 / t
    for r in range(x.shape[0]):
        xr = unit_stride_view(x[r])
        orow = unit_stride_view(out[r])
        for c in prange(nch):
            chunk_stats(xr, c, inv_t, ms, ss, ks)
        big, rest = combine_chunks(ms, ss, ks, inv_t)
        if rest != rest:
            _rows.log_softmax_row(xr, orow, t, None)
            continue
        lse = math.log1p(rest)
        inplace = xr.ctypes.data == orow.ctypes.data
        for c in prange(nch):
            lo = c * LONG_ROW_CHUNK
            hi = min(lo + LONG_ROW_CHUNK, n)
            if inplace:
                shift_inplace(orow, big, inv_t, lse, lo, hi)
            else:
                shift_into(xr, big, inv_t, lse, orow, lo, hi)


@njit(**PARALLEL)
def logsumexp_long_rows(x, res, sign):
    """logsumexp of unit-stride rows of at least ``LONG_ROW`` elements."""
    n = x.shape[1]
    nch = (n + LONG_ROW_CHUNK - 1) // LONG_ROW_CHUNK
    ms = np.empty(nch)
    ss = np.empty(nch)
    ks = np.empty(nch, np.int64)
    for r in range(x.shape[0]):
        xr = unit_stride_view(x[r])
        for c in prange(nch):
            chunk_stats(xr, c, 1.0, ms, ss, ks)
        big, rest = combine_chunks(ms, ss, ks, 1.0)
        if rest != rest:
            res[r], sign[r] = _rows.logsumexp_row(xr, None)
        else:
            res[r], sign[r] = big + math.log1p(rest), 1.0


# ---------------------------------------------------------------- drivers
# One serial and one parallel function per operation: numba's on-disk cache
# does not tell compilation options apart, so one function cannot serve both.
# The parallel ones split the rows into ``nblocks`` contiguous blocks.


@njit(**SERIAL)
def softmax_rows_serial(x, out, t):
    softmax_rows_range(x, out, t, 0, x.shape[0])


@njit(**PARALLEL)
def softmax_rows_parallel(x, out, t, nblocks):
    rows = x.shape[0]
    for b in prange(nblocks):
        softmax_rows_range(x, out, t, b * rows // nblocks, (b + 1) * rows // nblocks)


@njit(**SERIAL)
def log_softmax_rows_serial(x, out, t):
    log_softmax_rows_range(x, out, t, 0, x.shape[0])


@njit(**PARALLEL)
def log_softmax_rows_parallel(x, out, t, nblocks):
    rows = x.shape[0]
    for b in prange(nblocks):
        log_softmax_rows_range(x, out, t, b * rows // nblocks, (b + 1) * rows // nblocks)


@njit(**SERIAL)
def logsumexp_rows_serial(x, res, sign):
    logsumexp_rows_range(x, res, sign, 0, x.shape[0])


@njit(**PARALLEL)
def logsumexp_rows_parallel(x, res, sign, nblocks):
    rows = x.shape[0]
    for b in prange(nblocks):
        logsumexp_rows_range(x, res, sign, b * rows // nblocks, (b + 1) * rows // nblocks)
