"""Plain numpy implementations of softjit's functions: the reference of
``python -m softjit check`` (called on float64 arrays) and the ``numpy``
baseline of the benchmarks (called on the benchmarked dtype).

They follow the textbook formulas with the maximum subtracted, vectorized
over whole arrays, with no numba and no special-value handling: finite
input only.  Losses take the class axis as an int; the ``..._with_grad``
forms return ``(loss, gradient with respect to the first argument)``.

Examples
--------
>>> import numpy as np
>>> from softjit.cli import reference as ref
>>> ref.softmax(np.array([1000.0, 2000.0, 3000.0]))
array([0., 0., 1.])
>>> ref.logsumexp(np.array([[0.0, 0.0], [1.0, 1.0]]))
array([0.69314718, 1.69314718])
"""

from __future__ import annotations

from typing import Any

import numpy as np

Axis = int | tuple[int, ...] | None


def softmax(x: np.ndarray, axis: Axis = -1) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: Axis = -1) -> np.ndarray:
    """``z - log(sum(exp(z)))`` with ``z = x - max`` along ``axis``."""
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def logsumexp(x: np.ndarray, axis: Axis = -1) -> np.ndarray:
    """``max + log(sum(exp(x - max)))``, with ``axis`` reduced away."""
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)), axis)


def softmax_vjp(y: np.ndarray, g: np.ndarray, axis: int = -1) -> np.ndarray:
    """``J^T g = y * (g - sum(g * y))`` for ``y = softmax(x)``; the
    Jacobian is symmetric, so this is also the JVP ``J v``."""
    return y * (g - np.sum(g * y, axis=axis, keepdims=True))


softmax_jvp = softmax_vjp


def log_softmax_vjp(logp: np.ndarray, g: np.ndarray, axis: int = -1) -> np.ndarray:
    """``g - exp(logp) * sum(g)`` for ``logp = log_softmax(x)``."""
    return g - np.exp(logp) * np.sum(g, axis=axis, keepdims=True)


def softmax_jacobian(y: np.ndarray, axis: int = -1) -> np.ndarray:
    """``diag(y) - y y^T`` for every slice: shape ``(..., n, n)``."""
    y = np.moveaxis(y, axis, -1)
    col = y[..., :, None]
    return col * np.eye(y.shape[-1], dtype=y.dtype) - col * y[..., None, :]


def _reduce(loss: np.ndarray, grad: np.ndarray, reduction: str) -> tuple[Any, np.ndarray]:
    """Apply an unweighted reduction to per-sample losses and their gradient."""
    if reduction == "none":
        return loss, grad
    if reduction == "sum":
        return loss.sum(), grad
    return loss.mean(), grad / max(loss.size, 1)


def cross_entropy_with_grad(
    logits: np.ndarray, target: np.ndarray, axis: int = -1, reduction: str = "mean"
) -> tuple[Any, np.ndarray]:
    """Cross-entropy of ``softmax(logits)`` with integer class indices or
    class probabilities (no weights, no smoothing), and its gradient."""
    x = np.moveaxis(logits, axis, -1)
    z = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(z)
    s = np.sum(e, axis=-1, keepdims=True)
    grad = e / s
    if np.issubdtype(np.asarray(target).dtype, np.integer):
        idx = np.expand_dims(target, -1)
        loss = (np.log(s) - np.take_along_axis(z, idx, -1))[..., 0]
        np.put_along_axis(grad, idx, np.take_along_axis(grad, idx, -1) - 1, -1)
    else:
        t = np.moveaxis(target, axis, -1)
        loss = np.sum(t * (np.log(s) - z), axis=-1)
        grad = grad * np.sum(t, axis=-1, keepdims=True) - t
    return _reduce(loss, np.moveaxis(grad, -1, axis), reduction)


def margin_ranking_loss_with_grad(
    scores: np.ndarray,
    axis: int = -1,
    *,
    margin: float = 1.0,
    positive: int = 0,
    reduction: str = "mean",
) -> tuple[Any, np.ndarray]:
    """``sum_{j != p} max(0, margin - s_p + s_j)`` per example, and its gradient."""
    s = np.moveaxis(scores, axis, -1)
    pos = positive % s.shape[-1]
    hinge = margin - s[..., pos : pos + 1] + s
    active = hinge > 0
    active[..., pos] = False
    loss = np.sum(np.where(active, hinge, 0), axis=-1)
    grad = active.astype(s.dtype)
    grad[..., pos] = -np.sum(active, axis=-1)
    return _reduce(loss, np.moveaxis(grad, -1, axis), reduction)


def multi_margin_loss_with_grad(
    logits: np.ndarray,
    target: np.ndarray,
    axis: int = -1,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight: np.ndarray | None = None,
    reduction: str = "mean",
) -> tuple[Any, np.ndarray]:
    """torch's ``w[y] / C * sum_{i != y} max(0, margin - x_y + x_i)^p`` and
    its gradient."""
    x = np.moveaxis(logits, axis, -1)
    idx = np.expand_dims(target, -1)
    hinge = margin - np.take_along_axis(x, idx, -1) + x
    np.put_along_axis(hinge, idx, 0, -1)  # the target class takes no part
    h = np.maximum(hinge, 0)
    w = 1.0 if weight is None else np.asarray(weight)[idx]
    scale = w / x.shape[-1]
    loss = np.sum(scale * h**p, axis=-1)
    grad = scale * p * h ** (p - 1) * (hinge > 0)
    np.put_along_axis(grad, idx, -np.sum(grad, axis=-1, keepdims=True), -1)
    return _reduce(loss, np.moveaxis(grad, -1, axis), reduction)
