"""Vectorized kernels for rows that lie across memory.

Reducing axis 0 of a C-ordered matrix, the last axis of a Fortran-ordered
one, or a middle axis gives ``(rows, n)`` views whose *rows* are
neighbours in memory: element ``j`` of row ``r + 1`` follows element ``j``
of row ``r``, and the elements of one row are far apart.  Read one row at
a time, every element would cost its own cache line.  These kernels take
the transposed view ``xt`` of shape ``(n, rows)``, unit-stride along its
second axis, and process ``w`` neighbouring rows at once: every pass
(maxima, ``exp`` with its sums, the output) is a loop over ``j`` around a
loop across the ``w`` rows, which reads contiguous memory and vectorizes.
These are the short-row kernels' transposed blocks, with the transposition
done by the memory layout.  The pass that computes a block's ``exp`` also
asks the CPU to prefetch the next block (whose lines, a row-length apart,
its own prefetchers do not foresee), so that reading memory overlaps the
arithmetic.

The arithmetic is the row kernels' (:mod:`softjit.kernels.rows`): the same
``exp`` into a float64 scratch block, ``log1p`` of the sum of the terms
below the maximum plus the count of the others, less one (summed apart
here also for float32 rows longer than ``SHORT_ROW``, which the row
kernels sum plainly when that is exact enough), the exact scalar
kernels (:mod:`softjit.kernels.exact`) for rows with special values, float32
logsumexp refined near 0.  Rows of at most ``SHORT_ROW`` elements are
summed in the row kernels' order, so they give the row kernels' bits;
longer rows are summed in order with every term's rounding error kept (an
exact TwoSum per term, which vectorizes across the block's rows), and
softmax scales by the reciprocal of that double-double sum: as accurate as
the row kernels' sums, in another order, so the last bits may differ.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._options import (
    COLUMN_SCRATCH,
    COLUMN_WIDTH,
    LONG_ROW,
    PARALLEL,
    SERIAL,
    SHORT_ROW,
    STREAM_TILE,
    STREAM_WIDTH,
)
from ._llvm import CACHE_LINE, line_view, max_no_nan, prefetch
from .kinds import Kind
from .long_rows import long_special
from .primitives import exp_neg_f64_2, log1p_pos, reciprocal2, two_diff, two_sum
from .steps import logsumexp_refine, refines, shifted_exp


@njit(**SERIAL)
def block_width(n):
    """Rows per softmax block: a multiple of 8 (a cache line of float64,
    half of one of float32) from 8 to ``COLUMN_WIDTH``, as wide as keeps
    its float64 block of terms, ``n`` by the width, within
    ``COLUMN_SCRATCH`` bytes (rows longer than ``COLUMN_SCRATCH / 64``
    elements take 8 and more)."""
    return max(8, min(COLUMN_WIDTH, COLUMN_SCRATCH // (8 * n) // 8 * 8))


# The loops over ``j`` are written out in each function below, not calls
# per line: a call that passes arrays costs reference counts (atomic
# operations) that would outweigh a short loop across the block.


@njit(**SERIAL)
def block_max(xt, c0, w, m, k, count):
    """``m[r]`` = the maximum of row ``c0 + r`` for ``r < w`` (unspecified
    for a row with a NaN, which shows in its sum) and, with ``count``,
    ``k[r]`` = the number of entries equal to it."""
    for r in range(w):
        m[r] = -np.inf
        k[r] = 0.0
    for j in range(xt.shape[0]):
        xj = line_view(xt, j, c0, w)
        if count:
            for r in range(w):
                v = np.float64(xj[r])
                mo = m[r]
                mx = max_no_nan(mo, v)
                k[r] = k[r] * np.float64(mo == mx) + np.float64(v == mx)
                m[r] = mx
        else:
            for r in range(w):
                m[r] = max_no_nan(m[r], np.float64(xj[r]))


@njit(**SERIAL)
def block_exp_sums(split, xt, c0, w, m, mf, inv_t, e, acc, c1, w1):
    """The sums of the terms ``exp((x[c0 + r, j] - mf[r]) * inv_t)`` of
    rows ``c0 .. c0 + w``, vectorized over ``r``, as ``acc[0, r] +
    acc[2, r]`` (a double-double): without ``split``, of every term, kept
    in the ``(n, w)`` block ``e``; with ``split`` (log_softmax, logsumexp),
    of the terms of the entries below the maximum ``m[r]`` only.  A NaN
    entry makes the sum NaN.  Rows of at most ``SHORT_ROW`` elements
    (except for float64 softmax): four interleaved partial sums, the
    short-row order (``acc[2]`` is 0); otherwise every term added in order
    with an exact TwoSum, its error kept in ``acc[1]`` (for short rows, the
    row kernels' :func:`softjit.kernels.rows.seq_sum`).  The same loop
    prefetches the next block, rows ``c1 .. c1 + w1``."""
    n = xt.shape[0]
    for q in range(4):
        for r in range(w):
            acc[q, r] = 0.0
    # float64 softmax: the TwoSum order at any length (the row kernels'
    # seq_sum for short rows)
    short = n <= SHORT_ROW and (split or xt.itemsize == 4)
    q4 = n - n % 4
    step = CACHE_LINE // xt.itemsize
    c = line_view(acc, 1, 0, w)
    for j in range(n):
        xj = line_view(xt, j, c0, w)
        s = line_view(acc, (j % 4 if j < q4 else 0) if short else 0, 0, w)
        if not split and e.shape[0] > 0:
            ej = line_view(e, j, 0, w)
        if short and split:
            for r in range(w):
                v = xj[r]
                term = shifted_exp(v, mf[r], inv_t, xj)
                s[r] += term if np.float64(v) != m[r] else 0.0
        elif short:
            for r in range(w):
                term = shifted_exp(xj[r], mf[r], inv_t, xj)
                ej[r] = term
                s[r] += term
        elif split:
            for r in range(w):
                v = xj[r]
                term = shifted_exp(v, mf[r], inv_t, xj)
                s[r], err = two_sum(s[r], term if np.float64(v) != m[r] else 0.0)
                c[r] += err
        elif e.shape[0] == 0:  # long rows: the output pass recomputes the terms
            for r in range(w):
                s[r], err = two_sum(s[r], shifted_exp(xj[r], mf[r], inv_t, xj))
                c[r] += err
        else:
            for r in range(w):
                term = shifted_exp(xj[r], mf[r], inv_t, xj)
                ej[r] = term
                s[r], err = two_sum(s[r], term)
                c[r] += err
        if w1 > 0:
            nj = line_view(xt, j, c1, w1)
            for b in range(0, w1, step):
                prefetch(nj, b)
            prefetch(nj, w1 - 1)  # the last line, when the start is not aligned
    if short:
        for r in range(w):
            acc[0, r] = (acc[0, r] + acc[1, r]) + (acc[2, r] + acc[3, r])
            acc[2, r] = 0.0
    else:
        for r in range(w):
            acc[0, r], acc[2, r] = two_sum(acc[0, r], acc[1, r])


@njit(**SERIAL)
def special(kind, xt, c0, r, t, buf, obuf):
    """The exact scalar kernels on row ``c0 + r`` (copied into ``buf``):
    softmax/log_softmax into ``obuf``, or ``(logsumexp, sign)``."""
    for j in range(xt.shape[0]):
        buf[j] = xt[j, c0 + r]
    return long_special(kind, buf, obuf, t)


@njit(**SERIAL)
def is_special(m, s):
    """Whether a row with maximum ``m`` and sum ``s`` needs the exact kernel
    (a maximum that is not finite, or a NaN entry)."""
    return not (-np.inf < m < np.inf) or s != s


@njit(**SERIAL)
def logsumexp_block(xt, res, sign, c0, w, m, acc, buf):
    """Row ``c0 + r``'s logsumexp into ``res[c0 + r]``, its sign into
    ``sign[c0 + r]``, from the maxima ``m`` and
    ``acc`` (see :func:`columns_block`)."""
    for r in range(w):
        finish_logsumexp(xt, res, sign, c0, r, m[r], acc[0, r], m[r] + acc[1, r], buf)


@njit(**SERIAL)
def finish_logsumexp(xt, res, sign, c0, r, m, s, lse, buf):
    """Row ``c0 + r``'s logsumexp into ``res``/``sign``: the exact kernel
    for a row with special values (maximum ``m``, sum ``s``), else ``lse``,
    recomputed where it needs more precision (see ``logsumexp_refine``)."""
    if is_special(m, s):
        res[c0 + r], sign[c0 + r] = special(np.int64(Kind.LOGSUMEXP), xt, c0, r, 1.0, buf, buf)
        return
    if refines(xt, m, lse):
        n = xt.shape[0]
        for j in range(n):
            buf[j] = xt[j, c0 + r]
        lse = logsumexp_refine(buf, np.int64(0), n, m, lse)
    res[c0 + r] = lse
    sign[c0 + r] = 1.0


@njit(**SERIAL)
def columns_block(kind, xt, ot, res, sign, t, c0, w, c1, w1, e, acc, m, k, mf, buf, obuf):
    """softmax or log_softmax (``kind``) of rows ``c0 .. c0 + w`` of the
    transposed ``(n, rows)`` array ``xt`` into ``ot`` (may be ``xt``), or
    logsumexp into ``res``/``sign`` (``ot`` unused); prefetches the
    next block, rows ``c1 .. c1 + w1``.  ``e`` is an ``(n, w)`` float64
    scratch block for softmax of rows shorter than ``LONG_ROW`` (empty
    otherwise: log_softmax needs no terms kept, and softmax of longer rows
    computes them again in its output pass rather than keep a scratch
    block as large as the input's block), ``acc`` ``(4, w)``,
    ``m``/``k``/``mf`` at least ``w`` long, ``buf``/``obuf`` rows of the
    input dtype."""
    n = xt.shape[0]
    inv_t = 1.0 / t
    block_max(xt, c0, w, m, k, kind != Kind.SOFTMAX)
    for r in range(w):
        v = m[r]
        mf[r] = v if -np.inf < v < np.inf else 0.0
    block_exp_sums(kind != Kind.SOFTMAX, xt, c0, w, m, mf, inv_t, e, acc, c1, w1)
    # acc[1] = what the output needs: 1/sum, or log1p of the sum below the
    # maximum plus the count of maxima less one.
    if kind == Kind.SOFTMAX and n <= SHORT_ROW and xt.itemsize == 4:
        for r in range(w):
            acc[1, r] = 1.0 / acc[0, r]  # as the row kernels: the same bits
    elif kind == Kind.SOFTMAX:
        for r in range(w):
            acc[1, r] = reciprocal2(acc[0, r], acc[2, r])
    else:
        for r in range(w):
            acc[1, r] = log1p_pos(acc[0, r] + (k[r] - 1.0))
    if kind == Kind.LOGSUMEXP:
        logsumexp_block(xt, res, sign, c0, w, m, acc, buf)
        return
    # Rows with special values: the exact kernel's result waits in
    # park[:, r] (computed before any output is written: ``ot`` may be
    # ``xt``); softmax parks it in its terms' block.
    nspecial = 0
    park = e
    for r in range(w):
        if is_special(m[r], acc[0, r]):
            if nspecial == 0 and park.shape[0] == 0:
                park = np.empty((n, w))
            special(kind, xt, c0, r, t, buf, obuf)
            for j in range(n):
                park[j, r] = obuf[j]
            nspecial += 1
    if kind == Kind.SOFTMAX and e.shape[0] > 0:
        for j in range(n):
            oj = line_view(ot, j, c0, w)
            ej = line_view(e, j, 0, w)
            for r in range(w):
                oj[r] = ej[r] * acc[1, r]
    elif kind == Kind.SOFTMAX:
        for j in range(n):
            xj = line_view(xt, j, c0, w)
            oj = line_view(ot, j, c0, w)
            for r in range(w):
                oj[r] = shifted_exp(xj[r], mf[r], inv_t, xj) * acc[1, r]
    elif xt.ctypes.data == ot.ctypes.data:
        # In place: one array, so that LLVM need not prove two disjoint.
        for j in range(n):
            oj = line_view(ot, j, c0, w)
            for r in range(w):
                oj[r] = (np.float64(oj[r]) - m[r]) * inv_t - acc[1, r]
    else:
        for j in range(n):
            xj = line_view(xt, j, c0, w)
            oj = line_view(ot, j, c0, w)
            for r in range(w):
                oj[r] = (np.float64(xj[r]) - m[r]) * inv_t - acc[1, r]
    if nspecial > 0:
        for r in range(w):
            if is_special(m[r], acc[0, r]):
                for j in range(n):
                    ot[j, c0 + r] = park[j, r]


@njit(**SERIAL)
def stream_logsumexp(xt, res, sign, lo, hi, m, s, tm, buf):
    """logsumexp of the float32 rows ``lo .. hi`` (columns of ``xt``) in
    one pass over memory: tiles of ``STREAM_TILE`` lines, each read twice
    while it is in the cache, first for its maxima, then for the terms
    ``exp(x - running maximum)``, summed in float64; where a tile raises a
    row's maximum, the sum so far is rescaled by the exact ``exp`` of the
    difference.  The row kernels' finish follows: ``m + log1p(s - 1)``,
    the exact kernels for special rows, the float64-exact recomputation
    near 0.  ``m``/``s``/``tm`` are float64 scratch of at least
    ``hi - lo`` elements, ``buf`` a row of ``xt``'s dtype."""
    n = xt.shape[0]
    w = hi - lo
    for r in range(w):
        m[r] = -np.inf
        s[r] = 0.0
    for j0 in range(0, n, STREAM_TILE):
        j1 = min(j0 + STREAM_TILE, n)
        for r in range(w):
            tm[r] = m[r]
        for j in range(j0, j1):
            xj = line_view(xt, j, lo, w)
            for r in range(w):
                tm[r] = max_no_nan(tm[r], np.float64(xj[r]))
        for r in range(w):
            grow = tm[r] > m[r]
            # (m = -inf: the terms so far were all 0, and the factor is 0)
            s[r] = s[r] * _rescale(m[r], tm[r]) if grow else s[r]
            m[r] = tm[r]
            tm[r] = tm[r] if -np.inf < tm[r] < np.inf else 0.0  # the shift of the terms
        j = j0
        while j + 4 <= j1:  # four lines per load and store of the sums
            x0 = line_view(xt, j, lo, w)
            x1 = line_view(xt, j + 1, lo, w)
            x2 = line_view(xt, j + 2, lo, w)
            x3 = line_view(xt, j + 3, lo, w)
            for r in range(w):
                mr = tm[r]
                s[r] += ((shifted_exp(x0[r], mr, 1.0, x0) + shifted_exp(x1[r], mr, 1.0, x0))
                         + (shifted_exp(x2[r], mr, 1.0, x0) + shifted_exp(x3[r], mr, 1.0, x0)))
            j += 4
        while j < j1:
            xj = line_view(xt, j, lo, w)
            for r in range(w):
                s[r] += shifted_exp(xj[r], tm[r], 1.0, xj)
            j += 1
    for r in range(w):
        # every term summed, the maxima's exactly 1 each: log1p(sum - 1), as
        # the row kernels' float32 logsumexp (exact enough away from 0,
        # recomputed near 0)
        finish_logsumexp(xt, res, sign, lo, r, m[r], s[r], m[r] + log1p_pos(s[r] - 1.0), buf)


@njit(**SERIAL)
def _rescale(m_old, m_new):
    """``exp(m_old - m_new)`` within an ulp of float64 (0 for ``m_old = -inf``)."""
    if m_old == -np.inf:
        return 0.0
    d, d_lo = two_diff(m_old, m_new)
    return exp_neg_f64_2(d, d_lo)


@njit(**SERIAL)
def columns_range(kind, xt, ot, res, sign, t, lo, hi):
    """:func:`columns_block` over rows ``lo .. hi`` (columns of ``xt``),
    block after block, each prefetching the next; float32 logsumexp of rows
    longer than ``SHORT_ROW``: :func:`stream_logsumexp` over spans of
    ``STREAM_WIDTH`` rows."""
    n = xt.shape[0]
    if lo >= hi:
        return
    if kind == Kind.LOGSUMEXP and xt.itemsize == 4 and n > SHORT_ROW:
        width = min(STREAM_WIDTH, hi - lo)
        m = np.empty(width)
        s = np.empty(width)
        tm = np.empty(width)
        buf = np.empty(n, xt.dtype)
        for c0 in range(lo, hi, width):
            stream_logsumexp(xt, res, sign, c0, min(c0 + width, hi), m, s, tm, buf)
        return
    keep = kind == Kind.SOFTMAX and n < LONG_ROW  # softmax keeps its terms, unless rows are long
    per = min(block_width(n) if keep else COLUMN_WIDTH, hi - lo)
    e = np.empty(n * per if keep else 0)
    acc = np.empty(4 * per)
    m = np.empty(per)
    k = np.empty(per)
    mf = np.empty(per)
    buf = np.empty(n, xt.dtype)
    obuf = np.empty(n, xt.dtype)
    for c0 in range(lo, hi, per):
        w = min(per, hi - c0)
        c1 = c0 + w
        w1 = max(0, min(per, hi - c1))
        columns_block(kind, xt, ot, res, sign, t, c0, w, c1, w1,
                      e[:n * w].reshape((n if keep else 0, w)),
                      acc[:4 * w].reshape((4, w)), m, k, mf, buf, obuf)


# One serial and one parallel driver (numba's cache does not tell compile
# options apart).  Both take 3-D arrays ``x3``/``o3`` of shape (a, n, b):
# ``a`` slabs, each of ``b`` rows of ``n`` elements lying across memory (a
# 2-D case has a = 1), results ``res``/``sign`` (logsumexp) in the order
# slab, row.  logsumexp passes a dummy ``o3`` of one slab, never written.


@njit(**SERIAL)
def slab_range(kind, x3, o3, res, sign, t, a, lo, hi):
    """:func:`columns_range` over rows ``lo .. hi`` of slab ``a``."""
    b = x3.shape[2]
    columns_range(kind, x3[a], o3[a % o3.shape[0]], res[a * b:(a + 1) * b],
                  sign[a * b:(a + 1) * b], t, lo, hi)


@njit(**SERIAL)
def columns_serial(kind, x3, o3, res, sign, t):
    """:func:`columns_range` over all rows of every slab."""
    for a in range(x3.shape[0]):
        slab_range(kind, x3, o3, res, sign, t, a, np.int64(0), x3.shape[2])


@njit(**PARALLEL)
def columns_parallel(kind, x3, o3, res, sign, t, nblocks):
    """:func:`columns_range` over every slab's rows, split into about
    ``nblocks`` ranges spread over the threads (each row's arithmetic is
    the same in any range, so the bits do not depend on the threads)."""
    slabs = x3.shape[0]
    b = x3.shape[2]
    per = max(1, -(-nblocks // slabs))  # ranges per slab
    for i in prange(slabs * per):
        p = i % per
        slab_range(kind, x3, o3, res, sign, t, i // per, p * b // per, (p + 1) * b // per)
