"""Complex input: a plain numpy implementation with scipy.special's semantics.

Complex softmax is rare and never performance critical, so it is written
with numpy operations rather than numba kernels.  Only the real parts
decide the shift that keeps ``exp`` in range; the result's imaginary parts
follow from ``exp`` and the principal branch of ``log`` (imaginary part in
``(-pi, pi]``), as in scipy.
"""

from __future__ import annotations

import numpy as np

from .kernels.kinds import Kind


def _valid(shape: tuple[int, ...], mask: np.ndarray | None, b: np.ndarray | None) -> np.ndarray:
    valid = np.ones(shape, dtype=bool) if mask is None else np.array(mask, dtype=bool)
    if b is not None:
        valid &= b != 0
    return valid


def _shift(z: np.ndarray, valid: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Largest valid real part per slice (0 where it is not finite)."""
    re = np.where(valid, z.real, -np.inf)
    shift = np.max(re, axis=axes, keepdims=True, initial=-np.inf)
    return np.where(np.isfinite(shift), shift, 0.0)


def softmax_like(
    kind: Kind,
    x: np.ndarray,
    axes: tuple[int, ...],
    temperature: float,
    mask: np.ndarray | None,
    dtype: np.dtype,
) -> np.ndarray:
    """softmax or log_softmax (``kind``) of complex ``x``, in ``dtype``."""
    z = np.asarray(x, dtype=dtype) / dtype.type(temperature)
    valid = _valid(z.shape, mask, None)
    with np.errstate(all="ignore"):
        zs = z - _shift(z, valid, axes)
        e = np.where(valid, np.exp(zs), 0)
        s = np.sum(e, axis=axes, keepdims=True)
        if kind is Kind.SOFTMAX:
            res = np.where(valid, e / s, 0)
        else:
            res = np.where(valid, zs - np.log(s), -np.inf)
    return res.astype(dtype, copy=False)


def logsumexp(
    x: np.ndarray,
    b: np.ndarray | None,
    axes: tuple[int, ...],
    mask: np.ndarray | None,
    return_sign: bool,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``log(sum(b * exp(x)))`` over ``axes`` (kept as size-1 dimensions).

    With ``return_sign`` the value is real (``log|sum|``) and the sign is
    the complex phase ``sum / |sum|``.
    """
    z = np.asarray(x, dtype=dtype)
    valid = _valid(z.shape, mask, b)
    with np.errstate(all="ignore"):
        shift = _shift(z, valid, axes)
        terms = np.exp(z - shift)
        if b is not None:
            terms = terms * b
        s = np.sum(np.where(valid, terms, 0), axis=axes, keepdims=True)
        if return_sign:
            mag = np.abs(s)
            sign = np.where(mag == 0, 0, s / np.where(mag == 0, 1, mag)).astype(dtype)
            return np.log(mag) + shift, sign
        return (np.log(s) + shift).astype(dtype, copy=False), None
