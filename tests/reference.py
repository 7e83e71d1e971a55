"""Plain-numpy float64 references for the tests.

Deliberately simple: one reduced slice at a time, straight from the
definitions and the project's special-value table, with no numba.
"""

from __future__ import annotations

import math

import numpy as np


def _slices(x: np.ndarray, axis):
    """Move the reduced axes last and return (moved shape, (rows, n) copy)."""
    axes = tuple(range(x.ndim)) if axis is None else axis
    axes = axes if isinstance(axes, tuple) else (axes,)
    axes = tuple(sorted(a % x.ndim for a in axes))
    keep = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, keep + list(axes))
    n = math.prod(x.shape[a] for a in axes)
    rows = math.prod(x.shape[a] for a in keep)
    return keep, axes, moved.shape, np.array(moved).reshape(rows, n)


def _unmove(res2: np.ndarray, keep, axes, moved_shape) -> np.ndarray:
    order = keep + list(axes)
    return np.transpose(res2.reshape(moved_shape), np.argsort(order))


def _row(v: np.ndarray, valid: np.ndarray, t: float, log: bool) -> np.ndarray:
    zero, one = (-np.inf, 0.0) if log else (0.0, 1.0)
    out = np.full(v.shape, zero)
    vv = v[valid]
    if vv.size == 0:
        return out
    if np.isnan(vv).any() or (vv == -np.inf).all():
        out[valid] = np.nan
        return out
    if (vv == np.inf).any():
        if (vv == np.inf).sum() == 1:
            out[valid & (v == np.inf)] = one
        else:
            out[valid] = np.nan
        return out
    m = vv.max()
    with np.errstate(over="ignore"):
        z = (vv - m) / t
    e = np.exp(z)
    if log:
        others = e.copy()
        others[np.argmax(vv)] = 0.0
        out[valid] = z - np.log1p(math.fsum(others))
    else:
        out[valid] = e / math.fsum(e)
    return out


def softmax(x, axis=-1, temperature=1.0, where=None, log=False) -> np.ndarray:
    """float64 reference softmax (or log_softmax with ``log=True``)."""
    x = np.asarray(x, dtype=np.float64)
    scalar = x.ndim == 0
    if scalar:
        x = x.reshape(1)
        axis = None
    mask = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    keep, axes, moved_shape, x2 = _slices(x, axis)
    _, _, _, m2 = _slices(mask, axis)
    res2 = np.empty_like(x2)
    for r in range(x2.shape[0]):
        res2[r] = _row(x2[r], m2[r], temperature, log)
    res = _unmove(res2, keep, axes, moved_shape)
    return res.reshape(()) if scalar else res


def log_softmax(x, axis=-1, temperature=1.0, where=None) -> np.ndarray:
    return softmax(x, axis, temperature, where, log=True)


def logsumexp(x, axis=-1, where=None) -> np.ndarray:
    """float64 reference logsumexp (no weights), reduced shape."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        x = x.reshape(1)
        axis = None
    mask = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    keep, _, _, x2 = _slices(x, axis)
    _, _, _, m2 = _slices(mask, axis)
    res = np.empty(x2.shape[0])
    for r in range(x2.shape[0]):
        vv = x2[r][m2[r]]
        if np.isnan(vv).any():
            res[r] = np.nan
        elif vv.size == 0 or (vv == -np.inf).all():
            res[r] = -np.inf
        elif (vv == np.inf).any():
            res[r] = np.inf
        else:
            m = vv.max()
            res[r] = m + math.log(math.fsum(np.exp(vv - m)))
    return res.reshape([x.shape[a] for a in keep])
