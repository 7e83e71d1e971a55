"""The accuracy contract, against an mpmath reference that forms x_i - max
exactly and uses log1p of the sum of the terms other than the maximum.

Errors are in ulps of the reference value rounded to the output dtype, for
rows laid out along memory and across it (the row and column kernels):

- float32: softmax, log_softmax (every entry) and logsumexp <= 1 ulp;
- float64: softmax <= 2 ulp * (1 + |x_i - max|); log_softmax <= 2 ulp except
  the row's largest entry (<= 8 ulp); logsumexp <= 2 ulp, also where the
  result is near 0 (down to 1e-12 here); row sums within 4 ulp of 1 at any
  row length.
"""

import math

import mpmath
import numpy as np
import pytest

import softjit
from softjit import gufuncs

mpmath.mp.prec = 160


def reference(row: np.ndarray):
    """(softmax, log_softmax, logsumexp) of a finite row, as mpf values."""
    xs = [mpmath.mpf(float(v)) for v in row]
    imax = int(np.argmax(row))
    m = xs[imax]
    d = [x - m for x in xs]
    e = [mpmath.exp(v) for v in d]
    rest = mpmath.fsum(e[:imax] + e[imax + 1:])
    lse = mpmath.log1p(rest)
    return [v / (1 + rest) for v in e], [v - lse for v in d], m + lse, d


def ulps(got, want, dtype) -> float:
    """|got - want| in ulps of want rounded to dtype."""
    w = dtype(float(want))
    ulp = float(np.spacing(np.abs(w))) if w != 0 else float(np.finfo(dtype).smallest_subnormal)
    return float(abs(mpmath.mpf(float(got)) - want) / ulp)


def rows(dtype, rng):
    out = []
    for n in (1, 2, 3, 7, 10, 64, 100, 1000, 3000):
        for scale in (1.0, 10.0, 100.0):
            out.append((rng.standard_normal(n) * scale).astype(dtype))
    out.append((1e4 + rng.standard_normal(50)).astype(dtype))  # large offset
    out.append(np.array([0.0, -40.0], dtype))  # tiny non-max terms
    out.append(np.linspace(-80, 0, 500).astype(dtype))  # terms down to underflow
    # Rows whose terms below the maximum sum to about 2**-6, where float32
    # rows switch from one plain sum to a separate sum below the maximum
    # (_fastrows.SPLIT_FREE_MIN), far less, and rows with two maxima.
    for total in (2.0**-6 * 0.97, 2.0**-6 * 1.03, 1e-3, 1e-12):
        out.append(np.r_[0.0, np.log(total / 199) + 0.1 * rng.standard_normal(199)].astype(dtype))
    out.append(np.r_[5.0, 5.0, 5.0 - 30.0 * rng.random(198)].astype(dtype))
    # a tiny sum below the maximum and a logsumexp far from 0 (float32:
    # logsumexp from the plain sum, log_softmax's largest entry apart)
    out.append(np.r_[3.0, 3.0 + np.log(1e-7 / 199) + 0.1 * rng.standard_normal(199)].astype(dtype))
    return out


def results(row: np.ndarray, layout: str):
    """softmax, log_softmax and logsumexp of ``row`` laid out along memory
    (the row kernels) or across it: as column 0 of a two-column C-ordered
    array reduced along axis 0 (the column kernels)."""
    if layout == "row":
        return softjit.softmax(row), softjit.log_softmax(row), softjit.logsumexp(row)
    x = np.stack([row, row[::-1]], axis=1)
    return (softjit.softmax(x, axis=0)[:, 0], softjit.log_softmax(x, axis=0)[:, 0],
            softjit.logsumexp(x, axis=0)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accuracy_contract(dtype, rng):
    worst = {layout: {"softmax": 0.0, "log_softmax": 0.0, "log_softmax_max": 0.0,
                      "logsumexp": 0.0} for layout in ("row", "column")}
    for row in rows(dtype, rng):
        sm_ref, ls_ref, lse_ref, d = reference(row)
        imax = int(np.argmax(row))
        for layout, w in worst.items():
            sm, ls, lse = results(row, layout)
            if layout == "row":  # the gufuncs run the same row kernels
                np.testing.assert_array_equal(gufuncs.softmax(row), sm)
                np.testing.assert_array_equal(gufuncs.log_softmax(row), ls)
            for i in range(row.size):
                e = ulps(sm[i], sm_ref[i], dtype)
                if dtype == np.float64:
                    e /= 1 + float(abs(d[i]))
                w["softmax"] = max(w["softmax"], e)
                key = "log_softmax_max" if i == imax else "log_softmax"
                w[key] = max(w[key], ulps(ls[i], ls_ref[i], dtype))
            w["logsumexp"] = max(w["logsumexp"], ulps(lse, lse_ref, dtype))
    for w in worst.values():
        if dtype == np.float32:
            assert max(w.values()) <= 1.0, worst
        else:
            assert w["softmax"] <= 2.0, worst
            assert w["log_softmax"] <= 2.0, worst
            assert w["log_softmax_max"] <= 8.0, worst
            assert w["logsumexp"] <= 2.0, worst


def test_float64_softmax_of_random_rows_near_their_maximum(rng):
    """The entries near the maximum, where the bound is tightest (2 ulp,
    and 1/sum just below a power of two doubles the ulps of a sum's
    error), on random rows of every length class: short (the transposed
    blocks), medium (lane sums) and across memory (the column kernels)."""
    worst = 0.0
    for n in [*rng.integers(2, 65, 12), *rng.integers(65, 2000, 12)]:
        row = rng.standard_normal(int(n)) * rng.choice([1.0, 3.0, 10.0])
        sm_ref, _, _, d = reference(row)
        for layout in ("row", "column"):
            sm = results(row, layout)[0]
            batch = softjit.softmax(np.stack([row] * 3))[1]  # the short-row blocks
            for got in (sm, batch):
                for i in np.flatnonzero(np.abs(row - row.max()) < 1.0):
                    worst = max(worst, ulps(got[i], sm_ref[i], np.float64) / (1 + abs(d[i])))
    assert worst <= 2.0, worst


def test_log_softmax_keeps_the_largest_entry():
    assert softjit.log_softmax([0.0, -40.0])[0] == -4.248354255291589e-18
    assert softjit.log_softmax(np.array([0.0, -40.0], np.float32))[0] == np.float32(
        -4.248354255291589e-18)


def test_long_float32_rows_whose_largest_entries_need_care(rng):
    """float32 long rows are first summed plainly; the sum below the
    maximum is formed apart when it is small, and the float64-exact ``exp``
    used when logsumexp lies in (-1, 1) (_fastrows.second_mode): the
    largest log_softmax entry and logsumexp stay within 1 ulp, serial and
    across threads."""
    n = 40_000
    rows = [
        np.r_[0.0, -30.0 + rng.standard_normal(n - 1)],  # tiny sum below the max
        np.r_[0.0, np.log(2.0**-6 / (n - 1)) + 0.01 * rng.standard_normal(n - 1)],
        -np.log(n) + 0.1 * rng.standard_normal(n),  # logsumexp near 0
        rng.standard_normal(n),  # the plain sum suffices
        np.r_[3.0, -27.0 + rng.standard_normal(n - 1)],  # logsumexp of the plain sum
    ]
    for row in rows:
        row = row.astype(np.float32)
        _, ls_ref, lse_ref, _ = reference(row)
        imax = int(np.argmax(row))
        for x in (row, np.stack([row, row[::-1]])):  # serial, threads
            ls = softjit.log_softmax(x)
            lse = softjit.logsumexp(x)
            assert ulps(ls.reshape(-1, n)[0, imax], ls_ref[imax], np.float32) <= 1.0
            assert ulps(lse.reshape(-1)[0], lse_ref, np.float32) <= 1.0


@pytest.mark.parametrize(("n", "nrows"), [(2, 40), (3, 40), (14, 40), (64, 30), (65, 30),
                                          (300, 12), (5000, 4), (40_000, 2)])
def test_float64_logsumexp_near_zero(n, nrows, rng):
    """Rows shifted so that logsumexp lies within 1e-1 .. 1e-12 of 0, where
    the maximum (negative) and the logarithm of the sum cancel: within 2 ulp
    of the small result, in a batch along memory, across it (axis 0) and
    alone; log_softmax's largest entry within 8 ulp."""
    x = rng.standard_normal((nrows, n)) * rng.choice([0.1, 1.0, 5.0, 30.0], size=(nrows, 1))
    target = rng.choice([1e-1, 1e-3, 1e-6, 1e-9, 1e-12], size=nrows)
    target *= rng.choice([-1, 1], size=nrows)
    x -= np.array([float(reference(row)[2]) for row in x])[:, None] - target[:, None]
    refs = [reference(row) for row in x]
    batch = softjit.logsumexp(x)
    across = softjit.logsumexp(np.ascontiguousarray(x.T), axis=0)
    ls = softjit.log_softmax(x)
    for i, (_, ls_ref, lse_ref, _) in enumerate(refs):
        assert abs(float(lse_ref)) < 0.2
        assert ulps(batch[i], lse_ref, np.float64) <= 2.0, (i, batch[i], lse_ref)
        assert ulps(across[i], lse_ref, np.float64) <= 2.0
        assert ulps(softjit.logsumexp(x[i]), lse_ref, np.float64) <= 2.0
        imax = int(np.argmax(x[i]))
        assert ulps(ls[i, imax], ls_ref[imax], np.float64) <= 8.0


def test_float64_logsumexp_of_log_probabilities(rng):
    """logsumexp of log_softmax rows is 0 up to their rounding: the
    double-double recomputation gives it to about 1e-30, not 1e-16."""
    lp = softjit.log_softmax(rng.standard_normal((20, 50)) * 3)
    got = softjit.logsumexp(lp)
    for i in range(lp.shape[0]):
        assert abs(mpmath.mpf(float(got[i])) - reference(lp[i])[2]) < 1e-29


@pytest.mark.parametrize("n", [10, 1000, 100_000, 1_000_000])
def test_row_sums_are_one_within_a_few_ulp(n, rng):
    x = rng.standard_normal((2, n)) * 3
    y = softjit.softmax(x)
    for row in y:
        assert abs(math.fsum(row) - 1.0) <= 4 * np.finfo(np.float64).eps


@pytest.mark.parametrize("n", [10, 1000, 30_000])
def test_sums_of_rows_across_memory_are_one_within_a_few_ulp(n, rng):
    y = softjit.softmax(rng.standard_normal((n, 16)) * 3, axis=0)  # the column kernels
    for row in y.T:
        assert abs(math.fsum(row) - 1.0) <= 4 * np.finfo(np.float64).eps


def test_long_rows_split_across_threads(rng):
    """Rows long enough for the chunked, multi-threaded kernels."""
    n = 80_000
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal((2, n)) * 5).astype(dtype)
        sm_ref, ls_ref, lse_ref, d = reference(x[0])
        sm, ls, lse = softjit.softmax(x), softjit.log_softmax(x), softjit.logsumexp(x)
        tol = 1.0 if dtype == np.float32 else 2.0
        idx = rng.choice(n, 2000, replace=False)
        for i in idx:
            bound = tol if dtype == np.float32 else tol * (1 + float(abs(d[i])))
            assert ulps(sm[0, i], sm_ref[i], dtype) <= bound
            assert ulps(ls[0, i], ls_ref[i], dtype) <= tol
        assert ulps(lse[0], lse_ref, dtype) <= tol
        assert abs(math.fsum(sm[1].astype(np.float64)) - 1) <= n * np.finfo(dtype).eps
