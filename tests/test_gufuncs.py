"""The gufunc layer: broadcasting, numpy's axis=/out=, dtypes, specials."""

import numpy as np
import pytest
import reference as ref

import softjit
from softjit import gufuncs
from softjit.kernels import _cache


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 6)])
def test_broadcast_over_leading_dims(shape, dtype, rng):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    for g, r in [(gufuncs.softmax, ref.softmax), (gufuncs.log_softmax, ref.log_softmax)]:
        got = g(x)
        assert got.dtype == dtype and got.shape == shape
        np.testing.assert_allclose(got, r(x), rtol=rtol, atol=1e-30)
    got = gufuncs.logsumexp(x)
    assert got.dtype == dtype and got.shape == shape[:-1]
    np.testing.assert_allclose(got, ref.logsumexp(x), rtol=rtol)


def test_signatures():
    assert gufuncs.softmax.signature == "(n)->(n)"
    assert gufuncs.log_softmax.signature == "(n)->(n)"
    assert gufuncs.logsumexp.signature == "(n)->()"


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_axis_and_out(axis, rng):
    x = rng.standard_normal((4, 5, 6))
    np.testing.assert_allclose(gufuncs.softmax(x, axis=axis), ref.softmax(x, axis), rtol=1e-13)
    np.testing.assert_allclose(gufuncs.logsumexp(x, axis=axis), ref.logsumexp(x, axis),
                               rtol=1e-13)
    out = np.empty_like(x)
    res = gufuncs.log_softmax(x, axis=axis, out=out)
    assert res is out
    np.testing.assert_allclose(out, ref.log_softmax(x, axis), rtol=1e-13)
    kept = gufuncs.logsumexp(x, axis=axis, keepdims=True)
    np.testing.assert_allclose(np.squeeze(kept, axis), ref.logsumexp(x, axis), rtol=1e-13)


def test_agrees_with_public_functions_and_layouts(rng):
    x = rng.standard_normal((6, 9))
    for view in (x, x.T, x[::-1, ::2], np.asfortranarray(x), x.astype(">f8")):
        np.testing.assert_array_equal(gufuncs.softmax(view), softjit.softmax(view))
        np.testing.assert_array_equal(gufuncs.logsumexp(view), softjit.logsumexp(view))


def test_integer_input_and_in_place(rng):
    np.testing.assert_allclose(gufuncs.softmax(np.arange(4)), ref.softmax(np.arange(4)),
                               rtol=1e-14)
    x = rng.standard_normal((3, 4))
    want = ref.softmax(x)
    gufuncs.softmax(x, out=x)
    np.testing.assert_allclose(x, want, rtol=1e-13)


def test_special_values():
    x = np.array([[1.0, np.nan, 0.0], [np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf],
                  [1000.0, 2000.0, 3000.0]])
    np.testing.assert_array_equal(gufuncs.softmax(x), ref.softmax(x))
    np.testing.assert_array_equal(gufuncs.log_softmax(x), ref.log_softmax(x))
    np.testing.assert_array_equal(gufuncs.logsumexp(x), ref.logsumexp(x))


def test_empty_core_dimension():
    np.testing.assert_array_equal(gufuncs.logsumexp(np.empty((2, 0))), [-np.inf, -np.inf])
    assert gufuncs.softmax(np.empty((0, 3))).shape == (0, 3)


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        gufuncs.nonexistent  # noqa: B018


# --- the build lock ----------------------------------------------------------


@pytest.mark.skipif(_cache.fcntl is None, reason="no flock on this platform")
def test_file_lock_goes_on_where_locks_are_unsupported(tmp_path, monkeypatch):
    """A file system without flock support (some network mounts) must not
    stop a build: the lock is skipped."""
    def no_locks(fd, operation):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(_cache.fcntl, "flock", no_locks)
    entered = False
    with _cache.file_lock(str(tmp_path / "build.lock")):
        entered = True
    assert entered
    # an unusable path: no lock either, no error
    with _cache.file_lock(str(tmp_path / "missing-dir" / "build.lock")):
        pass
