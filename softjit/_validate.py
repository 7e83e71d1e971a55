"""Argument normalisation: dtypes, axes, ``out=``, ``where=``, temperature.

Every public function passes its arguments through these helpers, so bad
input fails here with a ``TypeError``/``ValueError`` that names the
argument, before any numba code sees it.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_COMPLEX_DTYPES = (np.dtype(np.complex64), np.dtype(np.complex128))


def as_array(x: Any, name: str = "x") -> np.ndarray:
    """``np.asarray(x)`` with a clear error for non-numeric input."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like of numbers: {exc}") from None
    if arr.dtype.kind not in "biufc":
        raise TypeError(
            f"{name} must be a numeric array (bool, integer, float or complex); "
            f"got dtype {arr.dtype}"
        )
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        raise TypeError(
            f"{name} has dtype {arr.dtype}, which softjit does not compute in; "
            "pass dtype=np.float64 (or convert) to compute in float64"
        )
    if arr.dtype.kind == "c" and arr.dtype.itemsize > 16:
        raise TypeError(
            f"{name} has dtype {arr.dtype}, which softjit does not compute in; "
            "pass dtype=np.complex128 (or convert) to compute in complex128"
        )
    return arr


def result_dtype(in_dtype: np.dtype, dtype: Any = None, name: str = "dtype") -> np.dtype:
    """The dtype of the result: ``dtype`` if given, else the input's float
    dtype (bool and integers give float64)."""
    if dtype is not None:
        try:
            want = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"{name} must be a numpy float dtype; got {dtype!r}") from None
        if want not in _FLOAT_DTYPES + _COMPLEX_DTYPES:
            raise TypeError(
                f"{name} must be float16, float32, float64, complex64 or complex128; "
                f"got {want}"
            )
        if in_dtype.kind == "c" and want.kind != "c":
            raise TypeError(
                f"{name}={want} would discard the imaginary part of complex input; "
                "pass a complex dtype or take the real part first"
            )
        return want
    if in_dtype.kind in "biu":
        return np.dtype(np.float64)
    return in_dtype.newbyteorder("=")


def kernel_dtype(res_dtype: np.dtype) -> np.dtype:
    """The dtype the row kernels run on for a result of ``res_dtype``.

    float16 is computed in float64 so that the float16 result is correctly
    rounded (the kernels compute in float64 internally in any case).
    """
    if res_dtype == np.float16:
        return np.dtype(np.float64)
    return res_dtype


def normalize_axis(axis: Any, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """Return the reduced axes as a sorted tuple of non-negative ints.

    ``None`` means every axis.  Bools, floats and repeated axes are refused.
    """
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    axes = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{name} must be an int, a tuple of ints or None; got {axis!r}")
        try:
            ax = operator.index(item)
        except TypeError:
            raise TypeError(
                f"{name} must be an int, a tuple of ints or None; got {axis!r}"
            ) from None
        if not -ndim <= ax < ndim:
            raise np.exceptions.AxisError(
                f"{name}={ax} is out of range for an array with {ndim} dimension(s)"
            )
        axes.append(ax % ndim)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{name}={axis!r} repeats an axis")
    return tuple(sorted(axes))


def check_temperature(temperature: Any) -> float:
    """Return ``temperature`` as a float; it must be a finite real > 0."""
    if isinstance(temperature, np.ndarray) and temperature.ndim == 0:
        temperature = temperature[()]
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a real number; got {temperature!r}")
    t = float(temperature)
    if not (math.isfinite(t) and t > 0.0):
        raise ValueError(f"temperature must be finite and > 0; got {temperature!r}")
    return t


def broadcast_to_shape(value: Any, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    """Broadcast ``value`` to ``shape`` with an error naming the argument."""
    try:
        return np.broadcast_to(value, shape)
    except ValueError:
        raise ValueError(
            f"{name} with shape {np.shape(value)} does not broadcast to {what} {shape}"
        ) from None


def as_mask(where: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``where`` as a boolean array of ``shape`` (a broadcast view)."""
    mask = np.asarray(where)
    if mask.dtype != np.bool_:
        raise TypeError(f"where must be a boolean array; got dtype {mask.dtype}")
    return broadcast_to_shape(mask, shape, "where", "the shape of x")


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, name: str = "out") -> np.ndarray:
    """Check that ``out`` can receive a result of ``shape`` and ``dtype``."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}; got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def real_array(x: Any, name: str, fn: str) -> np.ndarray:
    """``x`` as a real (bool, integer or float) array; complex is refused."""
    arr = as_array(x, name)
    if arr.dtype.kind == "c":
        raise TypeError(f"{fn} does not support complex input; {name} has dtype {arr.dtype}")
    return arr
