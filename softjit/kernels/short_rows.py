"""Kernels for short rows (at most ``SHORT_ROW`` elements): blocks of rows
transposed into a float64 scratch, so that every pass is a loop across
rows, vectorized across them (:mod:`softjit.kernels.steps` for the sums'
order, so that a row gives the same bits as on the other routes)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._options import (
    PARALLEL,
    SERIAL,
    SERIAL_INLINE,
    SHORT_BLOCK_ROWS,
)
from ._llvm import (
    line_view,
    max_no_nan,
)
from .kinds import Kind
from .primitives import (
    log1p_pos,
    reciprocal2,
    two_sum,
)
from .steps import (
    logsumexp_refine,
    refines,
    shifted_exp,
)

# ------------------------------------------------------------- short rows
# Rows of a few elements: loops over one row are too short to vectorize,
# and per-row calls cost more than the work.  A block of consecutive rows
# is transposed into a float64 scratch of shape (n, rows), so that every
# pass (maxima, exp, sums) is a loop over rows, vectorized across them;
# only the copies in and out are scalar.  Sums follow row_sums' order
# (float64 softmax: seq_sum's), so every path gives the same bits.

@njit(**SERIAL_INLINE)
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
def short_block(kind, xb, ob, res, sign, t, special, r0, xt, e, acc, m, mf):
    """softmax or log_softmax (``kind``) of the rows of the 2-D
    C-contiguous block ``xb`` into ``ob`` (may be ``xb``), or logsumexp
    into ``res[r0:]``/``sign[r0:]``.  ``xt``/``e`` are (n, rows) scratch
    blocks, ``acc`` (5, rows), ``m``/``mf`` at least ``rows`` long.  A row
    with a special value is left to the exact scalar kernels: not written,
    and ``special[r0 + r]`` set to 1."""
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
    exact = kind == Kind.SOFTMAX and xb.itemsize == 8
    q4 = n - n % 4
    for j in range(n):
        q = j % 4 if j < q4 else 0
        if exact:
            for r in range(rows):
                acc[0, r], err = two_sum(acc[0, r], e[j, r])
                acc[1, r] += err
        elif kind == Kind.SOFTMAX:
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
        if kind == Kind.SOFTMAX:
            for r in range(rows):
                acc[1, r] = 1.0 / acc[0, r]
        else:
            for r in range(rows):
                acc[1, r] = log1p_pos(acc[0, r] + ((n - acc[4, r]) - 1.0))
    xf = xb.reshape(-1)
    for r in range(rows):
        s = acc[0, r]
        mr = m[r]
        if not (-np.inf < mr < np.inf) or s != s:
            special[r0 + r] = 1
        elif kind == Kind.SOFTMAX:
            rr = acc[1, r]
            for j in range(n):
                ob[r, j] = e[j, r] * rr
        elif kind == Kind.LOG_SOFTMAX:
            lse = acc[1, r]
            for j in range(n):
                ob[r, j] = (xt[j, r] - mr) * inv_t - lse
        else:
            lse = mr + acc[1, r]
            if refines(xb, mr, lse):
                lse = logsumexp_refine(xf, r * n, n, mr, lse)
            res[r0 + r] = lse
            sign[r0 + r] = 1.0


@njit(**SERIAL_INLINE)
def short_rows_range(kind, x, out, res, sign, t, special, lo, hi):
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
        ob = out[r0:r0 + rows] if kind != Kind.LOGSUMEXP else out
        short_block(kind, xb, ob, res, sign, t, special, r0, xt[:n * rows].reshape((n, rows)),
                    e[:n * rows].reshape((n, rows)), acc[:5 * rows].reshape((5, rows)), m, mf)


@njit(**SERIAL)
def short_rows_serial(kind, x, out, res, sign, t, special):
    short_rows_range(kind, x, out, res, sign, t, special, np.int64(0), x.shape[0])


@njit(**PARALLEL)
def short_rows_parallel(kind, x, out, res, sign, t, special, nblocks):
    rows = x.shape[0]
    for b in prange(nblocks):
        short_rows_range(kind, x, out, res, sign, t, special, b * rows // nblocks,
                         (b + 1) * rows // nblocks)
