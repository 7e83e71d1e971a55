"""Vectorized kernels for rows without a mask.

Per row, passes while the row is in cache:

1. ``m = max(x)``, vectorized (:func:`softjit.kernels._llvm.max_no_nan`);
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
exact enough for float32 results (:mod:`softjit.kernels.primitives`).  log_softmax and
logsumexp need the sum of the terms below the maximum apart from the
count of entries equal to it, so that ``log1p`` of the exact remainder
keeps the largest entry's tiny negative value: float64 rows and float32
rows of at most ``SHORT_ROW`` elements sum them apart; longer float32 rows
sum every term and take ``sum - 1`` when that is large enough
(:func:`exp_sum_below`; long rows: :func:`second_mode`).  softmax sums
every term.

A row whose maximum is not finite, or whose sum is NaN (a NaN entry), is
recomputed by the exact scalar kernels of :mod:`softjit.kernels.exact`, which own
the special-value rules.  Rows of at least ``LONG_ROW`` elements are
processed in chunks split across threads (an online max and sum, for a
few float32 rows a second one, then a pass that recomputes ``exp``), so
no scratch row leaves the cache.

Rows that are not unit-stride are copied into a buffer first; ``out``
may be ``x`` itself (in place) — the in-place loops take one array, so
that LLVM need not prove two arrays disjoint before vectorizing.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from .._options import (
    LONG_ROW,
    PARALLEL,
    SERIAL,
    SERIAL_INLINE,
    SHORT_ROW,
    SMALL,
)
from . import exact as exact_rows
from ._llvm import (
    line_view,
    read_only_view,
    span_view,
)
from .double_double import logsumexp_dd
from .kinds import Kind
from .long_rows import (
    long_row,
    long_special,
)
from .primitives import (
    log1p_pos,
    reciprocal2,
)
from .short_rows import short_rows_range
from .steps import (
    borrowed_row,
    exp_sum_below,
    exp_sum_block,
    lane_scratch,
    lane_sum,
    line_buffer,
    logsumexp_refine,
    logsumexp_value,
    refines,
    row_max,
    row_scratch,
    row_sums,
    scale_into,
    seq_sum,
    shift_inplace,
    shift_into,
    stream_scale_into,
    streams,
    write_back,
)

# ------------------------------------------------------------------ rows

# The kinds as int constants: numba types them as literals, so that a call
# with one of them compiles that kind only (see rows_range).
SOFTMAX, LOG_SOFTMAX, LOGSUMEXP = (int(k) for k in Kind)


def sum_reciprocal(x, scratch, m, s):
    """``1 / sum`` of the softmax terms ``scratch[:len(x)]`` of the row ``x``
    (``s`` their blocked sum), in the summation order of every route
    (numba only; one implementation per dtype, so that a first call
    compiles its own only)."""
    raise NotImplementedError("sum_reciprocal is only callable from numba code")


@overload(sum_reciprocal, jit_options=SERIAL)
def _sum_reciprocal_impl(x, scratch, m, s):
    if x.dtype == types.float64:
        def f64(x, scratch, m, s):  # within about half an ulp (see lane_sum)
            n = x.shape[0]
            if n <= SHORT_ROW:
                return reciprocal2(*seq_sum(scratch, n))
            return reciprocal2(*lane_sum(lane_scratch(scratch, n), n))

        return f64

    def f32(x, scratch, m, s):  # short rows in row_sums' order, longer: s itself
        if x.shape[0] <= SHORT_ROW:
            return 1.0 / row_sums(x, scratch, m, False)[0]
        return 1.0 / s

    return f32


@njit(**SERIAL_INLINE)
def softmax_row_m(x, out, inv_t, scratch, m, nxt, stream):
    """softmax of a unit-stride row shorter than ``LONG_ROW`` into ``out``
    (may be ``x``), given ``m = row_max(x)``; returns ``(ok, row_max(nxt))``.
    A row with a special value (a maximum that is not finite, or a NaN) is
    not written and ``ok`` is False: the exact kernels own those rows, and
    the callers hand them over (so the exact kernels are compiled only for
    input that has such rows).  ``stream``: write ``out`` with streaming
    stores.  ``scratch``: from :func:`row_scratch` (float64 rows are summed
    by :func:`lane_sum`)."""
    if not -np.inf < m < np.inf:
        return False, row_max(nxt)
    # One block: float32 rows longer than SHORT_ROW are summed so by
    # exp_sum too; shorter ones again in row_sums' order below; float64
    # rows by lane_sum or seq_sum (this sum only shows a NaN).
    s, _, mn = exp_sum_block(x, m, inv_t, scratch, nxt, False)
    if s != s:
        return False, mn
    r = sum_reciprocal(x, scratch, m, s)
    if stream:
        stream_scale_into(scratch, r, out)
    else:
        scale_into(scratch, r, out)
    return True, mn


@njit(**SERIAL_INLINE)
def log_softmax_row_m(x, out, inv_t, scratch, m, nxt, stream):
    """log_softmax as :func:`softmax_row_m`: ``log1p`` of the sum of the
    terms below the maximum (plus the count of the others, less one) keeps
    the largest entry's tiny negative value."""
    if not -np.inf < m < np.inf:
        return False, row_max(nxt)
    s, k, mn = exp_sum_below(x, m, inv_t, scratch, nxt)
    if s != s:
        return False, mn
    lse = log1p_pos(s + (k - 1.0))
    if x.ctypes.data == out.ctypes.data:
        shift_inplace(out, m, inv_t, lse)
    elif stream:
        buf = span_view(scratch, 0, x.shape[0])  # scratch is longer than the row
        shift_into(x, m, inv_t, lse, buf)
        stream_scale_into(buf, 1.0, out)
    else:
        shift_into(x, m, inv_t, lse, out)
    return True, mn


@njit(**SERIAL)
def rowwise(kind, x, out, t, inv_t, scratch):
    """softmax or log_softmax (``kind``) of a unit-stride row of any
    length into ``out`` (may be ``x``)."""
    n = x.shape[0]
    stream = streams(x, out)
    if n >= LONG_ROW:
        if long_row(kind, x, out, t, inv_t, stream)[1] != 0:
            long_special(kind, x, out, t)
    elif n > 0 and kind == Kind.SOFTMAX:
        if not softmax_row_m(x, out, inv_t, scratch, row_max(x), x, stream)[0]:
            exact_rows.softmax_row(x, out, t, None)
    elif n > 0:
        if not log_softmax_row_m(x, out, inv_t, scratch, row_max(x), x, stream)[0]:
            exact_rows.log_softmax_row(x, out, t, None)


@njit(**SERIAL_INLINE)
def logsumexp_row_m(x, scratch, m, nxt):
    """``(ok, logsumexp(x), row_max(nxt))`` of a unit-stride row shorter
    than ``LONG_ROW``, given ``m = row_max(x)`` (float32 precision as in
    :func:`logsumexp_value`); ``ok`` as in :func:`softmax_row_m` (the
    result is then not computed)."""
    if not -np.inf < m < np.inf:
        return False, 0.0, row_max(nxt)
    s, k, mn = exp_sum_below(x, m, 1.0, scratch, nxt, False)
    if s != s:
        return False, 0.0, mn
    return True, logsumexp_value(x, np.int64(0), x.shape[0], m, s, k), mn


@njit(**SERIAL)
def logsumexp_row(x, scratch):
    """``(logsumexp(x), sign)`` of a unit-stride row."""
    n = x.shape[0]
    if n >= LONG_ROW:
        # No literal arguments: each would compile a second long_row (the
        # last argument is False: an empty output never streams).
        res, flag = long_row(np.int64(Kind.LOGSUMEXP), x, scratch[:0], 1.0, 1.0,
                             streams(x, scratch[:0]))
        if flag == 1:
            return exact_rows.logsumexp_row(x, None)
        if flag == 2:
            return logsumexp_dd(x, row_max(x)), 1.0
        return res, 1.0
    if n > 0:
        ok, res, _ = logsumexp_row_m(x, scratch, row_max(x), x)
        if ok:
            return res, 1.0
    return exact_rows.logsumexp_row(x, None)


def rows_range(kind, x, out, res, sign, t, special, lo, hi):
    """softmax or log_softmax (``kind``) of rows ``lo .. hi`` of the 2-D
    ``x`` (rows of 1 to ``LONG_ROW - 1`` elements) into ``out``, or
    logsumexp into ``res``/``sign`` (``out`` then unused, but writable
    and with at least one row).  A row with a special value is left to the
    exact kernels: ``special[r]`` is set to 1 (the caller clears it before).
    Rows of a unit-stride ``x`` are
    pipelined: the pass that computes row ``r``'s ``exp`` also reads row
    ``r + 1`` and finds its maximum."""
    raise NotImplementedError("rows_range is only callable from numba code")


@overload(rows_range, jit_options=SERIAL)
def _rows_range_impl(kind, x, out, res, sign, t, special, lo, hi):
    # ``kind`` must be a literal (a constant in the caller): the branches of
    # the other kinds are then left out, and a first softmax call compiles
    # none of the log_softmax and logsumexp row kernels.
    if not isinstance(kind, types.IntegerLiteral):
        return None
    k = kind.literal_value

    def impl(kind, x, out, res, sign, t, special, lo, hi):
        n = x.shape[1]
        if lo >= hi:
            return
        inv_t = 1.0 / t
        # Every row is a borrowed view (of the array, or of a one-row buffer
        # for strided rows): a reference-counted view in the loop would
        # halve the speed of the vectorized steps.
        obuf = line_buffer(out)
        xbuf = line_buffer(x)
        scratch = row_scratch(n)
        pipelined = x.strides[1] == x.itemsize
        unit_out = out.strides[1] == out.itemsize
        stream = k != LOGSUMEXP and unit_out and streams(x, out)
        xr = borrowed_row(x, lo, xbuf)
        m = row_max(xr)
        for r in range(lo, hi):
            if pipelined:  # the next row's maximum comes with this row's pass
                nxt = line_view(x, min(r + 1, hi - 1), 0, n)
            else:
                if r > lo:
                    xr = borrowed_row(x, r, xbuf)
                    m = row_max(xr)
                nxt = xr
            if k == LOGSUMEXP:
                ok, res[r], m = logsumexp_row_m(xr, scratch, m, nxt)
                sign[r] = 1.0
            else:
                o = borrowed_row(out, r, obuf, False)
                if k == SOFTMAX:
                    ok, m = softmax_row_m(xr, o, inv_t, scratch, m, nxt, stream)
                else:
                    ok, m = log_softmax_row_m(xr, o, inv_t, scratch, m, nxt, stream)
                if ok and not unit_out:
                    write_back(out[r], o)
            if not ok:
                special[r] = 1
            xr = nxt

    return impl


# ------------------------------------------------------------ small calls


def small_into(kind, one_row, x, out):
    """softmax or log_softmax (``kind``) along the last axis of a small
    C-contiguous array ``x`` of one row (``one_row``; 1-D or 2-D) or of rows of
    ``SHORT_ROW + 1`` to ``LONG_ROW - 1`` elements into ``out``, an array of
    its shape and dtype: the kernels the drivers run (the same bits) in one
    compiled call, the least overhead for the common small case.  Both
    flags are literals, so that a first call compiles its own kind and row
    class only; several short rows go to the short-row driver instead.
    Returns False when a row has a special value (the caller then runs the
    drivers, which hand such rows to the exact kernels)."""
    raise NotImplementedError("small_into is only callable from numba code")


@overload(small_into, jit_options=SERIAL)
def _small_into_impl(kind, one_row, x, out):
    if not (isinstance(kind, types.IntegerLiteral) and isinstance(one_row, types.BooleanLiteral)):
        return None
    k = kind.literal_value

    if one_row.literal_value:
        def row(kind, one_row, x, out):
            n = x.shape[-1]
            xr = x.reshape(n)  # (typed as the drivers' row views: one compilation)
            m = row_max(xr)
            if k == SOFTMAX:
                return softmax_row_m(xr, out.reshape(n), 1.0, row_scratch(n), m, xr, False)[0]
            return log_softmax_row_m(xr, out.reshape(n), 1.0, row_scratch(n), m, xr, False)[0]

        return row

    def rows(kind, one_row, x, out):
        none = out.reshape(out.size)[:0]  # the drivers' unused arguments (no allocation)
        special = np.zeros(x.shape[0], np.uint8)
        rows_range(kind, read_only_view(x), out, none, none, 1.0, special, np.int64(0),
                   x.shape[0])
        return not special.any()

    return rows


@njit(**SMALL)
def small_softmax_row(x, out):
    """:func:`small_into` of softmax, one row."""
    return small_into(SOFTMAX, True, x, out)


@njit(**SMALL)
def small_log_softmax_row(x, out):
    """:func:`small_into` of log_softmax, one row."""
    return small_into(LOG_SOFTMAX, True, x, out)


@njit(**SMALL)
def small_softmax_rows(x, out):
    """:func:`small_into` of softmax, several rows."""
    return small_into(SOFTMAX, False, x, out)


@njit(**SMALL)
def small_log_softmax_rows(x, out):
    """:func:`small_into` of log_softmax, several rows."""
    return small_into(LOG_SOFTMAX, False, x, out)


@njit(**SMALL)
def small_short_rows(kind, x, out):
    """softmax or log_softmax (``kind``, an int64 as the drivers get it: one
    compilation of the short-row kernels for every kind) of the short rows
    (at most ``SHORT_ROW`` elements) of the small C-contiguous 2-D ``x``
    into ``out``, by the short-row driver; False as :func:`small_into`."""
    none = out.reshape(out.size)[:0]  # the driver's unused arguments (no allocation)
    special = np.zeros(x.shape[0], np.uint8)
    short_rows_range(kind, read_only_view(x), out, none, none, 1.0, special, np.int64(0),
                     x.shape[0])
    return not special.any()


@njit(**SMALL)
def small_short_logsumexp(x, res, no_out):
    """logsumexp of the short rows of the small 2-D ``x`` into the 1-D
    ``res``, by the short-row driver (``no_out`` as in
    :func:`small_logsumexp_rows`); False as :func:`small_into`."""
    special = np.zeros(x.shape[0], np.uint8)
    short_rows_range(np.int64(LOGSUMEXP), read_only_view(x), no_out, res, np.empty_like(res),
                     1.0, special, np.int64(0), x.shape[0])
    return not special.any()


@njit(**SMALL)
def small_logsumexp_row(x, res):
    """logsumexp of the one row of the small 1-D or 2-D ``x`` into ``res[0]``;
    False as :func:`small_into`."""
    xr = x.reshape(x.shape[-1])  # (typed as the drivers' row views)
    ok, res[0], _ = logsumexp_row_m(xr, row_scratch(xr.shape[0]), row_max(xr), xr)
    return ok


@njit(**SMALL)
def small_logsumexp_rows(x, res, no_out):
    """logsumexp of the rows (``SHORT_ROW + 1`` to ``LONG_ROW - 1``
    elements) of the small 2-D ``x`` into the 1-D ``res``; ``no_out`` is
    the drivers' unused ``out`` (an empty 2-D array of ``x``'s dtype);
    False as :func:`small_into`."""
    special = np.zeros(x.shape[0], np.uint8)
    rows_range(LOGSUMEXP, read_only_view(x), no_out, res, np.empty_like(res), 1.0, special,
               np.int64(0), x.shape[0])
    return not special.any()


# ---------------------------------------------------------------- drivers
# One serial and one parallel driver per kind, each calling rows_range
# itself: every level of calls between an entry and the row steps makes
# LLVM optimize and compile the whole tree below it once more.  (Serial and
# parallel are separate functions: numba's on-disk cache does not tell
# compilation options apart.)  The parallel ones split the rows into
# ``nblocks`` contiguous blocks spread over the threads.


@njit(**SERIAL)
def softmax_rows_serial(x, out, res, sign, t, special):
    """:func:`rows_range` of softmax over all rows of ``x``."""
    rows_range(SOFTMAX, x, out, res, sign, t, special, np.int64(0), x.shape[0])


@njit(**SERIAL)
def log_softmax_rows_serial(x, out, res, sign, t, special):
    """:func:`rows_range` of log_softmax over all rows of ``x``."""
    rows_range(LOG_SOFTMAX, x, out, res, sign, t, special, np.int64(0), x.shape[0])


@njit(**SERIAL)
def logsumexp_rows_serial(x, out, res, sign, t, special):
    """:func:`rows_range` of logsumexp over all rows of ``x``."""
    rows_range(LOGSUMEXP, x, out, res, sign, t, special, np.int64(0), x.shape[0])


@njit(**PARALLEL)
def softmax_rows_parallel(x, out, res, sign, t, special, nblocks):
    """:func:`softmax_rows_serial` in ``nblocks`` blocks of rows."""
    rows = x.shape[0]
    for b in prange(nblocks):
        rows_range(SOFTMAX, x, out, res, sign, t, special, b * rows // nblocks,
                   (b + 1) * rows // nblocks)


@njit(**PARALLEL)
def log_softmax_rows_parallel(x, out, res, sign, t, special, nblocks):
    """:func:`log_softmax_rows_serial` in ``nblocks`` blocks of rows."""
    rows = x.shape[0]
    for b in prange(nblocks):
        rows_range(LOG_SOFTMAX, x, out, res, sign, t, special, b * rows // nblocks,
                   (b + 1) * rows // nblocks)


@njit(**PARALLEL)
def logsumexp_rows_parallel(x, out, res, sign, t, special, nblocks):
    """:func:`logsumexp_rows_serial` in ``nblocks`` blocks of rows."""
    rows = x.shape[0]
    for b in prange(nblocks):
        rows_range(LOGSUMEXP, x, out, res, sign, t, special, b * rows // nblocks,
                   (b + 1) * rows // nblocks)


# ------------------------------------------------------------ first route
# The kernels a process runs while the full engine for its kind and dtype
# is not compiled yet (softjit._first): C-contiguous rows of 1 to
# LONG_ROW - 1 elements, one row after the other, through the same per-row
# steps as rows_range (so the same bits), without what makes the drivers
# heavy to compile (threads, strided rows, the next row's maximum,
# streaming stores): about a second to compile instead of several.


@njit(**SERIAL)
def first_softmax_rows(x, out, t, special):
    """softmax of the rows of the C-contiguous 2-D ``x`` into ``out``; a row
    with a special value is left to the exact kernels (``special[r] = 1``)."""
    rows, n = x.shape
    scratch = row_scratch(n)
    inv_t = 1.0 / t
    for r in range(rows):
        xr = line_view(x, r, 0, n)
        ok, _ = softmax_row_m(xr, line_view(out, r, 0, n), inv_t, scratch, row_max(xr), xr,
                              False)
        if not ok:
            special[r] = 1


@njit(**SERIAL)
def first_log_softmax_rows(x, out, t, special):
    """log_softmax as :func:`first_softmax_rows`."""
    rows, n = x.shape
    scratch = row_scratch(n)
    inv_t = 1.0 / t
    for r in range(rows):
        xr = line_view(x, r, 0, n)
        ok, _ = log_softmax_row_m(xr, line_view(out, r, 0, n), inv_t, scratch, row_max(xr), xr,
                                  False)
        if not ok:
            special[r] = 1


@njit(**SERIAL)
def first_logsumexp_rows(x, res, special):
    """logsumexp of the rows of the C-contiguous 2-D ``x`` into ``res``, as
    :func:`first_softmax_rows`; a row whose result needs refining
    (:func:`~softjit.kernels.steps.refines`) gets ``special[r] = 2`` and
    its unrefined value, for :func:`first_refine_rows`."""
    rows, n = x.shape
    scratch = row_scratch(n)
    for r in range(rows):
        xr = line_view(x, r, 0, n)
        m = row_max(xr)
        if not -np.inf < m < np.inf:
            special[r] = 1
            continue
        s, k, _ = exp_sum_below(xr, m, 1.0, scratch, xr, False)
        if s != s:
            special[r] = 1
            continue
        lse = m + log1p_pos(s + (k - 1.0))
        res[r] = lse
        if refines(xr, m, lse):
            special[r] = 2


@njit(**SERIAL)
def first_refine_rows(x, rows, res):
    """``res[r]`` of :func:`first_logsumexp_rows` refined for the rows
    ``rows`` (as :func:`~softjit.kernels.steps.logsumexp_value` refines it:
    compiled only for input that has such rows)."""
    n = x.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        xr = line_view(x, r, 0, n)
        res[r] = logsumexp_refine(xr, np.int64(0), n, row_max(xr), res[r])
