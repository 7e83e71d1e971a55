"""Vectorized kernels for rows without a mask.

Per row, passes while the row is in cache:

1. ``m = max(x)``, vectorized (:func:`softjit._simd.max_no_nan`);
2. ``e = exp((x - m) / t)`` into a float64 scratch row (a pure map);
3. the sum of ``e``, in blocks of vectorized partial sums joined by a
   compensated sum;
4. ``out = e * (1 / sum)``, rounded once to the output dtype.

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
from ._options import LONG_ROW, LONG_ROW_CHUNK, PARALLEL, REDUCE, SERIAL, SUM_BLOCK
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

    return lambda v, m, inv_t, x: _exact_shifted_exp(v, m, inv_t, x)


@njit(**SERIAL)
def _exact_shifted_exp(v, m, inv_t, x):
    """``exp((v - m) * inv_t)`` within 1 ulp of float64 for any dtype
    (float32 values minus a float64 are exact in float64; float64 ones are
    formed as a double-double)."""
    d, d_lo = two_diff(np.float64(v), m)
    return exp_neg_f64_2(d * inv_t, d_lo * inv_t)


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


# The loops below index from 0 over views: a loop from a run-time start
# would carry numba's negative-index wraparound test, which blocks
# vectorization; selects are written as arithmetic for the same reason.


@njit(**SERIAL)
def exp_into(x, m, inv_t, dst, exact):
    """``dst[i] = exp((x[i] - m) * inv_t)`` (a pure map: no reduction, so it
    vectorizes without reassociation).  ``exact``: float64 precision also
    for float32 rows (logsumexp, whose result can cancel with ``m``)."""
    if exact:
        for i in range(x.shape[0]):
            dst[i] = _exact_shifted_exp(x[i], m, inv_t, x)
    else:
        for i in range(x.shape[0]):
            dst[i] = shifted_exp(x[i], m, inv_t, x)


@njit(**REDUCE)
def split_sum_block(x, m, e):
    """``(sum of e[i] where x[i] != m, count of x[i] == m)``; a NaN entry
    (``x[i] != m``) makes the sum NaN."""
    s = 0.0
    k = 0
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        s += e[i] * np.float64(v != m)
        k += np.int64(v == m)
    return s, k


@njit(**SERIAL)
def split_sum(x, m, e):
    """:func:`split_sum_block` in blocks joined by a compensated sum."""
    s = 0.0
    c = 0.0
    k = 0
    n = x.shape[0]
    for b in range(0, n, SUM_BLOCK):
        hi = min(b + SUM_BLOCK, n)
        v, kb = split_sum_block(x[b:hi], m, e[b:hi])
        s, c = neumaier_add(s, c, v)
        k += kb
    return s + c, k


@njit(**REDUCE)
def exp_split_sum_fused(x, m, inv_t, e):
    """:func:`exp_into` and :func:`split_sum_block` in one loop, over the
    whole row: for float32 rows, whose float64 sums need no compensation
    (their error, ~n/16 * 1e-16, is far below float32's resolution)."""
    s = 0.0
    k = 0
    for i in range(x.shape[0]):
        v = x[i]
        ei = shifted_exp(v, m, inv_t, x)
        e[i] = ei
        s += ei * np.float64(v != m)
        k += np.int64(v == m)
    return s, k


@njit(**SERIAL)
def exp_sums(x, m, inv_t, e, exact=False):
    """Fill ``e`` with ``exp((x - m) * inv_t)``; return ``(sum of the terms of
    entries != m, count of entries == m)``."""
    if x.itemsize == 4 and not exact:
        return exp_split_sum_fused(x, m, inv_t, e)
    exp_into(x, m, inv_t, e, exact)
    return split_sum(x, m, e)


@njit(**SERIAL)
def scale_into(src, r, out):
    for i in range(out.shape[0]):
        out[i] = src[i] * r


@njit(**SERIAL)
def shift_into(x, m, inv_t, lse, out):
    for i in range(out.shape[0]):
        out[i] = (np.float64(x[i]) - m) * inv_t - lse


@njit(**SERIAL)
def shift_inplace(a, m, inv_t, lse):
    for i in range(a.shape[0]):
        a[i] = (np.float64(a[i]) - m) * inv_t - lse


@njit(**SERIAL)
def exp_scale_into(x, m, inv_t, r, out):
    for i in range(out.shape[0]):
        out[i] = shifted_exp(x[i], m, inv_t, x) * r


@njit(**SERIAL)
def exp_scale_inplace(a, m, inv_t, r):
    for i in range(a.shape[0]):
        a[i] = shifted_exp(a[i], m, inv_t, a) * r


# ------------------------------------------------------------------ rows


@njit(**SERIAL)
def softmax_row(x, out, t, inv_t, scratch):
    """softmax of a unit-stride row into ``out`` (may be ``x``)."""
    n = x.shape[0]
    if n == 0:
        return
    if n >= LONG_ROW:
        long_row(0, x, out, t, inv_t)
        return
    m = row_max(x)
    if -np.inf < m < np.inf:
        s, k = exp_sums(x, m, inv_t, scratch)
        if s == s:
            scale_into(scratch[:n], 1.0 / (s + k), out)
            return
    _rows.softmax_row(x, out, t, None)


@njit(**SERIAL)
def log_softmax_row(x, out, t, inv_t, scratch):
    """log_softmax of a unit-stride row into ``out`` (may be ``x``)."""
    n = x.shape[0]
    if n == 0:
        return
    if n >= LONG_ROW:
        long_row(1, x, out, t, inv_t)
        return
    m = row_max(x)
    if -np.inf < m < np.inf:
        s, k = exp_sums(x, m, inv_t, scratch)
        if s == s:
            lse = math.log1p(s + (k - 1))
            if x.ctypes.data == out.ctypes.data:
                shift_inplace(out, m, inv_t, lse)
            else:
                shift_into(x, m, inv_t, lse, out)
            return
    _rows.log_softmax_row(x, out, t, None)


@njit(**SERIAL)
def logsumexp_row(x, scratch):
    """``(logsumexp(x), sign)`` of a unit-stride row."""
    if x.shape[0] >= LONG_ROW:
        return long_row(2, x, scratch[:0], 1.0, 1.0)
    if x.shape[0] > 0:
        m = row_max(x)
        if -np.inf < m < np.inf:
            s, k = exp_sums(x, m, 1.0, scratch, True)
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
    scratch = np.empty(n)
    xbuf = row_buffer(x, n)
    obuf = row_buffer(out, n)
    inv_t = 1.0 / t
    for r in range(lo, hi):
        o = unit_row(out[r], obuf)
        log_softmax_row(unit_row(x[r], xbuf), o, t, inv_t, scratch)
        write_back(out[r], o)


@njit(**SERIAL)
def logsumexp_rows_range(x, res, sign, lo, hi):
    scratch = np.empty(x.shape[1])
    xbuf = row_buffer(x, x.shape[1])
    for r in range(lo, hi):
        res[r], sign[r] = logsumexp_row(unit_row(x[r], xbuf), scratch)


# ------------------------------------------------------------- short rows
# Rows of a few elements: per-row calls would cost more than the work, and
# loops of a few iterations do not vectorize.  A block of consecutive rows
# of a C-contiguous array is one flat span: the maxima go to a flat array
# (one per element), so ``exp`` runs as one long vectorized loop.

SHORT_BLOCK = 2048  # elements per block of short rows


@njit(**SERIAL)
def exp_flat(x, mflat, inv_t, e, exact):
    """``e[i] = exp((x[i] - mflat[i]) * inv_t)`` over a flat block (``exact``
    as in :func:`exp_into`)."""
    if exact:
        for i in range(x.shape[0]):
            e[i] = _exact_shifted_exp(x[i], mflat[i], inv_t, x)
    else:
        for i in range(x.shape[0]):
            e[i] = shifted_exp(x[i], mflat[i], inv_t, x)


@njit(**SERIAL)
def short_block(kind, xf, of, res, sign, n, t, r0, nrows, e, mflat, mrow):
    """softmax (kind 0) or log_softmax (1) into the flat ``of``, or
    logsumexp (2) into ``res``/``sign``, of rows ``r0 .. r0 + nrows`` of the
    flat C-contiguous ``xf`` with rows of ``n`` elements."""
    inv_t = 1.0 / t
    b0 = r0 * n
    xs = xf[b0:b0 + nrows * n]
    for r in range(nrows):
        m = np.float64(xs[r * n])
        for j in range(1, n):
            v = np.float64(xs[r * n + j])
            m = v if v > m else m
        mrow[r] = m
        mf = m if -np.inf < m < np.inf else 0.0
        for j in range(n):
            mflat[r * n + j] = mf
    exp_flat(xs, mflat[:nrows * n], inv_t, e, kind == 2)
    for r in range(nrows):
        b = r * n
        m = mrow[r]
        s, k = split_sum(xs[b:b + n], m, e[b:b + n])  # as the per-row kernels sum
        special = not (-np.inf < m < np.inf) or s != s
        if kind == 0:
            o = of[b0 + b:b0 + b + n]
            if special:
                _rows.softmax_row(xs[b:b + n], o, t, None)
            else:
                rr = 1.0 / (s + k)
                for j in range(n):
                    o[j] = e[b + j] * rr
        elif kind == 1:
            o = of[b0 + b:b0 + b + n]
            if special:
                _rows.log_softmax_row(xs[b:b + n], o, t, None)
            else:
                lse = math.log1p(s + (k - 1))
                for j in range(n):
                    o[j] = (np.float64(xs[b + j]) - m) * inv_t - lse
        elif special:
            res[r0 + r], sign[r0 + r] = _rows.logsumexp_row(xs[b:b + n], None)
        else:
            res[r0 + r] = m + math.log1p(s + (k - 1))
            sign[r0 + r] = 1.0


@njit(**SERIAL)
def short_rows_range(kind, x, out, res, sign, t, lo, hi):
    """:func:`short_block` over rows ``lo .. hi`` of the C-contiguous 2-D
    ``x`` (and ``out``), in blocks of about ``SHORT_BLOCK`` elements."""
    n = x.shape[1]
    per = max(1, SHORT_BLOCK // n)
    e = np.empty(per * n)
    mflat = np.empty(per * n)
    mrow = np.empty(per)
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for r0 in range(lo, hi, per):
        short_block(kind, xf, of, res, sign, n, t, r0, min(per, hi - r0), e, mflat, mrow)


@njit(**SERIAL)
def short_rows_serial(kind, x, out, res, sign, t):
    short_rows_range(kind, x, out, res, sign, t, 0, x.shape[0])


@njit(**PARALLEL)
def short_rows_parallel(kind, x, out, res, sign, t, nblocks):
    rows = x.shape[0]
    for b in prange(nblocks):
        short_rows_range(kind, x, out, res, sign, t, b * rows // nblocks,
                         (b + 1) * rows // nblocks)


# ------------------------------------------------------------ small calls


@njit(**SERIAL)
def small_call(kind, x):
    """softmax (kind 0), log_softmax (1) or logsumexp (2) along the last
    axis of a small C-contiguous 2-D array, allocating the result here: one
    compiled call with the least overhead for the common small case."""
    rows, n = x.shape
    scratch = np.empty(n)
    if kind == 2:
        res = np.empty((rows, 1), x.dtype)
        for r in range(rows):
            res[r, 0], _ = logsumexp_row(x[r], scratch)
        return res
    out = np.empty_like(x)
    for r in range(rows):
        if kind == 0:
            softmax_row(x[r], out[r], 1.0, 1.0, scratch)
        else:
            log_softmax_row(x[r], out[r], 1.0, 1.0, scratch)
    return out


# -------------------------------------------------------------- long rows


@njit(**SERIAL)
def chunk_stats(xr, c, inv_t, ms, ss, ks, exact):
    """Max, sum of the terms below it and count of entries equal to it,
    for chunk ``c`` of the row."""
    lo = c * LONG_ROW_CHUNK
    chunk = xr[lo:min(lo + LONG_ROW_CHUNK, xr.shape[0])]
    m = row_max(chunk)
    ms[c] = m
    ss[c] = 0.0
    ks[c] = 0
    if -np.inf < m < np.inf:
        ss[c], ks[c] = exp_sums(chunk, m, inv_t, np.empty(chunk.shape[0]), exact)
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


@njit(**SERIAL)
def long_finish_chunk(kind, xr, orow, c, big, inv_t, value):
    """Chunk ``c`` of a long row: softmax (kind 0, ``value`` = 1/sum) or
    log_softmax (kind 1, ``value`` = log of the sum) into ``orow``."""
    lo = c * LONG_ROW_CHUNK
    hi = min(lo + LONG_ROW_CHUNK, xr.shape[0])
    inplace = xr.ctypes.data == orow.ctypes.data
    if kind == 0 and inplace:
        exp_scale_inplace(orow[lo:hi], big, inv_t, value)
    elif kind == 0:
        exp_scale_into(xr[lo:hi], big, inv_t, value, orow[lo:hi])
    elif inplace:
        shift_inplace(orow[lo:hi], big, inv_t, value)
    else:
        shift_into(xr[lo:hi], big, inv_t, value, orow[lo:hi])


@njit(**SERIAL)
def long_special(kind, xr, orow, t):
    """A long row with special values: the exact scalar kernels."""
    if kind == 0:
        _rows.softmax_row(xr, orow, t, None)
    elif kind == 1:
        _rows.log_softmax_row(xr, orow, t, None)
    else:
        return _rows.logsumexp_row(xr, None)
    return np.nan, np.nan


@njit(**SERIAL)
def long_value(kind, big, rest):
    """What the finishing pass needs: 1/sum (softmax), log(sum) (log_softmax),
    or logsumexp itself (kind 2)."""
    if kind == 0:
        return 1.0 / (1.0 + rest)
    if kind == 1:
        return math.log1p(rest)
    return big + math.log1p(rest)


@njit(**SERIAL)
def long_row(kind, xr, orow, t, inv_t):
    """softmax (kind 0) / log_softmax (1) into ``orow``, or logsumexp (2,
    returned with its sign), of a unit-stride row of at least ``LONG_ROW``
    elements: chunk statistics, combined, then a finishing pass.

    :func:`long_rows_parallel` does the same arithmetic with the chunks
    spread over threads, so both give identical bits.
    """
    nch = (xr.shape[0] + LONG_ROW_CHUNK - 1) // LONG_ROW_CHUNK
    ms = np.empty(nch)
    ss = np.empty(nch)
    ks = np.empty(nch, np.int64)
    for c in range(nch):
        chunk_stats(xr, c, inv_t, ms, ss, ks, kind == 2)
    big, rest = combine_chunks(ms, ss, ks, inv_t)
    if rest != rest:
        return long_special(kind, xr, orow, t)
    value = long_value(kind, big, rest)
    if kind == 2:
        return value, 1.0
    for c in range(nch):
        long_finish_chunk(kind, xr, orow, c, big, inv_t, value)
    return np.nan, np.nan


@njit(**PARALLEL)
def long_rows_parallel(kind, x, out, res, sign, t):
    """:func:`long_row` over the unit-stride rows of ``x``, each row's
    chunks split across threads (``out`` for kinds 0/1, ``res``/``sign``
    for kind 2)."""
    n = x.shape[1]
    nch = (n + LONG_ROW_CHUNK - 1) // LONG_ROW_CHUNK
    ms = np.empty(nch)
    ss = np.empty(nch)
    ks = np.empty(nch, np.int64)
    inv_t = 1.0 / t
    for r in range(x.shape[0]):
        xr = unit_stride_view(x[r])
        orow = unit_stride_view(out[r if kind != 2 else 0])
        for c in prange(nch):
            chunk_stats(xr, c, inv_t, ms, ss, ks, kind == 2)
        big, rest = combine_chunks(ms, ss, ks, inv_t)
        if rest != rest:
            v, sg = long_special(kind, xr, orow, t)
        else:
            v = long_value(kind, big, rest)
            sg = 1.0
            if kind != 2:
                for c in prange(nch):
                    long_finish_chunk(kind, xr, orow, c, big, inv_t, v)
        if kind == 2:
            res[r] = v
            sign[r] = sg


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
