"""Plain-numpy float64 references for the derivatives and losses.

Deliberately simple: explicit Jacobians, one sample at a time, the loss
formulas written as torch documents and implements them, and central finite
differences.  No numba.
"""

from __future__ import annotations

import math

import numpy as np
import reference as ref


def jacobian_rows(y2: np.ndarray) -> np.ndarray:
    """Explicit softmax Jacobians ``diag(y) - y y^T`` of each row of ``y2``."""
    return np.stack([np.diag(r) - np.outer(r, r) for r in y2]) if len(y2) else np.empty(
        (0, y2.shape[1], y2.shape[1])
    )


def softmax_vjp(y, g, axis=-1) -> np.ndarray:
    """``J^T g`` with the Jacobian formed explicitly, slice by slice."""
    y, g = np.broadcast_arrays(np.asarray(y, np.float64), np.asarray(g, np.float64))
    keep, axes, moved_shape, y2 = ref._slices(y, axis)
    _, _, _, g2 = ref._slices(g, axis)
    res2 = np.einsum("rij,ri->rj", jacobian_rows(y2), g2)
    return ref._unmove(res2, keep, axes, moved_shape)


def log_softmax_vjp(logp, g, axis=-1) -> np.ndarray:
    """``J^T g`` for log_softmax, with ``J = I - 1 p^T`` formed explicitly."""
    logp, g = np.broadcast_arrays(np.asarray(logp, np.float64), np.asarray(g, np.float64))
    keep, axes, moved_shape, l2 = ref._slices(logp, axis)
    _, _, _, g2 = ref._slices(g, axis)
    n = l2.shape[1]
    res2 = np.empty_like(l2)
    for r in range(l2.shape[0]):
        jac = np.eye(n) - np.outer(np.ones(n), np.exp(l2[r]))
        res2[r] = jac.T @ g2[r]
    return ref._unmove(res2, keep, axes, moved_shape)


def _move_class_axis(x: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])


def cross_entropy(logits, target, axis=-1, label_smoothing=0.0, ignore_index=None,
                  weight=None, reduction="mean", where=None):
    """torch.nn.functional.cross_entropy, written out per sample in float64.

    Index targets: ``(1-eps) * w[y] * nll + (eps/C) * sum_c w_c * (-logp_c)``,
    mean divided by the summed ``w[y]`` of the non-ignored samples.
    Probability targets: ``-sum_c w_c * ((1-eps) t_c + eps/C) logp_c``, mean
    divided by the number of samples.  ``where``: absent classes (softjit's
    extension): C counts the valid classes, samples without one are skipped.
    """
    x = np.asarray(logits, np.float64)
    t = np.asarray(target)
    c_all = x.shape[axis]
    x2 = _move_class_axis(x, axis)
    mask = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    m2 = _move_class_axis(mask, axis)
    w = np.ones(c_all) if weight is None else np.asarray(weight, np.float64)
    prob = t.shape == x.shape
    t2 = _move_class_axis(t.astype(np.float64), axis) if prob else t.reshape(-1)
    losses = np.zeros(x2.shape[0])
    denom = 0.0
    for r in range(x2.shape[0]):
        valid = m2[r]
        if not valid.any() or (not prob and ignore_index is not None
                                and t2[r] == ignore_index):
            continue
        c = valid.sum()
        logp = np.full(c_all, -np.inf)
        logp[valid] = ref.log_softmax(x2[r][valid])
        if prob:
            q = w * ((1 - label_smoothing) * t2[r] + label_smoothing / c * valid)
            denom += 1.0
        else:
            q = w * (label_smoothing / c) * valid
            q[t2[r]] += (1 - label_smoothing) * w[t2[r]]
            denom += w[t2[r]]
        terms = [-qc * lc for qc, lc in zip(q, logp, strict=True) if qc != 0]
        losses[r] = math.fsum(terms) if not np.isnan(terms).any() else np.nan
    shape = x.shape[:axis % x.ndim] + x.shape[axis % x.ndim + 1:]
    if reduction == "none":
        return losses.reshape(shape)
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / denom if denom else np.nan


def margin_ranking(scores, margin=1.0, positive=0, axis=-1, reduction="sum"):
    """``sum_{j != p} max(0, margin - s_p + s_j)`` per example."""
    s2 = _move_class_axis(np.asarray(scores, np.float64), axis)
    losses = np.array([
        sum(max(0.0, margin - row[positive] + row[j])
            for j in range(len(row)) if j != positive % len(row))
        if not np.isnan(row).any() else np.nan
        for row in s2
    ])
    shape = np.delete(np.shape(scores), axis % np.ndim(scores))
    if reduction == "none":
        return losses.reshape(shape)
    return losses.sum() if reduction == "sum" else losses.mean()


def multi_margin(logits, target, p=1, margin=1.0, weight=None, reduction="mean", axis=-1):
    """torch's multi_margin_loss: ``w[y] * sum_{i != y} max(0, m - x_y + x_i)^p / C``."""
    x2 = _move_class_axis(np.asarray(logits, np.float64), axis)
    y = np.asarray(target).reshape(-1)
    c = x2.shape[1]
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    losses = np.array([
        w[y[r]] * sum(max(0.0, margin - x2[r, y[r]] + x2[r, i]) ** p
                      for i in range(c) if i != y[r]) / c
        if not np.isnan(x2[r]).any() else np.nan
        for r in range(x2.shape[0])
    ])
    if reduction == "none":
        return losses.reshape(np.shape(target))
    return losses.sum() if reduction == "sum" else losses.mean()


def finite_difference(f, x, h=1e-6) -> np.ndarray:
    """Central differences of the scalar function ``f`` at every entry of ``x``."""
    x = np.array(x, np.float64)
    grad = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        grad[idx] = (float(f(xp)) - float(f(xm))) / (2 * h)
    return grad


def finite_difference_jvp(f, x, v, h=1e-6) -> np.ndarray:
    """Central difference of the array function ``f`` along direction ``v``."""
    x = np.asarray(x, np.float64)
    return (f(x + h * v) - f(x - h * v)) / (2 * h)
