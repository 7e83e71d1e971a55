"""Vectorized kernels for rows without a mask.

Per row, passes while the row is in cache:

1. ``m = max(x)``, vectorized (:func:`softjit._simd.max_no_nan`);
2. one fused pass: ``e = exp((x - m) / t)`` into a float64 scratch row,
   its sum (float64 rows: blocks of vectorized partial sums joined by a
   compensated sum), and the maximum of the *next* row, whose reading from
   memory then overlaps the ``exp`` arithmetic (so step 1 is done once,
   for the first row of a block);
3. ``out = e * (1 / sum)``, rounded once to the output dtype; for float64
   the sum is taken again from ``e``, exact to about one rounding
   (:func:`lane_sum`, :func:`seq_sum`), and ``1 / sum`` from that
   double-double: the largest entries are ``1 / sum``, where the blocked
   sum's error of an ulp or two would show doubled.  (Long rows keep their
   chunked sums.)

All arithmetic is float64: float32 rows use a shorter ``exp`` that is
exact enough for float32 results (:mod:`softjit._simd`).  log_softmax and
logsumexp need the sum of the terms below the maximum apart from the
count of entries equal to it, so that ``log1p`` of the exact remainder
keeps the largest entry's tiny negative value: float64 rows and float32
rows of at most ``SHORT_ROW`` elements sum them apart; longer float32 rows
sum every term and take ``sum - 1`` when that is large enough
(:func:`exp_sum_below`; long rows: :func:`second_mode`).  softmax sums
every term.

A row whose maximum is not finite, or whose sum is NaN (a NaN entry), is
recomputed by the exact scalar kernels of :mod:`softjit._rows`, which own
the special-value rules.  Rows of at least ``LONG_ROW`` elements are
processed in chunks split across threads (an online max and sum, for a
few float32 rows a second one, then a pass that recomputes ``exp``), so
no scratch row leaves the cache.

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
from ._options import (
    LONG_ROW,
    LONG_ROW_CHUNK,
    PARALLEL,
    REDUCE,
    SERIAL,
    SHORT_BLOCK_ROWS,
    SHORT_ROW,
    STREAM_MIN_BYTES,
    SUM_BLOCK,
)
from ._simd import (
    STREAM_BYTES,
    exp_neg_f64_2,
    exp_neg_f64_for_f32,
    line_view,
    log1p_pos,
    max_no_nan,
    read_only_view,
    reciprocal2,
    span_view,
    store_fence,
    stream_scaled,
    two_diff,
    two_sum,
    unit_stride_view,
)


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
def exact_exp_into(x, m, inv_t, dst):
    """``dst[i] = exp((x[i] - m) * inv_t)`` with the float64-exact ``exp``
    also for float32 rows (a pure map: no reduction, so it vectorizes
    without reassociation)."""
    for i in range(x.shape[0]):
        dst[i] = _exact_shifted_exp(x[i], m, inv_t, x)


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


@njit(**SERIAL)
def exp_sums(x, m, inv_t, e, exact=False):
    """Fill ``e`` with ``exp((x - m) * inv_t)``; return ``(sum of the terms of
    entries != m, count of entries == m)``.  ``exact``: the float64-exact
    ``exp`` also for float32 rows (logsumexp of long rows near 0)."""
    if exact and x.itemsize == 4:
        exact_exp_into(x, m, inv_t, e)
        return split_sum(x, m, e)
    s, k, _ = exp_sum(x, m, inv_t, e, x)
    return s, np.int64(k)


@njit(**REDUCE)
def exp_sum_block(x, m, inv_t, e, nxt, split):
    """Fill ``e`` with ``exp((x - m) * inv_t)`` and return ``(sum, count,
    max of nxt)``: with ``split``, the sum leaves out the entries equal to
    ``m`` (whose terms are exactly 1) and ``count`` counts them; without,
    the sum has every term.  A NaN entry makes the sum NaN (it is not
    equal to ``m``).

    ``nxt`` is the next row (or ``x`` again): reading it here, while the
    ``exp`` arithmetic runs, brings it from memory in the shadow of the
    computation, and its maximum is ready for the next row.
    """
    s = 0.0
    k = 0.0
    mn = nxt[0]
    if split:
        # A product, not ``ei - 1`` for the maximum: with reassociation
        # allowed, the compiler could sum the ones apart and cancel them.
        for i in range(x.shape[0]):
            v = x[i]
            ei = shifted_exp(v, m, inv_t, x)
            e[i] = ei
            below = np.float64(np.float64(v) != m)
            s += ei * below
            k += below
            mn = max_no_nan(mn, nxt[i])
        k = x.shape[0] - k
    else:
        for i in range(x.shape[0]):
            ei = shifted_exp(x[i], m, inv_t, x)
            e[i] = ei
            s += ei
            mn = max_no_nan(mn, nxt[i])
    return s, k, np.float64(mn)


@njit(**SERIAL)
def row_sums(x, e, m, split):
    """The sum of ``e[:len(x)]`` in a fixed order (four interleaved partial
    sums, for short dependency chains); with ``split``, of the terms of the
    entries of ``x`` below ``m`` only, and the count of the others."""
    n = x.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    k = 0.0
    j = 0
    if split:
        while j + 4 <= n:
            w0 = np.float64(np.float64(x[j]) != m)
            w1 = np.float64(np.float64(x[j + 1]) != m)
            w2 = np.float64(np.float64(x[j + 2]) != m)
            w3 = np.float64(np.float64(x[j + 3]) != m)
            s0 += e[j] * w0
            s1 += e[j + 1] * w1
            s2 += e[j + 2] * w2
            s3 += e[j + 3] * w3
            k += (w0 + w1) + (w2 + w3)
            j += 4
        while j < n:
            w0 = np.float64(np.float64(x[j]) != m)
            s0 += e[j] * w0
            k += w0
            j += 1
        k = n - k
    else:
        while j + 4 <= n:
            s0 += e[j]
            s1 += e[j + 1]
            s2 += e[j + 2]
            s3 += e[j + 3]
            j += 4
        while j < n:
            s0 += e[j]
            j += 1
    return (s0 + s1) + (s2 + s3), k


@njit(**SERIAL)
def exact_split_sum(x, m):
    """``(s, k)``: the sum of ``exp(x - m)`` over the entries of the row
    ``x`` below ``m``, with the float64-exact ``exp``, in order, and the
    count of the others (float32 logsumexp results near 0)."""
    s = 0.0
    k = 0.0
    for j in range(x.shape[0]):
        v = np.float64(x[j])
        below = np.float64(v != m)
        s += _exact_shifted_exp(v, m, 1.0, x) * below
        k += below
    return s, x.shape[0] - k


@njit(**SERIAL)
def exp_sum(x, m, inv_t, e, nxt):
    """:func:`exp_sum_block` with ``split`` (the terms below the maximum and
    the count of the others) over a row: float32 rows in one block (their
    float64 sums need no compensation: the error, ~n/16 * 1e-16, is far
    below float32's resolution), float64 rows in blocks of ``SUM_BLOCK``
    joined by a compensated sum.  Rows of at most ``SHORT_ROW`` elements
    are summed in order (:func:`row_sums`), as the short-row kernels sum
    them, so that every path gives the same bits."""
    n = x.shape[0]
    if n <= SHORT_ROW:  # summed in order, as the short-row blocks sum
        _, _, mn = exp_sum_block(x, m, inv_t, e, nxt, True)
        s, k = row_sums(x, e, m, True)
        return s, k, mn
    if x.itemsize == 4:
        return exp_sum_block(x, m, inv_t, e, nxt, True)
    s = 0.0
    c = 0.0
    k = 0.0
    mn = -np.inf
    for b in range(0, n, SUM_BLOCK):
        hi = min(b + SUM_BLOCK, n)
        v, kb, mb = exp_sum_block(x[b:hi], m, inv_t, e[b:hi], nxt[b:hi], True)
        s, c = neumaier_add(s, c, v)
        k += kb
        mn = max_no_nan(mn, mb)
    return s + c, k, mn


#: float32 rows longer than ``SHORT_ROW`` sum every term (each maximum
#: adds exactly 1) and take ``sum - 1`` for the sum below the maximum when
#: it is at least this: the rounding of the whole sum (relative error at
#: most ``n * 2**-53``, ``n < LONG_ROW``) is then below 1e-9 of it, far
#: under float32's resolution.  Smaller, the row is summed again apart.
SPLIT_FREE_MIN = 2.0 ** -6


@njit(**SERIAL)
def exp_sum_below(x, m, inv_t, e, nxt, apart=True):
    """``(s, k, row_max(nxt))`` with ``s + k`` the sum of the terms
    ``exp((x - m) * inv_t)`` (filled into ``e``) and ``s + (k - 1)``
    accurate to the precision that ``log1p(s + (k - 1))`` (log_softmax and
    logsumexp) needs: ``s`` the terms below the maximum and ``k`` the count
    of the others (:func:`exp_sum` with ``split``), or, for float32 rows
    longer than ``SHORT_ROW``, ``(sum - 1, 1)`` when that is at least
    ``SPLIT_FREE_MIN`` (one plain sum: the split's compare and count per
    term cost ~0.3 ns of the ~1.1 ns), or when not ``apart`` (logsumexp,
    whose float32 results near 0 are refined anyway, and elsewhere need
    ``log1p(sum - 1)`` only to an absolute 1e-9).  A NaN entry makes ``s``
    NaN."""
    if x.itemsize == 4 and x.shape[0] > SHORT_ROW:
        s, _, mn = exp_sum_block(x, m, inv_t, e, nxt, False)
        if not apart or not s - 1.0 < SPLIT_FREE_MIN:  # (NaN too)
            return s - 1.0, 1.0, mn
    return exp_sum(x, m, inv_t, e, nxt)


#: Running sums of :func:`lane_sum`; the kernels' float64 scratch rows
#: (:func:`row_scratch`) carry ``2 * SUM_LANES`` elements for them.
SUM_LANES = 32


@njit(**SERIAL)
def row_scratch(n):
    """A float64 scratch row for rows of ``n`` elements, with room for
    :func:`lane_sum`'s running sums after them."""
    return np.empty(n + 2 * SUM_LANES)


@njit(**SERIAL)
def lane_scratch(scratch, n):
    """``scratch``, or a copy of its first ``n`` elements in a buffer from
    :func:`row_scratch` when it has no room for :func:`lane_sum`'s running
    sums (the kernels allocate their scratch with row_scratch)."""
    if scratch.shape[0] >= n + 2 * SUM_LANES:
        return scratch
    buf = row_scratch(n)
    buf[:n] = scratch[:n]
    return buf


@njit(**SERIAL)
def lane_sum(scratch, n):
    """``(s, s_lo)``: the sum of ``scratch[:n]`` as a double-double.

    ``SUM_LANES`` running sums (``scratch[n:]``), pairs of terms (their sum
    rounded once, an error of at most half an ulp of the pair) added with
    an exact TwoSum whose error is kept (vectorized across the lanes: no
    reassociation needed), then the lanes folded in halves the same way
    (``SUM_LANES`` is a power of two) and the tail added: within about
    one rounding of the exact sum, where the blocked sums of
    :func:`exp_sum` lose a few (float64 softmax of rows shorter than
    ``LONG_ROW``, whose largest entries are ``1 / sum``, needs this).
    """
    s = span_view(scratch, n, SUM_LANES)
    c = span_view(scratch, n + SUM_LANES, SUM_LANES)
    for lane in range(SUM_LANES):
        s[lane] = 0.0
        c[lane] = 0.0
    nb = n // SUM_LANES
    for b in range(0, nb - 1, 2):  # pairs of terms, each pair rounded once
        v = span_view(scratch, b * SUM_LANES, 2 * SUM_LANES)
        for lane in range(SUM_LANES):
            s[lane], err = two_sum(s[lane], v[lane] + v[lane + SUM_LANES])
            c[lane] += err
    if nb % 2 == 1:
        v = span_view(scratch, (nb - 1) * SUM_LANES, SUM_LANES)
        for lane in range(SUM_LANES):
            s[lane], err = two_sum(s[lane], v[lane])
            c[lane] += err
    h = SUM_LANES // 2
    while h > 0:  # fold the lanes in halves, each step vectorized
        for lane in range(h):
            s[lane], err = two_sum(s[lane], s[lane + h])
            c[lane] += c[lane + h] + err
        h //= 2
    total = s[0]
    comp = c[0]
    for i in range(nb * SUM_LANES, n):
        total, err = two_sum(total, scratch[i])
        comp += err
    return two_sum(total, comp)


@njit(**SERIAL)
def seq_sum(e, n):
    """``(s, s_lo)``: ``e[0] + ... + e[n - 1]`` as a double-double, in
    order, every term added with an exact TwoSum: float64 softmax of rows
    of at most ``SHORT_ROW`` elements, summed in this order by every path
    (:func:`short_block` and the column kernels across rows), so that all
    give the same bits."""
    total = 0.0
    comp = 0.0
    for i in range(n):
        total, err = two_sum(total, e[i])
        comp += err
    return two_sum(total, comp)


@njit(**SERIAL)
def scale_into(src, r, out):
    for i in range(out.shape[0]):
        out[i] = src[i] * r


@njit(**SERIAL)
def stream_scale_into(src, r, out):
    """``out[i] = src[i] * r`` (float64 ``src``) with streaming stores,
    which write around the caches: for results larger than the cache,
    whose stores would otherwise first read each line from memory."""
    n = out.shape[0]
    w = STREAM_BYTES // out.itemsize
    i = 0
    addr = out.ctypes.data
    while i < n and (addr + i * out.itemsize) % STREAM_BYTES != 0:
        out[i] = src[i] * r
        i += 1
    while i + w <= n:
        stream_scaled(src, i, r, out)
        i += w
    while i < n:
        out[i] = src[i] * r
        i += 1
    store_fence()


@njit(**SERIAL)
def streams(x, out):
    """Whether ``out`` gets streaming stores: a result of at least
    ``STREAM_MIN_BYTES`` (larger than the caches), not in place."""
    return out.size * out.itemsize >= STREAM_MIN_BYTES and x.ctypes.data != out.ctypes.data


@njit(**SERIAL)
def exp_into(x, m, inv_t, dst):
    """``dst[i] = exp((x[i] - m) * inv_t)``, as in the row kernels."""
    for i in range(x.shape[0]):
        dst[i] = shifted_exp(x[i], m, inv_t, x)


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
def softmax_row_m(x, out, t, inv_t, scratch, m, nxt, stream):
    """softmax of a unit-stride row shorter than ``LONG_ROW`` into ``out``
    (may be ``x``), given ``m = row_max(x)``; returns ``row_max(nxt)``.
    ``stream``: write ``out`` with streaming stores.  ``scratch``: from
    :func:`row_scratch` (float64 rows are summed by :func:`lane_sum`)."""
    if -np.inf < m < np.inf:
        # One block: float32 rows longer than SHORT_ROW are summed so by
        # exp_sum too; shorter ones again in row_sums' order below; float64
        # rows by lane_sum or seq_sum (this sum only shows a NaN).
        s, _, mn = exp_sum_block(x, m, inv_t, scratch, nxt, False)
        if s == s:
            n = x.shape[0]
            if x.itemsize == 8:  # 1 / sum within about half an ulp (see lane_sum)
                r = reciprocal2(*(seq_sum(scratch, n) if n <= SHORT_ROW
                                  else lane_sum(lane_scratch(scratch, n), n)))
            else:
                if n <= SHORT_ROW:
                    s, _ = row_sums(x, scratch, m, False)
                r = 1.0 / s
            if stream:
                stream_scale_into(scratch, r, out)
            else:
                scale_into(scratch, r, out)
            return mn
    _rows.softmax_row(x, out, t, None)
    return row_max(nxt)


@njit(**SERIAL)
def log_softmax_row_m(x, out, t, inv_t, scratch, m, nxt, stream):
    """log_softmax as :func:`softmax_row_m`: ``log1p`` of the sum of the
    terms below the maximum (plus the count of the others, less one) keeps
    the largest entry's tiny negative value."""
    if -np.inf < m < np.inf:
        s, k, mn = exp_sum_below(x, m, inv_t, scratch, nxt)
        if s == s:
            lse = log1p_pos(s + (k - 1.0))
            if x.ctypes.data == out.ctypes.data:
                shift_inplace(out, m, inv_t, lse)
            elif stream:
                buf = span_view(scratch, 0, x.shape[0])  # scratch is longer than the row
                shift_into(x, m, inv_t, lse, buf)
                stream_scale_into(buf, 1.0, out)
            else:
                shift_into(x, m, inv_t, lse, out)
            return mn
    _rows.log_softmax_row(x, out, t, None)
    return row_max(nxt)


@njit(**SERIAL)
def rowwise(kind, x, out, t, inv_t, scratch):
    """softmax (kind 0) or log_softmax (1) of a unit-stride row of any
    length into ``out`` (may be ``x``)."""
    n = x.shape[0]
    stream = streams(x, out)
    if n >= LONG_ROW:
        long_row(kind, x, out, t, inv_t, stream)
    elif n > 0 and kind == 0:
        softmax_row_m(x, out, t, inv_t, scratch, row_max(x), x, stream)
    elif n > 0:
        log_softmax_row_m(x, out, t, inv_t, scratch, row_max(x), x, stream)


@njit(**SERIAL)
def logsumexp_value(x, b, n, m, s, k):
    """logsumexp of ``x[b:b + n]`` from its maximum ``m`` and ``s + (k - 1)``
    = the sum of the terms less 1 (``s`` the terms below the maximum and
    ``k`` the count of the others, or see :func:`exp_sum_below`; float32
    rows: see :func:`logsumexp_refine`)."""
    return logsumexp_refine(x, b, n, m, m + log1p_pos(s + (k - 1.0)))


@njit(**SERIAL)
def logsumexp_refine(x, b, n, m, lse):
    """``lse = m + log1p(s + k - 1)`` of ``x[b:b + n]``, made exact enough
    for float32 rows.

    For float32 rows ``s`` comes from the float32-grade ``exp`` (relative
    error ~1e-8, so the logarithm's absolute error is ~1e-8): below half a
    float32 ulp of a result of magnitude >= 1.  Near 0, where ``m`` and the
    logarithm cancel, the sum is recomputed with the float64-exact ``exp``.
    """
    if x.itemsize == 4 and abs(lse) < 1.0:
        s, k = exact_split_sum(x[b:b + n], m)
        return m + log1p_pos(s + (k - 1.0))
    return lse


@njit(**SERIAL)
def logsumexp_row_m(x, scratch, m, nxt):
    """``(logsumexp(x), sign, row_max(nxt))`` of a unit-stride row shorter
    than ``LONG_ROW``, given ``m = row_max(x)`` (float32 precision as in
    :func:`logsumexp_value`)."""
    if -np.inf < m < np.inf:
        s, k, mn = exp_sum_below(x, m, 1.0, scratch, nxt, False)
        if s == s:
            return logsumexp_value(x, np.int64(0), x.shape[0], m, s, k), 1.0, mn
    res, sign = _rows.logsumexp_row(x, None)
    return res, sign, row_max(nxt)


@njit(**SERIAL)
def logsumexp_row(x, scratch):
    """``(logsumexp(x), sign)`` of a unit-stride row."""
    n = x.shape[0]
    if n >= LONG_ROW:
        # No literal arguments: each would compile a second long_row (the
        # last argument is False: an empty output never streams).
        return long_row(np.int64(2), x, scratch[:0], 1.0, 1.0, streams(x, scratch[:0]))
    if n == 0:
        return _rows.logsumexp_row(x, None)
    res, sign, _ = logsumexp_row_m(x, scratch, row_max(x), x)
    return res, sign


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
def rows_range(kind, x, out, res, sign, t, lo, hi):
    """softmax (kind 0) or log_softmax (1) of rows ``lo .. hi`` of the 2-D
    ``x`` (rows of 1 to ``LONG_ROW - 1`` elements) into ``out``, or
    logsumexp (2) into ``res``/``sign`` (``out`` then unused, but writable
    and with at least one row).  Rows of a unit-stride ``x`` are
    pipelined: the pass that computes row ``r``'s ``exp`` also reads row
    ``r + 1`` and finds its maximum."""
    n = x.shape[1]
    if lo >= hi:
        return
    inv_t = 1.0 / t
    obuf = row_buffer(out, n)
    xbuf = row_buffer(x, n)
    scratch = row_scratch(n)
    pipelined = x.strides[1] == x.itemsize
    unit_out = out.strides[1] == out.itemsize
    stream = kind != 2 and unit_out and streams(x, out)
    xr = line_view(x, lo, 0, n) if pipelined else unit_row(x[lo], xbuf)
    m = row_max(xr)
    for r in range(lo, hi):
        if pipelined:  # borrowed views of rows: no copy, no reference counts
            nxt = line_view(x, min(r + 1, hi - 1), 0, n)
        else:
            if r > lo:
                xr = unit_row(x[r], xbuf)
                m = row_max(xr)
            nxt = xr
        if kind == 2:
            res[r], sign[r], m = logsumexp_row_m(xr, scratch, m, nxt)
        else:
            o = line_view(out, r, 0, n) if unit_out else obuf
            if kind == 0:
                m = softmax_row_m(xr, o, t, inv_t, scratch, m, nxt, stream)
            else:
                m = log_softmax_row_m(xr, o, t, inv_t, scratch, m, nxt, stream)
            if not unit_out:
                write_back(out[r], o)
        xr = nxt


# ------------------------------------------------------------- short rows
# Rows of a few elements: loops over one row are too short to vectorize,
# and per-row calls cost more than the work.  A block of consecutive rows
# is transposed into a float64 scratch of shape (n, rows), so that every
# pass (maxima, exp, sums) is a loop over rows, vectorized across them;
# only the copies in and out are scalar.  Sums follow row_sums' order
# (float64 softmax: seq_sum's), so every path gives the same bits.

@njit(**SERIAL)
def exp_line(xr, mf, inv_t, er, x):
    """``er[r] = exp((xr[r] - mf[r]) * inv_t)`` (the precision of ``x``'s
    dtype, see :func:`shifted_exp`)."""
    for r in range(xr.shape[0]):
        er[r] = shifted_exp(xr[r], mf[r], inv_t, x)


@njit(**SERIAL)
def block_exp(xt, mf, inv_t, e, x):
    """``e[j, r] = exp((xt[j, r] - mf[r]) * inv_t)``, vectorized over ``r``:
    a loop over 1-D views of the lines (a third faster than the same loop
    indexing the 2-D blocks: 0.75 against 1.1 ns per float32 element)."""
    rows = xt.shape[1]
    for j in range(xt.shape[0]):
        exp_line(line_view(xt, j, 0, rows), mf, inv_t, line_view(e, j, 0, rows), x)


@njit(**SERIAL)
def short_block(kind, xb, ob, res, sign, t, r0, xt, e, acc, m, mf):
    """softmax (kind 0) or log_softmax (1) of the rows of the 2-D
    C-contiguous block ``xb`` into ``ob`` (may be ``xb``), or logsumexp (2)
    into ``res[r0:]``/``sign[r0:]``.  ``xt``/``e`` are (n, rows) scratch
    blocks, ``acc`` (5, rows), ``m``/``mf`` at least ``rows`` long.  A row
    with a special value goes to the exact scalar kernels."""
    rows, n = xb.shape
    inv_t = 1.0 / t
    for j in range(n):
        for r in range(rows):
            xt[j, r] = xb[r, j]
    for r in range(rows):
        m[r] = xt[0, r]
    for j in range(1, n):
        for r in range(rows):
            m[r] = max_no_nan(m[r], xt[j, r])  # a NaN shows in the sum below
    for r in range(rows):
        v = m[r]
        mf[r] = v if -np.inf < v < np.inf else 0.0
    block_exp(xt, mf, inv_t, e, xb)
    for q in range(5):
        for r in range(rows):
            acc[q, r] = 0.0
    # acc[0..3]: row_sums' four interleaved partial sums; acc[4]: entries
    # below the maximum (log_softmax, logsumexp).  float64 softmax: a
    # running sum (acc[0]) and its rounding errors (acc[1]), seq_sum's order.
    exact = kind == 0 and xb.itemsize == 8
    q4 = n - n % 4
    for j in range(n):
        q = j % 4 if j < q4 else 0
        if exact:
            for r in range(rows):
                acc[0, r], err = two_sum(acc[0, r], e[j, r])
                acc[1, r] += err
        elif kind == 0:
            for r in range(rows):
                acc[q, r] += e[j, r]
        else:
            for r in range(rows):
                w = np.float64(xt[j, r] != m[r])
                acc[q, r] += e[j, r] * w
                acc[4, r] += w
    # Across rows: acc[0] = the sum (float64 softmax: acc[0] + acc[2]),
    # acc[1] = what the output needs (1/sum, or log1p of the sum below the
    # maximum plus the count of maxima less 1).
    if exact:
        for r in range(rows):
            acc[0, r], acc[2, r] = two_sum(acc[0, r], acc[1, r])
            acc[1, r] = reciprocal2(acc[0, r], acc[2, r])
    else:
        for r in range(rows):
            acc[0, r] = (acc[0, r] + acc[1, r]) + (acc[2, r] + acc[3, r])
        if kind == 0:
            for r in range(rows):
                acc[1, r] = 1.0 / acc[0, r]
        else:
            for r in range(rows):
                acc[1, r] = log1p_pos(acc[0, r] + ((n - acc[4, r]) - 1.0))
    xf = xb.reshape(-1)
    of = ob.reshape(-1)  # empty for logsumexp
    for r in range(rows):
        s = acc[0, r]
        mr = m[r]
        if not (-np.inf < mr < np.inf) or s != s:
            short_special(kind, xf, of, res, sign, t, r * n, n, r0 + r)
        elif kind == 0:
            rr = acc[1, r]
            for j in range(n):
                ob[r, j] = e[j, r] * rr
        elif kind == 1:
            lse = acc[1, r]
            for j in range(n):
                ob[r, j] = (xt[j, r] - mr) * inv_t - lse
        else:
            lse = mr + acc[1, r]
            if xb.itemsize == 4 and abs(lse) < 1.0:  # (a call per row costs more than the row)
                lse = logsumexp_refine(xf, r * n, n, mr, lse)
            res[r0 + r] = lse
            sign[r0 + r] = 1.0


@njit(**SERIAL)
def short_special(kind, xs, os, res, sign, t, b, n, row):
    """A short row with a special value (the elements ``b .. b + n`` of the
    flat block): the exact scalar kernels."""
    xrow = xs[b:b + n]
    if kind == 0:
        _rows.softmax_row(xrow, os[b:b + n], t, None)
    elif kind == 1:
        _rows.log_softmax_row(xrow, os[b:b + n], t, None)
    else:
        res[row], sign[row] = _rows.logsumexp_row(xrow, None)


@njit(**SERIAL)
def short_rows_range(kind, x, out, res, sign, t, lo, hi):
    """:func:`short_block` over rows ``lo .. hi`` of the C-contiguous 2-D
    ``x`` (and ``out``), in blocks of ``SHORT_BLOCK_ROWS`` rows."""
    n = x.shape[1]
    per = max(1, min(SHORT_BLOCK_ROWS, hi - lo))
    xt = np.empty(n * per)
    e = np.empty(n * per)
    acc = np.empty(5 * per)
    m = np.empty(per)
    mf = np.empty(per)
    for r0 in range(lo, hi, per):
        rows = min(per, hi - r0)
        xb = x[r0:r0 + rows]
        ob = out[r0:r0 + rows] if kind != 2 else out
        short_block(kind, xb, ob, res, sign, t, r0, xt[:n * rows].reshape((n, rows)),
                    e[:n * rows].reshape((n, rows)), acc[:5 * rows].reshape((5, rows)), m, mf)


@njit(**SERIAL)
def short_rows_serial(kind, x, out, res, sign, t):
    short_rows_range(kind, x, out, res, sign, t, np.int64(0), x.shape[0])


@njit(**PARALLEL)
def short_rows_parallel(kind, x, out, res, sign, t, nblocks):
    rows = x.shape[0]
    for b in prange(nblocks):
        short_rows_range(kind, x, out, res, sign, t, b * rows // nblocks,
                         (b + 1) * rows // nblocks)


# ------------------------------------------------------------ small calls


@njit(**SERIAL)
def small_rows_into(kind, x, out):
    """softmax (kind 0) or log_softmax (1) along the last axis of a small
    C-contiguous 1-D or 2-D array ``x`` (rows shorter than ``LONG_ROW``)
    into ``out``, an array of its shape and dtype: one compiled call, the
    least overhead for the common small case (the serial driver the
    general path would run; the same bits)."""
    n = x.shape[-1]
    rows = x.size // n
    if rows == 1:  # the row kernels, without a block or a driver
        xr = x.reshape(n)  # (typed as the drivers' row views: one compilation)
        m = row_max(xr)
        if kind == 0:
            softmax_row_m(xr, out.reshape(n), 1.0, 1.0, row_scratch(n), m, xr, False)
        else:
            log_softmax_row_m(xr, out.reshape(n), 1.0, 1.0, row_scratch(n), m, xr, False)
        return
    x2 = read_only_view(x.reshape((rows, n)))  # as the kernels always see their input
    none = out.reshape(out.size)[:0]  # the drivers' unused arguments (a view: no allocation)
    if n <= SHORT_ROW:
        short_rows_serial(kind, x2, out.reshape((rows, n)), none, none, 1.0)
    else:
        rows_serial(kind, x2, out.reshape((rows, n)), none, none, 1.0)


@njit(**SERIAL)
def small_logsumexp_into(x, res, no_out):
    """logsumexp along the last axis, as :func:`small_rows_into`, into the
    1-D ``res`` (one entry per row); ``no_out`` is the drivers' unused
    ``out`` (an empty 2-D array of ``x``'s dtype)."""
    n = x.shape[-1]
    rows = x.size // n
    if rows == 1:
        xr = x.reshape(n)  # (typed as the drivers' row views)
        res[0], _, _ = logsumexp_row_m(xr, row_scratch(n), row_max(xr), xr)
        return
    x2 = read_only_view(x.reshape((rows, n)))
    sign = np.empty_like(res)
    # np.int64: a literal kind would compile a second set of kernels
    if n <= SHORT_ROW:
        short_rows_serial(np.int64(2), x2, no_out, res, sign, 1.0)
    else:
        rows_serial(np.int64(2), x2, no_out, res, sign, 1.0)


# -------------------------------------------------------------- long rows


@njit(**REDUCE)
def plain_exp_sum(x, m, inv_t):
    """The sum of ``exp((x - m) * inv_t)`` over the row (nothing stored)."""
    s = 0.0
    for i in range(x.shape[0]):
        s += shifted_exp(x[i], m, inv_t, x)
    return s


@njit(**SERIAL)
def chunk_stats(xr, c, inv_t, ms, ss, ks, mode):
    """Max, sum of the terms below it and count of entries equal to it,
    for chunk ``c`` of the row (mode 1; mode 2: with the float64-exact
    ``exp`` for float32 rows), or (mode 0) the sum of every term and a
    count of 0."""
    lo = c * LONG_ROW_CHUNK
    chunk = xr[lo:min(lo + LONG_ROW_CHUNK, xr.shape[0])]
    m = row_max(chunk)
    ms[c] = m
    ss[c] = 0.0
    ks[c] = 0
    if -np.inf < m < np.inf:
        if mode == 0:
            ss[c] = plain_exp_sum(chunk, m, inv_t)
        else:
            ss[c], ks[c] = exp_sums(chunk, m, inv_t, np.empty(chunk.shape[0]), mode == 2)
    elif m != -np.inf:
        ss[c] = np.nan  # +inf or NaN: the row is special


@njit(**SERIAL)
def first_mode(x):
    """The chunk statistics' first mode (see :func:`chunk_stats`): one
    plain sum for float32 rows, whose results need the sum below the
    maximum apart only when it is small (:func:`second_mode`); the sum
    below the maximum for float64 ones."""
    return np.int64(0) if x.itemsize == 4 else np.int64(1)


@njit(**SERIAL)
def second_mode(kind, x, big, rest):
    """The mode of a second pass of chunk statistics, or 0 for none: a
    float32 row summed plainly (``rest`` = sum - 1) whose log_softmax or
    logsumexp needs the sum below the maximum apart (``rest`` below
    ``SPLIT_FREE_MIN``, as in :func:`exp_sum_below`), or whose logsumexp
    lies in (-1, 1), where the float64-exact ``exp`` is needed (see
    :func:`logsumexp_refine`; elsewhere logsumexp needs ``log1p(rest)``
    only to an absolute 1e-9)."""
    if x.itemsize != 4 or kind == 0 or rest != rest:
        return np.int64(0)
    if kind == 2:
        return np.int64(2) if abs(big + log1p_pos(rest)) < 1.0 else np.int64(0)
    return np.int64(1) if rest < SPLIT_FREE_MIN else np.int64(0)


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
def long_finish_chunk(kind, xr, orow, c, big, inv_t, value, stream):
    """Chunk ``c`` of a long row: softmax (kind 0, ``value`` = 1/sum) or
    log_softmax (kind 1, ``value`` = log of the sum) into ``orow``
    (``stream``: with streaming stores, through a float64 buffer)."""
    lo = c * LONG_ROW_CHUNK
    hi = min(lo + LONG_ROW_CHUNK, xr.shape[0])
    inplace = xr.ctypes.data == orow.ctypes.data
    if stream and not inplace:
        buf = np.empty(hi - lo)
        if kind == 0:
            exp_into(xr[lo:hi], big, inv_t, buf)
            stream_scale_into(buf, value, orow[lo:hi])
        else:
            shift_into(xr[lo:hi], big, inv_t, value, buf)
            stream_scale_into(buf, 1.0, orow[lo:hi])
    elif kind == 0 and inplace:
        exp_scale_inplace(orow[lo:hi], big, inv_t, value)
    elif kind == 0:
        exp_scale_into(xr[lo:hi], big, inv_t, value, orow[lo:hi])
    elif inplace:
        shift_inplace(orow[lo:hi], big, inv_t, value)
    else:
        shift_into(xr[lo:hi], big, inv_t, value, orow[lo:hi])


@njit(**SERIAL)
def long_special(kind, xr, orow, t):
    """A row with special values (a long row, or a row the column kernels
    copied out): the exact scalar kernels; returns ``(logsumexp, sign)``
    for kind 2, else NaNs."""
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
        return log1p_pos(rest)
    return big + log1p_pos(rest)


@njit(**SERIAL)
def long_row(kind, xr, orow, t, inv_t, stream):
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
        chunk_stats(xr, c, inv_t, ms, ss, ks, first_mode(xr))
    big, rest = combine_chunks(ms, ss, ks, inv_t)
    mode = second_mode(kind, xr, big, rest)
    if mode != 0:
        for c in range(nch):
            chunk_stats(xr, c, inv_t, ms, ss, ks, mode)
        big, rest = combine_chunks(ms, ss, ks, inv_t)
    if rest != rest:
        return long_special(kind, xr, orow, t)
    value = long_value(kind, big, rest)
    if kind == 2:
        return value, 1.0
    for c in range(nch):
        long_finish_chunk(kind, xr, orow, c, big, inv_t, value, stream)
    return np.nan, np.nan


@njit(**SERIAL)
def long_rows_serial(kind, x, out, res, sign, t):
    """:func:`long_row` over the rows of ``x`` (rows of at least
    ``LONG_ROW`` elements; strided rows are copied to a buffer): ``out``
    for kinds 0/1, ``res``/``sign`` for kind 2."""
    n = x.shape[1]
    inv_t = 1.0 / t
    xbuf = row_buffer(x, n)
    obuf = row_buffer(out, n)
    stream = kind != 2 and streams(x, out)
    for r in range(x.shape[0]):
        xr = unit_row(x[r], xbuf)
        if kind == 2:
            res[r], sign[r] = long_row(kind, xr, xr[:0], 1.0, 1.0, stream)
        else:
            o = unit_row(out[r], obuf)
            long_row(kind, xr, o, t, inv_t, stream)
            write_back(out[r], o)


@njit(**PARALLEL)
def long_rows_parallel(kind, x, out, res, sign, t):
    """:func:`long_rows_serial` with each row's chunks split across
    threads (the same arithmetic, so identical bits)."""
    n = x.shape[1]
    nch = (n + LONG_ROW_CHUNK - 1) // LONG_ROW_CHUNK
    ms = np.empty(nch)
    ss = np.empty(nch)
    ks = np.empty(nch, np.int64)
    inv_t = 1.0 / t
    xbuf = row_buffer(x, n)
    obuf = row_buffer(out, n)
    stream = kind != 2 and streams(x, out)
    for r in range(x.shape[0]):
        xr = unit_row(x[r], xbuf)
        orow = unit_row(out[r], obuf) if kind != 2 else xr[:0]
        mode = first_mode(xr)
        for c in prange(nch):
            chunk_stats(xr, c, inv_t, ms, ss, ks, mode)
        big, rest = combine_chunks(ms, ss, ks, inv_t)
        mode = second_mode(kind, xr, big, rest)
        if mode != 0:
            for c in prange(nch):
                chunk_stats(xr, c, inv_t, ms, ss, ks, mode)
            big, rest = combine_chunks(ms, ss, ks, inv_t)
        if rest != rest:
            v, sg = long_special(kind, xr, orow, t)
        else:
            v = long_value(kind, big, rest)
            sg = 1.0
            if kind != 2:
                for c in prange(nch):
                    long_finish_chunk(kind, xr, orow, c, big, inv_t, v, stream)
        if kind == 2:
            res[r] = v
            sign[r] = sg
        else:
            write_back(out[r], orow)


# ---------------------------------------------------------------- drivers
# One serial and one parallel driver: numba's on-disk cache does not tell
# compilation options apart, so one function cannot serve both.  The
# parallel one splits the rows into ``nblocks`` contiguous blocks.  Both
# take the arguments of :func:`long_rows_parallel`.


@njit(**SERIAL)
def rows_serial(kind, x, out, res, sign, t):
    """:func:`rows_range` over all rows of ``x``."""
    rows_range(kind, x, out, res, sign, t, np.int64(0), x.shape[0])


@njit(**PARALLEL)
def rows_parallel(kind, x, out, res, sign, t, nblocks):
    """:func:`rows_range` over all rows of ``x``, in ``nblocks`` blocks of
    rows spread over the threads."""
    rows = x.shape[0]
    for b in prange(nblocks):
        rows_range(kind, x, out, res, sign, t, b * rows // nblocks,
                   (b + 1) * rows // nblocks)
