"""The accuracy contract, against an mpmath reference that forms x_i - max
exactly and uses log1p of the sum of the terms other than the maximum.

Errors are in ulps of the reference value rounded to the output dtype:

- float32: softmax, log_softmax (every entry) and logsumexp <= 1 ulp;
- float64: softmax <= 2 ulp * (1 + |x_i - max|); log_softmax <= 2 ulp except
  the row's largest entry (<= 64 ulp); logsumexp <= 2 ulp; row sums within
  4 ulp of 1 at any row length.
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
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accuracy_contract(dtype, rng):
    worst = {"softmax": 0.0, "log_softmax": 0.0, "log_softmax_max": 0.0, "logsumexp": 0.0}
    for row in rows(dtype, rng):
        sm_ref, ls_ref, lse_ref, d = reference(row)
        # the public functions, a batch (parallel-sized) and the gufuncs
        sm = softjit.softmax(row)
        ls = softjit.log_softmax(row)
        lse = softjit.logsumexp(row)
        np.testing.assert_array_equal(gufuncs.softmax(row), sm)
        np.testing.assert_array_equal(gufuncs.log_softmax(row), ls)
        imax = int(np.argmax(row))
        for i in range(row.size):
            e = ulps(sm[i], sm_ref[i], dtype)
            if dtype == np.float64:
                e /= 1 + float(abs(d[i]))
            worst["softmax"] = max(worst["softmax"], e)
            key = "log_softmax_max" if i == imax else "log_softmax"
            worst[key] = max(worst[key], ulps(ls[i], ls_ref[i], dtype))
        worst["logsumexp"] = max(worst["logsumexp"], ulps(lse, lse_ref, dtype))
    if dtype == np.float32:
        assert max(worst.values()) <= 1.0, worst
    else:
        assert worst["softmax"] <= 2.0, worst
        assert worst["log_softmax"] <= 2.0, worst
        assert worst["log_softmax_max"] <= 64.0, worst
        assert worst["logsumexp"] <= 2.0, worst


def test_log_softmax_keeps_the_largest_entry():
    assert softjit.log_softmax([0.0, -40.0])[0] == -4.248354255291589e-18
    assert softjit.log_softmax(np.array([0.0, -40.0], np.float32))[0] == np.float32(
        -4.248354255291589e-18)


@pytest.mark.parametrize("n", [10, 1000, 100_000, 1_000_000])
def test_row_sums_are_one_within_a_few_ulp(n, rng):
    x = rng.standard_normal((2, n)) * 3
    y = softjit.softmax(x)
    for row in y:
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
