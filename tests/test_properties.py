"""Property tests (hypothesis): normalisation, shift invariance, identities."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softjit

settings.register_profile("softjit", deadline=None, max_examples=60)
settings.load_profile("softjit")

DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def arrays_and_axis(draw, lo=-1e3, hi=1e3):
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    elements = st.floats(lo, hi, width=32 if dtype == np.float32 else 64)
    x = draw(hnp.arrays(dtype, shape, elements=elements))
    axis = draw(st.one_of(st.integers(-x.ndim, x.ndim - 1), st.none()))
    return x, axis


def slice_len(x, axis):
    return x.size if axis is None else x.shape[axis]


@given(arrays_and_axis(lo=-np.finfo(np.float32).max, hi=np.finfo(np.float32).max))
def test_finite_input_sums_to_one_without_nan(case):
    x, axis = case
    y = softjit.softmax(x, axis=axis)
    assert np.isfinite(y).all() and (y >= 0).all() and (y <= 1).all()
    eps = np.finfo(x.dtype).eps
    total = np.sum(y.astype(np.float64), axis=axis)
    assert np.all(np.abs(total - 1) <= 2 * slice_len(x, axis) * eps)
    # log_softmax is finite wherever x - max(x), rounded to the dtype, is
    # finite (for float32, -3.4028235e38 - 1.9e22 rounds to -3.4028235e38)
    gap = x.astype(np.float64) - np.max(x, axis=axis, keepdims=True)
    with np.errstate(over="ignore"):
        representable = np.isfinite(gap.astype(x.dtype))
    ls = softjit.log_softmax(x, axis=axis)
    assert np.isfinite(ls[representable]).all() and (ls[~representable] == -np.inf).all()


@given(arrays_and_axis(), st.integers(-1000, 1000))
def test_shift_invariance(case, shift):
    x, axis = case
    x = x.astype(np.float64)
    a = softjit.softmax(x, axis=axis)
    b = softjit.softmax(x + shift, axis=axis)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(softjit.logsumexp(x + shift, axis=axis),
                               softjit.logsumexp(x, axis=axis) + shift, rtol=1e-12, atol=1e-9)


@given(arrays_and_axis())
def test_exp_log_softmax_is_softmax(case):
    x, axis = case
    rtol = 1e-5 if x.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(np.exp(softjit.log_softmax(x, axis=axis).astype(np.float64)),
                               softjit.softmax(x, axis=axis), rtol=rtol, atol=1e-30)


@given(arrays_and_axis())
def test_logsumexp_identities(case):
    x, axis = case
    lse = softjit.logsumexp(x, axis=axis, keepdims=True)
    m = np.max(x, axis=axis, keepdims=True)
    assert np.all(lse >= m)
    assert np.all(lse <= m + np.log(slice_len(x, axis)) + 2 * np.spacing(np.abs(m) + 10))
    atol = 1e-3 if x.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(softjit.log_softmax(x, axis=axis), x - lse, rtol=1e-5, atol=atol)


@given(arrays_and_axis(), st.floats(1e-2, 1e2))
def test_temperature_is_division(case, t):
    x, axis = case
    x = x.astype(np.float64)
    np.testing.assert_allclose(softjit.softmax(x, axis=axis, temperature=t),
                               softjit.softmax(x / t, axis=axis), rtol=1e-8, atol=1e-300)


@given(arrays_and_axis(), st.data())
def test_where_equals_dropping_entries(case, data):
    x, _ = case
    row = x.reshape(-1)
    mask = data.draw(hnp.arrays(np.bool_, row.shape))
    got = softjit.softmax(row, where=mask)
    assert np.all(got[~mask] == 0)
    if mask.any():
        np.testing.assert_allclose(got[mask], softjit.softmax(row[mask]), rtol=1e-6, atol=1e-30)
    else:
        assert np.all(got == 0)
