"""Agreement with scipy.special (when installed), including complex input."""

import numpy as np
import pytest

import softjit

special = pytest.importorskip("scipy.special")


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (0, 1, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_matches_scipy(axis, dtype, rng):
    x = rng.standard_normal((3, 4, 5)) * 4
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal((3, 4, 5))
    x = x.astype(dtype)
    rtol = 2e-5 if dtype in (np.float32, np.complex64) else 1e-12
    # scipy's log_softmax forms log(sum) rather than log1p(sum - 1), so its
    # entries near 0 carry an absolute error of a few eps.
    eps = float(np.finfo(dtype).eps)
    for ours, theirs, atol in [(softjit.softmax, special.softmax, 1e-30),
                               (softjit.log_softmax, special.log_softmax, 8 * eps)]:
        got = ours(x, axis=axis)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, theirs(x, axis=axis), rtol=rtol, atol=atol)
    got = softjit.logsumexp(x, axis=axis)
    np.testing.assert_allclose(got, special.logsumexp(x, axis=axis), rtol=rtol)
    np.testing.assert_allclose(softjit.logsumexp(x, axis=axis, keepdims=True),
                               special.logsumexp(x, axis=axis, keepdims=True), rtol=rtol)


@pytest.mark.parametrize("axis", [None, 0, -1])
def test_weights_and_sign_match_scipy(axis, rng):
    x = rng.standard_normal((4, 6)) * 3
    b = rng.standard_normal((4, 6))
    b[1, 2] = 0.0
    for kw in ({"b": b}, {"b": np.abs(b)}, {"b": b, "return_sign": True},
               {"b": b[0], "return_sign": True}, {"b": 2}):
        got = softjit.logsumexp(x, axis=axis, **kw)
        want = special.logsumexp(x, axis=axis, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_complex_weights_and_sign(rng):
    x = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    b = rng.standard_normal(5)
    np.testing.assert_allclose(softjit.logsumexp(x, b=b), special.logsumexp(x, b=b), rtol=1e-12)
    got = softjit.logsumexp(x, b=b, return_sign=True)
    want = special.logsumexp(x, b=b, return_sign=True)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


def test_complex_masks_and_temperature(rng):
    x = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    mask = np.array([True, False, True, True])
    got = softjit.softmax(x, where=mask, temperature=2.0)
    np.testing.assert_allclose(got[:, mask], special.softmax(x[:, mask] / 2, axis=-1),
                               rtol=1e-12)
    np.testing.assert_array_equal(got[:, ~mask], 0)
    assert (softjit.log_softmax(x, where=np.zeros(4, bool)) == -np.inf).all()
    assert (softjit.softmax(x, where=np.zeros(4, bool)) == 0).all()
