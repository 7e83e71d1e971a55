"""softmax_vjp, softmax_jvp, log_softmax_vjp and softmax_jacobian: against
explicit Jacobians, central finite differences and torch autograd; every
axis, dtype and layout; special values, masks, out= and bad input."""

import warnings

import numpy as np
import pytest
import reference as ref
import reference_grad as refg
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softjit
from softjit import gufuncs

inf, nan = np.inf, np.nan

AXES = [((7,), -1), ((7,), None), ((3, 5), 0), ((3, 5), -1), ((3, 5), None),
        ((2, 3, 4), 1), ((2, 3, 4), (0, 2)), ((2, 3, 2, 5), (1, 3)), ((2, 3, 4), ())]


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


def import_torch():
    """torch, or skip the test when it is not installed (``pip install .[compare]``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own import-time deprecations
        return pytest.importorskip("torch")


def tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12,
                                                                      "atol": 1e-15}


# --- values against explicit Jacobians --------------------------------------


@pytest.mark.parametrize(("shape", "axis"), AXES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_vjp_and_jvp_against_explicit_jacobian(shape, axis, dtype, rng):
    x = rng.standard_normal(shape) * 3
    y = softjit.softmax(x, axis=axis).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    want = refg.softmax_vjp(y, g, axis)
    for fn in (softjit.softmax_vjp, softjit.softmax_jvp):
        got = fn(y, g, axis)
        assert got.dtype == dtype and got.shape == shape
        np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize(("shape", "axis"), AXES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_vjp_against_explicit_jacobian(shape, axis, dtype, rng):
    logp = softjit.log_softmax(rng.standard_normal(shape) * 3, axis=axis).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    got = softjit.log_softmax_vjp(logp, g, axis)
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_allclose(got, refg.log_softmax_vjp(logp, g, axis), **tol(dtype))


@pytest.mark.parametrize(("shape", "axis", "jac_shape"), [
    ((5,), -1, (5, 5)), ((3, 4), -1, (3, 4, 4)), ((3, 4), 0, (4, 3, 3)),
    ((2, 3, 4), 1, (2, 4, 3, 3)), ((2, 3, 4), (0, 2), (3, 8, 8)), ((2, 3), None, (6, 6)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jacobian_shape_and_values(shape, axis, jac_shape, dtype, rng):
    y = softjit.softmax(rng.standard_normal(shape), axis=axis).astype(dtype)
    jac = softjit.softmax_jacobian(y, axis)
    assert jac.shape == jac_shape and jac.dtype == dtype
    *_, y2 = ref._slices(y.astype(np.float64), axis)
    np.testing.assert_allclose(jac.reshape(-1, *jac_shape[-2:]), refg.jacobian_rows(y2),
                               **tol(dtype))
    np.testing.assert_array_equal(jac, np.swapaxes(jac, -1, -2))


# --- finite differences (float64) -----------------------------------------


@pytest.mark.parametrize(("shape", "axis"), [((6,), -1), ((3, 4), 0), ((2, 3, 4), 1),
                                             ((2, 3, 4), (1, 2))], ids=str)
def test_vjps_against_finite_differences(shape, axis, rng):
    x = rng.standard_normal(shape) * 2
    g = rng.standard_normal(shape)
    fd = refg.finite_difference(lambda v: np.sum(g * softjit.softmax(v, axis=axis)), x)
    np.testing.assert_allclose(softjit.softmax_vjp(softjit.softmax(x, axis=axis), g, axis), fd,
                               rtol=1e-6, atol=1e-9)
    fd = refg.finite_difference(lambda v: np.sum(g * softjit.log_softmax(v, axis=axis)), x)
    np.testing.assert_allclose(
        softjit.log_softmax_vjp(softjit.log_softmax(x, axis=axis), g, axis), fd,
        rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("shape", "axis"), [((6,), -1), ((3, 4), 0), ((2, 3, 4), 1)], ids=str)
def test_jvp_and_jacobian_against_finite_differences(shape, axis, rng):
    x = rng.standard_normal(shape) * 2
    v = rng.standard_normal(shape)
    y = softjit.softmax(x, axis=axis)
    fd = refg.finite_difference_jvp(lambda z: softjit.softmax(z, axis=axis), x, v)
    np.testing.assert_allclose(softjit.softmax_jvp(y, v, axis), fd, rtol=1e-6, atol=1e-9)
    # Column j of the Jacobian: the derivative of y along e_j (within each slice).
    jac = softjit.softmax_jacobian(y, axis)
    n = shape[axis]
    for j in range(n):
        e = np.zeros(shape)
        np.moveaxis(e, axis, -1)[..., j] = 1.0
        col = refg.finite_difference_jvp(lambda z: softjit.softmax(z, axis=axis), x, e)
        np.testing.assert_allclose(jac[..., :, j], np.moveaxis(col, axis, -1),
                                   rtol=1e-6, atol=1e-9)


# --- properties ------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                 elements=st.floats(-50, 50)),
    data=st.data(),
)
def test_vjp_sums_to_zero_and_jacobian_rows_sum_to_zero(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    g = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-10, 10)))
    y = softjit.softmax(x, axis=axis)
    vjp = softjit.softmax_vjp(y, g, axis)
    np.testing.assert_allclose(vjp.sum(axis=axis), 0.0, atol=1e-13)
    lvjp = softjit.log_softmax_vjp(softjit.log_softmax(x, axis=axis), g, axis)
    np.testing.assert_allclose(lvjp.sum(axis=axis), 0.0, atol=1e-12)
    jac = softjit.softmax_jacobian(y, axis)
    np.testing.assert_allclose(jac.sum(axis=-1), 0.0, atol=1e-15)


def test_vjp_of_constant_shift_is_zero(rng):
    y = softjit.softmax(rng.standard_normal((4, 9)))
    np.testing.assert_allclose(softjit.softmax_jvp(y, np.ones(9)), 0.0, atol=1e-16)
    np.testing.assert_allclose(softjit.log_softmax_vjp(np.log(y), np.zeros(9)), 0.0, atol=0)


# --- torch -----------------------------------------------------------------


TORCH_WARNINGS = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch internals


@TORCH_WARNINGS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [((4, 7), -1), ((3, 5, 2), 1), ((6,), 0)], ids=str)
def test_against_torch_autograd(shape, axis, dtype, rng):
    torch = import_torch()
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    for fwd, tfwd, vjp in [
        (softjit.softmax, torch.softmax, softjit.softmax_vjp),
        (softjit.log_softmax, torch.log_softmax, softjit.log_softmax_vjp),
    ]:
        xt = torch.tensor(x, requires_grad=True)
        tfwd(xt, dim=axis).backward(torch.tensor(g))
        got = vjp(fwd(x, axis=axis), g, axis)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, xt.grad.numpy(), **tol(dtype))
    xt = torch.tensor(x.astype(np.float64))
    v = rng.standard_normal(shape)
    _, jvp = torch.func.jvp(lambda z: torch.softmax(z, dim=axis), (xt,), (torch.tensor(v),))
    np.testing.assert_allclose(softjit.softmax_jvp(softjit.softmax(x.astype(np.float64),
                                                                   axis=axis), v, axis),
                               jvp.numpy(), rtol=1e-12, atol=1e-15)


@TORCH_WARNINGS
def test_jacobian_against_torch(rng):
    torch = import_torch()
    x = rng.standard_normal(6) * 2
    want = torch.autograd.functional.jacobian(lambda z: torch.softmax(z, 0), torch.tensor(x))
    np.testing.assert_allclose(softjit.softmax_jacobian(softjit.softmax(x)), want.numpy(),
                               rtol=1e-12, atol=1e-16)


# --- special values and masks ----------------------------------------------


def test_extreme_inputs():
    y = softjit.softmax([1000.0, 0.0, -inf, 5000.0])  # one-hot at 5000
    np.testing.assert_array_equal(y, [0, 0, 0, 1])
    np.testing.assert_array_equal(softjit.softmax_vjp(y, [1.0, 2.0, 3.0, 4.0]), [0, 0, 0, 0])
    np.testing.assert_array_equal(softjit.softmax_jacobian(y), np.zeros((4, 4)))
    logp = softjit.log_softmax([1000.0, 0.0, -inf])
    np.testing.assert_array_equal(softjit.log_softmax_vjp(logp, [1.0, 2.0, 3.0]),
                                  [1.0 - 6.0, 2.0, 3.0])
    # float32 extremes stay finite
    big = np.finfo(np.float32).max
    y32 = softjit.softmax(np.array([big, -big, 0.0], np.float32))
    assert np.isfinite(softjit.softmax_vjp(y32, np.ones(3, np.float32))).all()


def test_nan_propagates_per_slice():
    y = np.array([[0.2, 0.8], [0.5, 0.5]])
    g = np.array([[nan, 1.0], [1.0, 2.0]])
    got = softjit.softmax_vjp(y, g)
    assert np.isnan(got[0]).all() and np.isfinite(got[1]).all()
    got = softjit.log_softmax_vjp(np.log(y), g)
    assert np.isnan(got[0]).all() and np.isfinite(got[1]).all()
    assert np.isnan(softjit.softmax_vjp([nan, 0.5], [1.0, 1.0])).all()


def test_masks(rng):
    x = rng.standard_normal((3, 5))
    mask = np.array([[True, True, False, True, False], [False] * 5, [True] * 5])
    g = rng.standard_normal((3, 5))
    y = softjit.softmax(x, where=mask)
    got = softjit.softmax_vjp(y, g, where=mask)
    np.testing.assert_array_equal(got[~mask], 0.0)
    np.testing.assert_array_equal(got[1], 0.0)  # fully masked row
    np.testing.assert_allclose(got, softjit.softmax_vjp(y, g), rtol=1e-15)  # y = 0 there
    # log_softmax: masked outputs are constant, so the VJP is the derivative
    # of sum(g * log_softmax(x, where)) over the valid entries only.
    logp = softjit.log_softmax(x, where=mask)
    got = softjit.log_softmax_vjp(logp, g, where=mask)
    fd = refg.finite_difference(
        lambda v: np.sum((g * softjit.log_softmax(v, where=mask))[mask]), x)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(got[1], 0.0)
    y_all = softjit.softmax(x, where=np.zeros((3, 5), bool))
    np.testing.assert_array_equal(softjit.softmax_vjp(y_all, g, where=np.zeros(5, bool)), 0.0)


# --- dtypes, layouts, broadcasting, out= -----------------------------------


def test_dtypes(rng):
    y = softjit.softmax(rng.standard_normal((2, 4)))
    g = rng.standard_normal((2, 4))
    half = softjit.softmax_vjp(y.astype(np.float16), g.astype(np.float16))
    assert half.dtype == np.float16
    want = refg.softmax_vjp(y.astype(np.float16), g.astype(np.float16))
    np.testing.assert_allclose(half, want.astype(np.float16), rtol=2e-3, atol=1e-4)
    assert softjit.softmax_vjp(y.astype(np.float32), g).dtype == np.float64
    assert softjit.softmax_vjp([0.5, 0.5], [1, 2]).dtype == np.float64
    logp32 = np.full(3, -np.log(3.0), np.float32)
    assert softjit.log_softmax_vjp(logp32, np.ones(3, np.float32)).dtype == np.float32
    assert softjit.softmax_jacobian(np.array([0.5, 0.5], np.float16)).dtype == np.float16
    assert softjit.softmax_jacobian([1, 0]).dtype == np.float64
    # 0-d: a one-element slice
    assert softjit.softmax_vjp(1.0, 3.0) == 0.0 and np.ndim(softjit.softmax_vjp(1.0, 3.0)) == 0
    assert softjit.softmax_jacobian(1.0).shape == (1, 1)


def test_layouts_and_broadcasting(rng):
    base_y = softjit.softmax(rng.standard_normal((6, 8)), axis=0)
    base_g = rng.standard_normal((6, 8))
    want = refg.softmax_vjp(base_y, base_g, 0)
    for view_y, view_g, w in [
        (np.asfortranarray(base_y), base_g, want),
        (base_y.T.copy().T, base_g.T.copy().T, want),
        (base_y.astype(">f8"), base_g, want),
        (base_y[:, ::2], base_g[:, ::2], want[:, ::2]),
        (base_y[:, ::-1], base_g[:, ::-1], want[:, ::-1]),
    ]:
        np.testing.assert_allclose(softjit.softmax_vjp(view_y, view_g, axis=0), w, rtol=1e-12,
                                   atol=1e-15)
    np.testing.assert_allclose(softjit.softmax_vjp(base_y.T, base_g.T), want.T, rtol=1e-12,
                               atol=1e-15)
    # g broadcast along the batch axis
    y = softjit.softmax(rng.standard_normal((4, 5)))
    g = rng.standard_normal(5)
    np.testing.assert_allclose(softjit.softmax_vjp(y, g), refg.softmax_vjp(y, g), rtol=1e-12,
                               atol=1e-15)


def test_out_and_in_place(rng):
    y = softjit.softmax(rng.standard_normal((3, 6)), axis=0)
    g = rng.standard_normal((3, 6))
    want = refg.softmax_vjp(y, g, 0)
    out = np.empty_like(y)
    assert softjit.softmax_vjp(y, g, axis=0, out=out) is out
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-15)
    for which in ("y", "g"):
        yy, gg = y.copy(), g.copy()
        target = yy if which == "y" else gg
        softjit.softmax_vjp(yy, gg, axis=0, out=target)
        np.testing.assert_allclose(target, want, rtol=1e-12, atol=1e-15)
    # in place in a non-contiguous (transposed) array
    gt = g.T.copy().T
    softjit.softmax_vjp(y, gt, axis=0, out=gt)
    np.testing.assert_allclose(gt, want, rtol=1e-12, atol=1e-15)
    # partially overlapping out: shifted view of one buffer
    buf = np.concatenate([g.ravel(), np.zeros(1)])
    gv = buf[:-1].reshape(3, 6)
    softjit.softmax_vjp(softjit.softmax(gv), gv, out=buf[1:].reshape(3, 6))
    np.testing.assert_allclose(buf[1:].reshape(3, 6),
                               refg.softmax_vjp(softjit.softmax(g), g), rtol=1e-12, atol=1e-15)
    # float16 out
    out16 = np.empty((3, 6), np.float16)
    softjit.log_softmax_vjp(np.log(y).astype(np.float16), g.astype(np.float16), axis=0,
                            out=out16)
    assert np.isfinite(out16).all()
    with pytest.raises(TypeError, match="out must have dtype float64"):
        softjit.softmax_vjp(y, g, out=np.empty((3, 6), np.float32))
    with pytest.raises(ValueError, match=r"out must have shape \(3, 6\)"):
        softjit.softmax_vjp(y, g, out=np.empty((6, 3)))
    with pytest.raises(TypeError, match=r"out must be a numpy\.ndarray"):
        softjit.softmax_vjp(y, g, out=[0.0] * 18)


def test_parallel_path_matches_serial(rng):
    y = softjit.softmax(rng.standard_normal((300, 256)).astype(np.float32))
    g = rng.standard_normal((300, 256)).astype(np.float32)
    big = softjit.softmax_vjp(y, g)
    small = np.concatenate([softjit.softmax_vjp(y[i:i + 50], g[i:i + 50])
                            for i in range(0, 300, 50)])
    np.testing.assert_array_equal(big, small)
    big = softjit.log_softmax_vjp(np.log(y), g)
    np.testing.assert_array_equal(big[:10], softjit.log_softmax_vjp(np.log(y[:10]), g[:10]))
    jac = softjit.softmax_jacobian(y[:4])
    y64 = softjit.softmax(rng.standard_normal((4, 64)).astype(np.float32))
    np.testing.assert_array_equal(softjit.softmax_jacobian(y64)[1],
                                  softjit.softmax_jacobian(y64[1]))
    assert jac.shape == (4, 256, 256)


def test_empty():
    assert softjit.softmax_vjp(np.empty((0, 3)), np.empty((0, 3))).shape == (0, 3)
    assert softjit.softmax_vjp(np.empty((2, 0)), np.empty((2, 0))).shape == (2, 0)
    assert softjit.softmax_jacobian(np.empty((2, 0))).shape == (2, 0, 0)


# --- bad input -------------------------------------------------------------


@pytest.mark.parametrize("fn", [softjit.softmax_vjp, softjit.softmax_jvp,
                                softjit.log_softmax_vjp])
def test_bad_arguments(fn):
    y = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="do not broadcast"):
        fn(y, np.ones((3, 2)))
    with pytest.raises(TypeError, match="does not support complex"):
        fn(y.astype(complex), y)
    with pytest.raises(TypeError, match="must be a numeric array"):
        fn(y, np.array([["a"] * 3] * 2))
    with pytest.raises(np.exceptions.AxisError, match="axis=2 is out of range"):
        fn(y, y, axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        fn(y, y, axis=1.0)
    with pytest.raises(TypeError, match="where must be a boolean"):
        fn(y, y, where=np.ones(3))
    with pytest.raises(ValueError, match="where with shape"):
        fn(y, y, where=np.ones(4, bool))


def test_jacobian_bad_arguments():
    with pytest.raises(TypeError, match="does not support complex"):
        softjit.softmax_jacobian(np.ones(2, complex))
    with pytest.raises(np.exceptions.AxisError):
        softjit.softmax_jacobian(np.ones((2, 2)), axis=3)


# --- gufuncs ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gufuncs(dtype, rng):
    x = rng.standard_normal((2, 3, 5))
    y = softjit.softmax(x).astype(dtype)
    logp = softjit.log_softmax(x).astype(dtype)
    g = rng.standard_normal((2, 3, 5)).astype(dtype)
    assert gufuncs.softmax_vjp.signature == "(n),(n)->(n)"
    assert gufuncs.softmax_jacobian.signature == "(n)->(n,n)"
    for guf, fn, a in [(gufuncs.softmax_vjp, softjit.softmax_vjp, y),
                       (gufuncs.softmax_jvp, softjit.softmax_jvp, y),
                       (gufuncs.log_softmax_vjp, softjit.log_softmax_vjp, logp)]:
        got = guf(a, g)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, fn(a, g))
        np.testing.assert_allclose(guf(a, g[0, 0]), fn(a, g[0, 0]), **tol(dtype))  # broadcast
    np.testing.assert_array_equal(gufuncs.softmax_jacobian(y), softjit.softmax_jacobian(y))
    # numpy's axes= for the softmax axis 1 of a (2, 5, 3) array
    yt = np.ascontiguousarray(np.swapaxes(y, 1, 2))
    gt = np.ascontiguousarray(np.swapaxes(g, 1, 2))
    got = gufuncs.softmax_vjp(yt, gt, axes=[1, 1, 1])
    np.testing.assert_allclose(got, softjit.softmax_vjp(yt, gt, axis=1), **tol(dtype))
