"""Kernels for long rows (``LONG_ROW`` elements or more): the row split
into chunks of ``LONG_ROW_CHUNK`` elements (an online maximum and sum per
chunk, combined; then a pass that recomputes ``exp`` and scales), the
chunks of one row spread over the threads, so that no scratch row leaves
the cache."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._options import (
    LONG_ROW_CHUNK,
    PARALLEL,
    REDUCE,
    SERIAL,
)
from . import exact as exact_rows
from .double_double import cancels, logsumexp_dd
from .kinds import Kind
from .primitives import (
    log1p_pos,
)
from .steps import (
    SPLIT_FREE_MIN,
    as_unit,
    exp_into,
    exp_scale_inplace,
    exp_scale_into,
    exp_sums_exact,
    neumaier_add,
    row_buffer,
    row_max,
    shift_inplace,
    shift_into,
    shifted_exp,
    stream_scale_into,
    streams,
    unit_row,
    write_back,
)

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
            ss[c], ks[c] = exp_sums_exact(chunk, m, inv_t, np.empty(chunk.shape[0]), mode == 2)
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
    if x.itemsize != 4 or kind == Kind.SOFTMAX or rest != rest:
        return np.int64(0)
    if kind == Kind.LOGSUMEXP:
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
        if kind == Kind.SOFTMAX:
            exp_into(xr[lo:hi], big, inv_t, buf)
            stream_scale_into(buf, value, orow[lo:hi])
        else:
            shift_into(xr[lo:hi], big, inv_t, value, buf)
            stream_scale_into(buf, 1.0, orow[lo:hi])
    elif kind == Kind.SOFTMAX and inplace:
        exp_scale_inplace(orow[lo:hi], big, inv_t, value)
    elif kind == Kind.SOFTMAX:
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
    if kind == Kind.SOFTMAX:
        exact_rows.softmax_row(xr, orow, t, None)
    elif kind == Kind.LOG_SOFTMAX:
        exact_rows.log_softmax_row(xr, orow, t, None)
    else:
        return exact_rows.logsumexp_row(xr, None)
    return np.nan, np.nan


@njit(**SERIAL)
def long_value(kind, xr, big, rest):
    """What the finishing pass needs: 1/sum (softmax), log(sum) (log_softmax),
    or logsumexp itself (``Kind.LOGSUMEXP``; float64 rows where ``big`` and
    the logarithm cancel need :func:`refine_rows`, see :func:`refined`;
    float32 ones were refined by the second pass)."""
    if kind == Kind.SOFTMAX:
        return 1.0 / (1.0 + rest)
    if kind == Kind.LOG_SOFTMAX:
        return log1p_pos(rest)
    return big + log1p_pos(rest)


@njit(**SERIAL)
def refined(xr, big, lse):
    """Whether the logsumexp ``lse`` of a long row with maximum ``big`` is
    recomputed in double-double (float64 rows where the two cancel)."""
    return xr.itemsize == 8 and cancels(big, lse)


@njit(**SERIAL)
def refine_rows(x, rows, res):
    """``res[r]``, the logsumexp of the long row ``x[r]``, recomputed in
    double-double for the rows ``rows`` (see :func:`refined`; compiled only
    for input that has such rows)."""
    for i in range(rows.shape[0]):
        xr = as_unit(x[rows[i]])
        res[rows[i]] = logsumexp_dd(xr, row_max(xr))


@njit(**SERIAL)
def long_row(kind, xr, orow, t, inv_t, stream):
    """softmax / log_softmax (``kind``) into ``orow``, or logsumexp (
    returned), of a unit-stride row of at least ``LONG_ROW`` elements:
    chunk statistics, combined, then a finishing pass.  Returns ``(value,
    flag)``: flag 0, done; 1, a row with special values, left to the exact
    kernels (``orow`` not written); 2, a float64 logsumexp to recompute in
    double-double (:func:`refine_rows`).  The callers hand those rows on, so
    that the exact and double-double kernels are compiled only for input
    that has such rows.

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
        return np.nan, np.uint8(1)
    value = long_value(kind, xr, big, rest)
    if kind == Kind.LOGSUMEXP:
        return value, np.uint8(2) if refined(xr, big, value) else np.uint8(0)
    for c in range(nch):
        long_finish_chunk(kind, xr, orow, c, big, inv_t, value, stream)
    return np.nan, np.uint8(0)


@njit(**SERIAL)
def long_rows_serial(kind, x, out, res, sign, t, special):
    """:func:`long_row` over the rows of ``x`` (rows of at least
    ``LONG_ROW`` elements; strided rows are copied to a buffer): ``out``
    for kinds 0/1, ``res``/``sign`` for kind 2; ``special[r]`` gets the
    row's flag (see :func:`long_row`)."""
    n = x.shape[1]
    inv_t = 1.0 / t
    xbuf = row_buffer(x, n)
    obuf = row_buffer(out, n)
    stream = kind != Kind.LOGSUMEXP and streams(x, out)
    for r in range(x.shape[0]):
        xr = unit_row(x[r], xbuf)
        if kind == Kind.LOGSUMEXP:
            res[r], special[r] = long_row(kind, xr, xr[:0], 1.0, 1.0, stream)
            sign[r] = 1.0
        else:
            o = unit_row(out[r], obuf)
            _, special[r] = long_row(kind, xr, o, t, inv_t, stream)
            if special[r] == 0:
                write_back(out[r], o)


@njit(**PARALLEL)
def long_rows_parallel(kind, x, out, res, sign, t, special):
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
    stream = kind != Kind.LOGSUMEXP and streams(x, out)
    for r in range(x.shape[0]):
        xr = unit_row(x[r], xbuf)
        orow = unit_row(out[r], obuf) if kind != Kind.LOGSUMEXP else xr[:0]
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
            special[r] = 1
            continue
        v = long_value(kind, xr, big, rest)
        if kind == Kind.LOGSUMEXP:
            res[r] = v
            sign[r] = 1.0
            if refined(xr, big, v):
                special[r] = 2
        else:
            for c in prange(nch):
                long_finish_chunk(kind, xr, orow, c, big, inv_t, v, stream)
            write_back(out[r], orow)
