"""The special-values table, exactly, with no RuntimeWarning."""

import warnings

import numpy as np
import pytest

import softjit

inf, nan = np.inf, np.nan

BIG = 7.25e37  # placeholder for the dtype's largest finite value

# (row, softmax, log_softmax, logsumexp)
TABLE = [
    ([BIG, -BIG, 0.0], [1, 0, 0], [0, -inf, -BIG], BIG),
    ([-BIG, -BIG], [0.5, 0.5], [-np.log(2), -np.log(2)], -BIG),
    ([1.0, nan, 2.0], [nan, nan, nan], [nan, nan, nan], nan),
    ([nan, inf, -inf], [nan, nan, nan], [nan, nan, nan], nan),
    ([-inf, 0.0, 0.0], [0, 0.5, 0.5], [-inf, -np.log(2), -np.log(2)], np.log(2)),
    ([-inf, -inf], [nan, nan], [nan, nan], -inf),
    ([3.0, inf, -inf, BIG], [0, 1, 0, 0], [-inf, 0, -inf, -inf], inf),
    ([inf, 1.0, inf], [nan, nan, nan], [nan, nan, nan], inf),
    ([1000.0, 2000.0, 3000.0, 4000.0, 5000.0], [0, 0, 0, 0, 1],
     [-4000, -3000, -2000, -1000, 0], 5000.0),
]


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize(("row", "sm", "lsm", "lse"), TABLE, ids=lambda v: str(v)[:30])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_table(row, sm, lsm, lse, dtype):
    big = np.finfo(dtype).max

    def values(v):
        return np.array([(big if e == BIG else -big if e == -BIG else e)
                         for e in np.ravel(v)], dtype=dtype).reshape(np.shape(v))

    x, sm, lsm, lse = values(row), values(sm), values(lsm), values(lse)
    np.testing.assert_allclose(softjit.softmax(x), sm, rtol=1e-6)
    np.testing.assert_allclose(softjit.log_softmax(x), lsm, rtol=1e-6)
    np.testing.assert_allclose(softjit.logsumexp(x), lse, rtol=1e-6)
    # the same row inside a batch, along axis 0, in place
    batch = np.stack([x, np.zeros_like(x)], axis=1)
    np.testing.assert_allclose(softjit.softmax(batch, axis=0)[:, 0], sm, rtol=1e-6)
    y = x.copy()
    softjit.log_softmax(y, out=y)
    np.testing.assert_allclose(y, lsm, rtol=1e-6)


def test_empty_reduced_axis():
    assert softjit.softmax(np.empty(0)).shape == (0,)
    assert softjit.log_softmax(np.empty((2, 0))).shape == (2, 0)
    assert softjit.logsumexp(np.empty(0)) == -inf
    np.testing.assert_array_equal(softjit.logsumexp(np.empty((2, 0))), [-inf, -inf])


def test_masked_rows():
    x = np.array([[-inf, -inf, 1.0], [nan, 2.0, 3.0]])
    mask = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(softjit.softmax(x, where=mask), [[nan, nan, 0], [0, 0, 0]])
    np.testing.assert_array_equal(softjit.log_softmax(x, where=mask),
                                  [[nan, nan, -inf], [-inf, -inf, -inf]])
    np.testing.assert_array_equal(softjit.logsumexp(x, where=mask), [-inf, -inf])


def test_log_softmax_largest_entry_is_not_rounded_to_zero():
    assert softjit.log_softmax([0.0, -40.0])[0] == pytest.approx(-4.248354255291589e-18,
                                                                 rel=1e-14)


def test_weighted_specials():
    # a zero weight removes even an infinite or NaN entry (scipy's rule)
    assert softjit.logsumexp([inf, 0.0], b=[0.0, 1.0]) == 0.0
    assert softjit.logsumexp([nan, 0.0], b=[0.0, 1.0]) == 0.0
    assert np.isnan(softjit.logsumexp([0.0, 0.0], b=[1.0, nan]))
    assert softjit.logsumexp([inf, 0.0], b=[-1.0, 1.0], return_sign=True) == (inf, -1.0)
    assert np.isnan(softjit.logsumexp([inf, inf], b=[-1.0, 1.0]))
    assert softjit.logsumexp([0.0, 0.0], b=[1.0, -1.0], return_sign=True) == (-inf, 0.0)
    assert np.isnan(softjit.logsumexp([0.0, 1.0], b=[1.0, -1.0]))
    val, sign = softjit.logsumexp([0.0, 1.0], b=[1.0, -1.0], return_sign=True)
    assert sign == -1.0 and val == pytest.approx(np.log(np.e - 1), rel=1e-15)


@pytest.mark.parametrize("n", [100, 40_000], ids=["row", "long-row"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_table_in_long_rows(n, dtype):
    """The table's rows padded with ``-inf`` (which changes no result) to
    rows of 100 elements (float32: one plain sum of the terms, see
    _fastrows.exp_sum_below) and of 40,000 (chunked long rows), alone and
    in a batch of two (threads)."""
    big = np.finfo(dtype).max
    for row, sm, lsm, lse in TABLE:
        k = len(row)
        x = np.full(n, -inf, dtype)
        x[:k] = [big if e == BIG else -big if e == -BIG else e for e in row]
        nan_row = bool(np.isnan(sm).all())
        want_sm = np.full(n, nan if nan_row else 0.0)
        want_lsm = np.full(n, nan if nan_row else -inf)
        want_sm[:k] = sm
        want_lsm[:k] = [-big if e == -BIG else e for e in lsm]
        want_lse = big if lse == BIG else -big if lse == -BIG else lse
        for batch in (x, np.stack([x, x[::-1].copy()])):
            first = (slice(None),) if batch.ndim == 1 else (0, slice(None))
            np.testing.assert_allclose(softjit.softmax(batch)[first], want_sm, rtol=1e-6)
            np.testing.assert_allclose(softjit.log_softmax(batch)[first], want_lsm, rtol=1e-6)
            np.testing.assert_allclose(np.ravel(softjit.logsumexp(batch))[0], want_lse, rtol=1e-6)
