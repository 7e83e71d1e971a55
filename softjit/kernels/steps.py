"""The steps every row kernel shares, one implementation each: the row
maximum (NaN-propagating through the exact kernels), the shifted ``exp``,
the sums (blocked vectorized partial sums joined by a compensated sum, the
one summation order of every route), scaling into the output, logsumexp
from a sum, and the buffers that give strided rows unit stride.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.core import types
from numba.extending import overload

from .._options import (
    REDUCE,
    SERIAL,
    SERIAL_INLINE,
    SHORT_ROW,
    STREAM_MIN_BYTES,
    SUM_BLOCK,
)
from ._llvm import (
    STREAM_BYTES,
    line_view,
    max_no_nan,
    span_view,
    store_fence,
    stream_scaled,
    unit_stride_view,
)
from .double_double import cancels, logsumexp_dd
from .primitives import (
    exp_neg_f64_2,
    exp_neg_f64_for_f32,
    log1p_pos,
    two_diff,
    two_sum,
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


@njit(**SERIAL_INLINE)
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
def exp_sums(x, m, inv_t, e):
    """Fill ``e`` with ``exp((x - m) * inv_t)``; return ``(sum of the terms of
    entries != m, count of entries == m)``."""
    s, k, _ = exp_sum(x, m, inv_t, e, x)
    return s, np.int64(k)


@njit(**SERIAL)
def exp_sums_exact(x, m, inv_t, e, exact):
    """:func:`exp_sums`, with the float64-exact ``exp`` also for float32 rows
    when ``exact`` (logsumexp of long rows near 0)."""
    if exact and x.itemsize == 4:
        exact_exp_into(x, m, inv_t, e)
        return split_sum(x, m, e)
    return exp_sums(x, m, inv_t, e)


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


@njit(**SERIAL_INLINE)
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


@njit(**SERIAL_INLINE)
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


@njit(**SERIAL_INLINE)
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


@njit(**SERIAL_INLINE)
def row_scratch(n):
    """A float64 scratch row for rows of ``n`` elements, with room for
    :func:`lane_sum`'s running sums after them."""
    return np.empty(n + 2 * SUM_LANES)


@njit(**SERIAL_INLINE)
def lane_scratch(scratch, n):
    """``scratch``, or a copy of its first ``n`` elements in a buffer from
    :func:`row_scratch` when it has no room for :func:`lane_sum`'s running
    sums (the kernels allocate their scratch with row_scratch)."""
    if scratch.shape[0] >= n + 2 * SUM_LANES:
        return scratch
    buf = row_scratch(n)
    for i in range(n):  # a loop: a slice assignment compiles a formatted shape error
        buf[i] = scratch[i]
    return buf


@njit(**SERIAL_INLINE)
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


@njit(**SERIAL_INLINE)
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


@njit(**SERIAL_INLINE)
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


@njit(**SERIAL_INLINE)
def streams(x, out):
    """Whether ``out`` gets streaming stores: a result of at least
    ``STREAM_MIN_BYTES`` (larger than the caches), not in place."""
    return out.size * out.itemsize >= STREAM_MIN_BYTES and x.ctypes.data != out.ctypes.data


@njit(**SERIAL)
def exp_into(x, m, inv_t, dst):
    """``dst[i] = exp((x[i] - m) * inv_t)``, as in the row kernels."""
    for i in range(x.shape[0]):
        dst[i] = shifted_exp(x[i], m, inv_t, x)


@njit(**SERIAL_INLINE)
def shift_into(x, m, inv_t, lse, out):
    for i in range(out.shape[0]):
        out[i] = (np.float64(x[i]) - m) * inv_t - lse


@njit(**SERIAL_INLINE)
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


@njit(**SERIAL_INLINE)
def logsumexp_value(x, b, n, m, s, k):
    """logsumexp of ``x[b:b + n]`` from its maximum ``m`` and ``s + (k - 1)``
    = the sum of the terms less 1 (``s`` the terms below the maximum and
    ``k`` the count of the others, or see :func:`exp_sum_below`; float32
    rows: see :func:`logsumexp_refine`)."""
    return logsumexp_refine(x, b, n, m, m + log1p_pos(s + (k - 1.0)))


def logsumexp_refine(x, b, n, m, lse):
    """``lse = m + log1p(s + k - 1)`` of ``x[b:b + n]``, made exact enough
    for float32 rows and, where ``m`` and the logarithm cancel, for
    float64 rows (recomputed in double-double: :func:`logsumexp_dd`)
    (numba only; one implementation per dtype, so that a first float32
    call compiles no double-double code).

    For float32 rows ``s`` comes from the float32-grade ``exp`` (relative
    error ~1e-8, so the logarithm's absolute error is ~1e-8): below half a
    float32 ulp of a result of magnitude >= 1.  Near 0, where ``m`` and the
    logarithm cancel, the sum is recomputed with the float64-exact ``exp``.
    """
    raise NotImplementedError("logsumexp_refine is only callable from numba code")


@overload(logsumexp_refine, jit_options=SERIAL)
def _logsumexp_refine_impl(x, b, n, m, lse):
    if x.dtype == types.float32:
        def f32(x, b, n, m, lse):
            if abs(lse) < 1.0:
                s, k = exact_split_sum(x[b:b + n], m)
                return m + log1p_pos(s + (k - 1.0))
            return lse

        return f32

    def f64(x, b, n, m, lse):
        if cancels(m, lse):
            return logsumexp_dd(x[b:b + n], m)
        return lse

    return f64


def refines(x, m, lse):
    """Whether :func:`logsumexp_refine` recomputes this row's ``lse`` (a
    test before the call: a call per short row costs more than the row;
    numba only)."""
    raise NotImplementedError("refines is only callable from numba code")


@overload(refines, jit_options=SERIAL)
def _refines_impl(x, m, lse):
    if x.dtype == types.float32:
        return lambda x, m, lse: abs(lse) < 1.0
    return lambda x, m, lse: cancels(m, lse)


@njit(**SERIAL_INLINE)
def unit_row(row, buf):
    """``row`` typed unit-stride, or copied into ``buf`` when it is strided."""
    if row.strides[0] == row.itemsize:
        return unit_stride_view(row)
    for i in range(row.shape[0]):
        buf[i] = row[i]
    return buf


@njit(**SERIAL_INLINE)
def line_buffer(a):
    """A one-row buffer for :func:`borrowed_row` of the 2-D ``a``: of its
    row length when its rows are strided, else empty (no allocation)."""
    return np.empty((1, a.shape[1] if a.strides[1] != a.itemsize else 0), a.dtype)


@njit(**SERIAL_INLINE)
def borrowed_row(a, r, buf, copy=True):
    """Row ``r`` of the 2-D ``a`` as a borrowed unit-stride view
    (:func:`~softjit.kernels._llvm.line_view`): of ``a`` itself, or, when
    its rows are strided, of ``buf`` (from :func:`line_buffer`), into which
    the row is copied first when ``copy`` (an output row is not).  Both
    ways give the same type and no reference count, which a loop over
    rows needs to keep its steps vectorized."""
    n = a.shape[1]
    if a.strides[1] == a.itemsize:
        return line_view(a, r, 0, n)
    if copy:
        for i in range(n):
            buf[0, i] = a[r, i]
    return line_view(buf, 0, 0, n)


@njit(**SERIAL)
def as_unit(row):
    """``row`` typed unit-stride, or a new contiguous copy when it is strided."""
    if row.strides[0] == row.itemsize:
        return unit_stride_view(row)
    return unit_row(row, np.empty(row.shape[0], row.dtype))


@njit(**SERIAL_INLINE)
def row_buffer(a, n):
    """A buffer for the rows of the 2-D ``a`` (rows >= 1): a new one when
    they are strided, else (no allocation) the first row, never written."""
    if a.strides[1] == a.itemsize:
        return unit_stride_view(a[0])
    return np.empty(n, a.dtype)


@njit(**SERIAL_INLINE)
def write_back(orow, o):
    """Copy the computed row ``o`` into ``orow`` unless it is ``orow`` itself."""
    if orow.strides[0] != orow.itemsize:
        for i in range(orow.shape[0]):
            orow[i] = o[i]
