"""The examples from the user discussions softjit answers."""

import warnings

import numpy as np

import softjit


def test_three_scores():
    np.testing.assert_allclose(softjit.softmax([3.0, 1.0, 0.2]),
                               [0.8360188, 0.11314284, 0.05083836], rtol=1e-6)


def test_large_logits_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(softjit.softmax([1000, 2000, 3000, 4000, 5000]),
                                      [0, 0, 0, 0, 1])
        np.testing.assert_array_equal(softjit.softmax([1000, 1000, 100]), [0.5, 0.5, 0.0])


def test_batch_rows():
    x = np.array([[1, 2, 3, 6], [2, 4, 5, 6], [1, 2, 3, 6]])
    y = softjit.softmax(x)
    want = [0.00626879, 0.01704033, 0.04632042, 0.93037047]
    np.testing.assert_allclose(y[0], want, rtol=1e-6)
    np.testing.assert_array_equal(y[0], y[2])
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-15)


def test_batch_of_identical_logits():
    logits = np.array([[-0.0052024, -0.00770216, 0.01360943, -0.008921]] * 2)
    np.testing.assert_allclose(softjit.softmax(logits),
                               [[0.2492037, 0.24858153, 0.25393605, 0.24827873]] * 2, rtol=1e-6)


def test_log_softmax_stays_finite():
    x = [-10000, -1020, 100, -70220]
    got = softjit.log_softmax(x)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, [-10100, -1120, 0, -70320])
    with np.errstate(divide="ignore"):
        assert np.isinf(np.log(softjit.softmax(x))).sum() == 3


def test_fourteen_element_vector():
    x = np.array([10, 10, 18, 9, 15, 3, 1, 2, 1, 10, 10, 10, 8, 15], dtype=np.float64)
    e = np.exp(x - x.max())
    np.testing.assert_allclose(softjit.softmax(x), e / e.sum(), rtol=1e-14)
    np.testing.assert_allclose(softjit.softmax(x + 800), e / e.sum(), rtol=1e-13)


def test_two_by_three_rows():
    np.testing.assert_allclose(softjit.softmax([[2, 3, 4], [3, 5, 7]]),
                               [[0.09003057, 0.24472847, 0.66524096],
                                [0.01587624, 0.11731043, 0.86681333]], rtol=1e-6)
