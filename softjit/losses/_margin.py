"""Margin ranking and multi-margin losses on scores, each with a fused
loss-and-gradient form."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._layout import empty_rows_layout, rows_input, rows_shape, rows_view
from .._run import run_drivers
from .._validate import (
    as_mask,
    kernel_dtype,
    result_dtype,
)
from ..kernels import gradients as grad_kernels
from ._common import (
    LossValue,
    Reduction,
    _any_dask,
    _class_axis,
    _class_targets,
    _grad_out,
    _index_target,
    _int,
    _logits_array,
    _real,
    _reduce,
    _reduction,
    _weights,
    keeps_types,
)

# ---------------------------------------------------------------------------
# Margin ranking loss
# ---------------------------------------------------------------------------


def _margin_ranking(
    scores: ArrayLike,
    margin: float,
    positive: int,
    axis: int,
    reduction: str,
    where: ArrayLike | None,
    want_grad: bool,
    fn: str,
) -> tuple[Any, np.ndarray | None]:
    s = _logits_array(scores, "scores", fn)
    ax = _class_axis(axis, s.ndim)
    axes = (ax,)
    n = s.shape[ax]
    pos = _int(positive, "positive")
    if not -n <= pos < n:
        raise IndexError(f"positive={positive} is out of range for rows of {n} scores")
    pos %= n
    mg = _real(margin, "margin")
    red = _reduction(reduction)
    reduced = s.shape[:ax] + s.shape[ax + 1 :]
    kernels = (grad_kernels.margin_ranking_rows_serial, grad_kernels.margin_ranking_rows_parallel)
    if where is None:
        return _margin_rows(s, axes, red, reduced, want_grad, *kernels, pos, mg)
    keep = as_mask(where, s.shape)
    counted = np.take(keep, pos, axis=ax)  # examples whose positive is kept
    return _masked_rows(s, keep, counted, None, axes, red, reduced, want_grad, kernels,
                        pos, mg)


def _masked_rows(
    x: np.ndarray,
    keep: np.ndarray,
    counted: np.ndarray,
    rescale: np.ndarray | None,
    axes: tuple[int, ...],
    red: str,
    reduced: tuple[int, ...],
    want_grad: bool,
    kernels: tuple[Any, Any],
    *options: Any,
) -> tuple[Any, np.ndarray | None]:
    """A margin loss with ``where``: the entries not kept are set to
    ``-inf`` in a copy (their hinge terms and gradients are then 0), each
    row's loss and gradient are multiplied by ``rescale`` (the multi-margin
    loss's ``C / kept classes``), rows not ``counted`` (their positive or
    target not kept) give 0 and are left out of the mean."""
    res_dt = result_dtype(x.dtype)
    k_dt = kernel_dtype(res_dt)
    xm = np.where(keep, x.astype(k_dt, copy=False), -np.inf).astype(k_dt, copy=False)
    loss, grad = _margin_rows(xm, axes, "none", reduced, want_grad, *kernels, *options)
    factor = np.ones(counted.shape) if rescale is None else rescale
    ncounted = float(np.count_nonzero(counted))
    # (rows left out may hold -inf - -inf = NaN: replaced, without a warning)
    with np.errstate(invalid="ignore"):
        loss_rows = np.where(counted, np.asarray(loss, np.float64) * factor, 0.0).reshape(-1)
        if grad is not None:
            ax = axes[0]
            g = np.where(np.expand_dims(counted, ax), grad * np.expand_dims(factor, ax), 0.0)
            if red == "mean":
                g = g / ncounted if ncounted else np.full_like(g, np.nan)
            grad = g.astype(res_dt, copy=False)
    return _reduce(loss_rows, red, ncounted, reduced, res_dt), grad



def _margin_rows(
    x: np.ndarray,
    axes: tuple[int, ...],
    red: str,
    reduced: tuple[int, ...],
    want_grad: bool,
    serial: Any,
    parallel: Any,
    *options: Any,
) -> tuple[Any, np.ndarray | None]:
    """Run a margin loss's row drivers: ``driver(x2, *options, scale, loss,
    grad)``; the mean divides by the number of rows."""
    res_dt = result_dtype(x.dtype)
    k_dt = kernel_dtype(res_dt)
    rows, n = rows_shape(x.shape, axes)
    x2 = rows_input(x.astype(k_dt, copy=False), axes, rows, n)
    scale = 1.0
    if red == "mean":
        scale = 1.0 / rows if rows else math.nan
    loss_rows = np.zeros(rows)
    grad = g2 = None
    if want_grad:
        grad = empty_rows_layout(x.shape, axes, k_dt)
        g2 = rows_view(grad, axes, rows, n)
    if rows * n:
        run_drivers(serial, parallel, rows, rows * n,
                               x2, *options, scale, loss_rows, g2)
    return _reduce(loss_rows, red, float(rows), reduced, res_dt), _grad_out(grad, res_dt)


@keeps_types
def margin_ranking_loss(
    scores: ArrayLike,
    axis: int = -1,
    *,
    margin: float = 1.0,
    positive: int = 0,
    reduction: Reduction = "mean",
    where: ArrayLike | None = None,
) -> LossValue:
    r"""Max-margin ranking loss: one positive against ``N`` negatives per example.

    For each example's scores :math:`s` (the positive at index :math:`p`,
    the others negatives) and margin :math:`m`:

    .. math:: L = \sum_{j \ne p} \max(0,\; m - s_p + s_j)

    vectorized over a batch of any shape.

    Parameters
    ----------
    scores : array_like
        Scores with ``N + 1`` entries along ``axis`` for each example.
    axis : int, optional
        The axis holding each example's scores.  Default ``-1``.
    margin : float, optional
        The margin by which the positive should beat every negative.
        Default 1.
    positive : int, optional
        Index of the positive score along ``axis`` (negative values count
        from the end).  Default 0.
    reduction : {'none', 'mean', 'sum'}, optional
        ``'none'``: one loss per example (the scores' shape without
        ``axis``); ``'sum'``: their sum; ``'mean'`` (default): their mean
        over the examples that take part.  (torch's ``margin_ranking_loss``
        with ``reduction='mean'`` averages over the ``N`` pairs of each
        example too: divide by ``N`` for that.)
    where : array_like of bool, optional
        Broadcastable to the scores' shape.  Entries where it is False take
        no part: a left-out negative adds no term; an example whose positive
        is left out has loss 0 and gradient 0 and is not counted in the mean.

    Returns
    -------
    numpy scalar or ndarray
        The loss, of the scores' float dtype.  An example with a NaN score
        has a NaN loss (a ``relu``-based loss would hide it as 0).

    Raises
    ------
    IndexError
        ``positive`` outside the rows.
    TypeError
        Non-integer ``positive``, non-real ``margin``, complex scores.
    ValueError
        A bad ``reduction``, 0-d scores.

    See Also
    --------
    margin_ranking_loss_with_grad : the loss and its gradient.
    multi_margin_loss : torch's multi-class margin loss.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> scores = np.array([0.5, 0.2, -0.1, 1.0, -0.5, 0.3]).reshape(2, 3)
    >>> softjit.margin_ranking_loss(scores, reduction="none")  # [0.7 + 0.4, 0 + 0.3]
    array([1.1, 0.3])
    >>> round(float(softjit.margin_ranking_loss(scores)), 12)  # the mean
    0.7
    >>> round(float(softjit.margin_ranking_loss(scores, reduction="sum")), 12)
    1.4
    >>> float(softjit.margin_ranking_loss([0.0, np.nan, -5.0]))
    nan
    """
    if _any_dask(scores, where):
        from ..integrations import dask_losses

        return dask_losses.margin_loss(margin_ranking_loss_with_grad, scores, None, axis,
                                       reduction, where, False,
                                       dict(margin=margin, positive=positive))
    loss, _ = _margin_ranking(
        scores, margin, positive, axis, reduction, where, want_grad=False,
        fn="margin_ranking_loss"
    )
    return loss


@keeps_types
def margin_ranking_loss_with_grad(
    scores: ArrayLike,
    axis: int = -1,
    *,
    margin: float = 1.0,
    positive: int = 0,
    reduction: Reduction = "mean",
    where: ArrayLike | None = None,
) -> tuple[LossValue, np.ndarray]:
    r"""The margin ranking loss and its gradient with respect to the scores.

    The loss is that of :func:`margin_ranking_loss`; its gradient is

    .. math:: \frac{\partial L}{\partial s_j} = [\,m - s_p + s_j > 0\,]
              \quad (j \ne p), \qquad
              \frac{\partial L}{\partial s_p}
              = -\sum_{j \ne p} [\,m - s_p + s_j > 0\,]

    (0 at the kink :math:`m - s_p + s_j = 0`, as in torch), divided by the
    number of examples for ``reduction='mean'``.

    Parameters
    ----------
    scores : array_like
        Scores with ``N + 1`` entries along ``axis`` for each example.
    axis : int, optional
        The axis holding each example's scores.  Default ``-1``.
    margin : float, optional
        Default 1.
    positive : int, optional
        Index of the positive score along ``axis``.  Default 0.
    reduction : {'none', 'mean', 'sum'}, optional
        As :func:`margin_ranking_loss`.  Default ``'mean'``.
    where : array_like of bool, optional
        As :func:`margin_ranking_loss`.

    Returns
    -------
    loss : numpy scalar or ndarray
        As :func:`margin_ranking_loss`.
    dscores : ndarray
        The scores' shape and float dtype: the gradient of ``loss`` (of
        ``loss.sum()`` for ``'none'``).  NaN for an example with a NaN score.

    Raises
    ------
    IndexError, TypeError, ValueError
        As :func:`margin_ranking_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> scores = np.array([0.5, 0.2, -0.1, 1.0, -0.5, 0.3]).reshape(2, 3)
    >>> loss, dscores = softjit.margin_ranking_loss_with_grad(scores, reduction="sum")
    >>> dscores
    array([[-2.,  1.,  1.],
           [-1.,  0.,  1.]])
    """
    if _any_dask(scores, where):
        from ..integrations import dask_losses

        return dask_losses.margin_loss(margin_ranking_loss_with_grad, scores, None, axis,
                                       reduction, where, True,
                                       dict(margin=margin, positive=positive))
    loss, grad = _margin_ranking(
        scores, margin, positive, axis, reduction, where, want_grad=True,
        fn="margin_ranking_loss_with_grad",
    )
    assert grad is not None
    return loss, grad


# ---------------------------------------------------------------------------
# Multi-margin loss
# ---------------------------------------------------------------------------


def _multi_margin(
    logits: ArrayLike,
    target: ArrayLike,
    p: int,
    margin: float,
    weight: ArrayLike | None,
    reduction: str,
    axis: int,
    where: ArrayLike | None,
    want_grad: bool,
    fn: str,
) -> tuple[Any, np.ndarray | None]:
    x = _logits_array(logits, "logits", fn)
    ax = _class_axis(axis, x.ndim)
    axes = (ax,)
    n_classes = x.shape[ax]
    reduced = x.shape[:ax] + x.shape[ax + 1 :]
    t = _index_target(target, reduced)
    pp = _int(p, "p")
    if pp not in (1, 2):
        raise ValueError(f"p must be 1 or 2; got {p!r}")
    mg = _real(margin, "margin")
    red = _reduction(reduction)
    w = None if weight is None else _weights(weight, n_classes)
    y = _class_targets(t, n_classes, None)
    kernels = (grad_kernels.multi_margin_rows_serial, grad_kernels.multi_margin_rows_parallel)
    if where is None:
        return _margin_rows(x, axes, red, reduced, want_grad, *kernels, y, pp, mg, w)
    keep = as_mask(where, x.shape)
    target_kept = np.take_along_axis(
        keep, np.expand_dims(np.asarray(t, np.intp).reshape(reduced), ax), axis=ax).squeeze(ax)
    nkept = keep.sum(axis=ax)
    counted = target_kept & (nkept > 0)
    rescale = n_classes / np.maximum(nkept, 1)  # the mean over the kept classes
    return _masked_rows(x, keep, counted, rescale, axes, red, reduced, want_grad, kernels,
                        y, pp, mg, w)



@keeps_types
def multi_margin_loss(
    logits: ArrayLike,
    target: ArrayLike,
    axis: int = -1,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    where: ArrayLike | None = None,
) -> LossValue:
    r"""Multi-class hinge loss, as ``torch.nn.functional.multi_margin_loss``.

    For each sample's scores :math:`x` over :math:`C` classes, target class
    :math:`y` and margin :math:`m`:

    .. math:: L = \frac{w_y}{C} \sum_{i \ne y} \max(0,\; m - x_y + x_i)^p

    (:math:`w_y = 1` without weights; torch's implementation, like this
    one, multiplies the weight outside the power).

    Parameters
    ----------
    logits : array_like
        Scores, classes along ``axis``.
    target : array_like of int
        Class indices: the logits' shape without ``axis``, each in
        ``[0, C)``.
    axis : int, optional
        The class axis.  Default ``-1``.
    p : {1, 2}, optional
        The power of the hinge.  Default 1.
    margin : float, optional
        Default 1.
    weight : array_like, optional
        A weight per class, shape ``(C,)``.
    reduction : {'none', 'mean', 'sum'}, optional
        ``'none'``: one loss per sample (the logits' shape without
        ``axis``); ``'sum'``: their sum; ``'mean'`` (default): their mean
        over the samples (not divided by the weights, as in torch).
    where : array_like of bool, optional
        Broadcastable to the logits' shape.  Entries where it is False take
        no part: the loss of a sample is then the same loss over its kept
        classes (divided by their count instead of ``C``); a sample whose
        target is left out has loss 0 and gradient 0 and is not counted in
        the mean.

    Returns
    -------
    numpy scalar or ndarray
        The loss, of the logits' float dtype.  A sample with a NaN score has
        a NaN loss (torch counts a NaN term as 0).

    Raises
    ------
    IndexError
        A target outside ``[0, C)``.
    TypeError
        Non-integer targets, complex logits.
    ValueError
        A target of the wrong shape, a weight of the wrong length, ``p``
        other than 1 or 2, a bad ``reduction``.

    See Also
    --------
    multi_margin_loss_with_grad : the loss and its gradient.
    margin_ranking_loss : one positive against ``N`` negatives.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> x = np.array([[0.1, 0.2, 0.4, 0.8], [0.5, -1.0, 0.0, 0.3]])
    >>> softjit.multi_margin_loss(x, [3, 0], reduction="none")
    array([0.325, 0.325])
    >>> float(softjit.multi_margin_loss(x, [3, 0], p=2))
    0.1875
    """
    if _any_dask(logits, target, where):
        from ..integrations import dask_losses

        return dask_losses.margin_loss(multi_margin_loss_with_grad, logits, target, axis,
                                       reduction, where, False,
                                       dict(p=p, margin=margin, weight=weight))
    loss, _ = _multi_margin(
        logits, target, p, margin, weight, reduction, axis, where, want_grad=False,
        fn="multi_margin_loss",
    )
    return loss


@keeps_types
def multi_margin_loss_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    axis: int = -1,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    where: ArrayLike | None = None,
) -> tuple[LossValue, np.ndarray]:
    r"""The multi-margin loss and its gradient with respect to the logits.

    The loss is that of :func:`multi_margin_loss`.  With
    :math:`z_i = m - x_y + x_i`, its gradient is

    .. math:: \frac{\partial L}{\partial x_i} = \frac{w_y}{C}\, p\, z_i^{p-1}
              [\,z_i > 0\,] \quad (i \ne y), \qquad
              \frac{\partial L}{\partial x_y}
              = -\sum_{i \ne y} \frac{\partial L}{\partial x_i}

    divided by the number of samples for ``reduction='mean'``.

    Parameters
    ----------
    logits : array_like
        Scores, classes along ``axis``.
    target : array_like of int
        Class indices, the logits' shape without ``axis``.
    axis : int, optional
        The class axis.  Default ``-1``.
    p : {1, 2}, optional
        Default 1.
    margin : float, optional
        Default 1.
    weight : array_like, optional
        A weight per class, shape ``(C,)``.
    reduction : {'none', 'mean', 'sum'}, optional
        As :func:`multi_margin_loss`.  Default ``'mean'``.
    where : array_like of bool, optional
        As :func:`multi_margin_loss`.

    Returns
    -------
    loss : numpy scalar or ndarray
        As :func:`multi_margin_loss`.
    dlogits : ndarray
        The logits' shape and float dtype: the gradient of ``loss`` (of
        ``loss.sum()`` for ``'none'``).  NaN for a sample with a NaN score.

    Raises
    ------
    IndexError, TypeError, ValueError
        As :func:`multi_margin_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> x = np.array([[0.1, 0.2, 0.4, 0.8], [0.5, -1.0, 0.0, 0.3]])
    >>> loss, dlogits = softjit.multi_margin_loss_with_grad(x, [3, 0])
    >>> dlogits
    array([[ 0.125,  0.125,  0.125, -0.375],
           [-0.25 ,  0.   ,  0.125,  0.125]])
    """
    if _any_dask(logits, target, where):
        from ..integrations import dask_losses

        return dask_losses.margin_loss(multi_margin_loss_with_grad, logits, target, axis,
                                       reduction, where, True,
                                       dict(p=p, margin=margin, weight=weight))
    loss, grad = _multi_margin(
        logits, target, p, margin, weight, reduction, axis, where, want_grad=True,
        fn="multi_margin_loss_with_grad",
    )
    assert grad is not None
    return loss, grad
