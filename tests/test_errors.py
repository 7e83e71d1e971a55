"""Bad input gives a TypeError/ValueError naming the argument."""

import datetime

import numpy as np
import pytest

import softjit
from softjit import gufuncs

X = np.arange(6.0).reshape(2, 3)
FUNCS = [softjit.softmax, softjit.log_softmax, softjit.logsumexp]


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"x": np.array(["a", "b"])}, TypeError, "x must be a numeric array"),
        ({"x": np.array([object(), 1.0], dtype=object)}, TypeError, "x must be a numeric"),
        ({"x": np.array([datetime.datetime(2020, 1, 1)], dtype="M8[s]")}, TypeError, "dtype"),
        ({"x": np.array([1, 2], dtype="m8[s]")}, TypeError, "x must be a numeric"),
        ({"x": [[1.0, 2.0], [3.0]]}, TypeError, "x must be array-like"),
        ({"x": np.ones(3, dtype=np.longdouble)}, TypeError, "dtype=np.float64"),
        ({"axis": 2}, ValueError, "axis=2 is out of range"),
        ({"axis": -3}, ValueError, "axis=-3 is out of range"),
        ({"axis": (0, 0)}, ValueError, "repeats an axis"),
        ({"axis": (1, -1)}, ValueError, "repeats an axis"),
        ({"axis": 1.0}, TypeError, "axis must be an int"),
        ({"axis": True}, TypeError, "axis must be an int"),
        ({"axis": [0]}, TypeError, "axis must be an int"),
        ({"where": np.ones(4, bool)}, ValueError, "where with shape"),
        ({"where": np.ones(3)}, TypeError, "where must be a boolean"),
        ({"dtype": np.int32}, TypeError, "dtype must be float16"),
        ({"dtype": "not a dtype"}, TypeError, "dtype must be"),
    ],
)
def test_bad_arguments(fn, kwargs, exc, match):
    kwargs = {"x": X, **kwargs}
    x = kwargs.pop("x")
    with pytest.raises(exc, match=match):
        fn(x, **kwargs)


@pytest.mark.parametrize("fn", [softjit.softmax, softjit.log_softmax])
@pytest.mark.parametrize(
    ("temperature", "exc"),
    [(0.0, ValueError), (-1.0, ValueError), (np.inf, ValueError), (np.nan, ValueError),
     ("2", TypeError), (np.ones(2), TypeError), (1j, TypeError), (True, TypeError)],
)
def test_bad_temperature(fn, temperature, exc):
    with pytest.raises(exc, match="temperature"):
        fn(X, temperature=temperature)


@pytest.mark.parametrize("fn", [softjit.softmax, softjit.log_softmax])
def test_bad_out(fn):
    with pytest.raises(TypeError, match=r"out must be a numpy\.ndarray"):
        fn(X, out=[0.0] * 6)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3\)"):
        fn(X, out=np.empty((3, 2)))
    with pytest.raises(TypeError, match="out must have dtype float64"):
        fn(X, out=np.empty((2, 3), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float64"):
        fn(X, out=np.empty((2, 3), ">f8"))
    ro = np.empty((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fn(X, out=ro)


def test_logsumexp_bad_arguments():
    with pytest.raises(ValueError, match="b with shape"):
        softjit.logsumexp(X, b=np.ones(4))
    with pytest.raises(TypeError, match="b must be a numeric"):
        softjit.logsumexp(X, b=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"out must have shape \(2,\)"):
        softjit.logsumexp(X, out=np.empty(3))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 1\)"):
        softjit.logsumexp(X, keepdims=True, out=np.empty(2))
    with pytest.raises(TypeError, match="would discard the imaginary part"):
        softjit.logsumexp(X + 1j, dtype=np.float64)


def test_zero_d_axis():
    with pytest.raises(ValueError, match="out of range"):
        softjit.softmax(1.0, axis=1)


def test_errors_leave_inputs_untouched():
    x = X.copy()
    with pytest.raises(ValueError):
        softjit.softmax(x, out=x[:, :2])
    np.testing.assert_array_equal(x, X)


def test_gufunc_bad_input_is_a_clear_numpy_error():
    with pytest.raises(TypeError, match="ufunc"):
        gufuncs.softmax(np.array(["a", "b"]))
    with pytest.raises(ValueError):
        gufuncs.softmax(X, out=np.empty((3, 3)))
