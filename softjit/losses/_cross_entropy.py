"""Cross-entropy of logits against class indices or probabilities, with a
fused loss-and-gradient form."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np
from numpy.typing import ArrayLike

from .._layout import empty_rows_layout, rows_input, rows_shape, rows_view
from .._run import run_drivers
from .._validate import (
    as_mask,
    kernel_dtype,
    real_array,
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
    _int,
    _logits_array,
    _real,
    _reduce,
    _reduction,
    _target_kind,
    _weights,
    keeps_types,
)

# ---------------------------------------------------------------------------
# Cross-entropy
# ---------------------------------------------------------------------------


class CrossEntropyArgs(NamedTuple):
    """The checked arguments of cross_entropy (see :func:`cross_entropy_args`)."""

    x: np.ndarray
    ax: int
    reduced: tuple[int, ...]
    t: np.ndarray
    kind: str
    eps: float
    red: str
    w: np.ndarray | None
    ignore_index: int | None


class CrossEntropyRows(NamedTuple):
    """The per-row results of cross_entropy (see :func:`cross_entropy_rows`)."""

    loss: np.ndarray
    weight: np.ndarray
    counted: np.ndarray
    denom: float
    grad: np.ndarray | None
    res_dt: np.dtype


def cross_entropy_args(
    logits: ArrayLike,
    target: ArrayLike,
    axis: int,
    label_smoothing: float,
    ignore_index: int | None,
    weight: ArrayLike | None,
    reduction: str,
    fn: str,
) -> CrossEntropyArgs:
    """Check the arguments of cross_entropy; raise as it documents.

    Only the shapes and dtypes of ``logits`` and ``target`` are looked at
    (besides the class indices, checked by :func:`cross_entropy_rows`), so
    :mod:`softjit.integrations.dask` checks dask arrays with zero-strided stand-ins.
    """
    x = _logits_array(logits, "logits", fn)
    ax = _class_axis(axis, x.ndim)
    n_classes = x.shape[ax]
    reduced = x.shape[:ax] + x.shape[ax + 1 :]
    t = real_array(target, "target", fn)
    kind = _target_kind(t, x.shape, reduced)
    eps = _real(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing!r}")
    red = _reduction(reduction)
    w = None if weight is None else _weights(weight, n_classes)
    if ignore_index is not None:
        ignore_index = _int(ignore_index, "ignore_index")
        if kind == "prob":
            raise ValueError(
                "ignore_index applies to class-index targets only; "
                "these targets are class probabilities"
            )
    return CrossEntropyArgs(x, ax, reduced, t, kind, eps, red, w, ignore_index)


def row_weights(
    y: np.ndarray | None,
    w: np.ndarray | None,
    valid_rows: np.ndarray | None,
    rows: int,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's weight in the mean's denominator, and whether it counts.

    torch's rule: the target class's weight for index targets (``y``, -1
    where ignored), 1 for probability targets (``y`` None); 0 for ignored
    targets and for rows with no valid class (``valid_rows`` False, or
    ``n == 0``).  Returns ``(float64 weights, bool counted)``.
    """
    counted = np.full(rows, n > 0)
    if y is not None:
        counted &= y >= 0
    if valid_rows is not None:
        counted &= valid_rows
    if y is None or w is None or n == 0:
        return counted.astype(np.float64), counted
    return np.where(counted, w[np.maximum(y, 0)], 0.0), counted


def cross_entropy_rows(
    args: CrossEntropyArgs, where: ArrayLike | None, want_grad: bool
) -> CrossEntropyRows:
    """Run the kernels: the float64 loss of each row (C order of the reduced
    shape), each row's weight in the mean, whether it counts, their sum,
    and the gradient (kernel dtype; divided by the sum for ``'mean'``)."""
    x, ax, _, t, kind, eps, red, w, ignore_index = args
    axes = (ax,)
    y = _class_targets(t, x.shape[ax], ignore_index) if kind == "index" else None
    mask = None if where is None else as_mask(where, x.shape)

    res_dt = result_dtype(x.dtype)
    k_dt = kernel_dtype(res_dt)
    rows, n = rows_shape(x.shape, axes)
    x2 = rows_input(x.astype(k_dt, copy=False), axes, rows, n)
    t2 = None if y is not None else rows_input(t.astype(k_dt, copy=False), axes, rows, n)
    m2 = None if mask is None else rows_input(mask, axes, rows, n)

    row_w, counted = row_weights(y, w, None if m2 is None else m2.any(axis=1), rows, n)
    denom = float(np.sum(row_w))
    scale = 1.0
    if red == "mean":
        scale = 1.0 / denom if denom != 0 else math.nan

    loss_rows = np.zeros(rows)
    grad = g2 = None
    if want_grad:
        grad = empty_rows_layout(x.shape, axes, k_dt)
        g2 = rows_view(grad, axes, rows, n)
    if rows * n and y is not None and w is None and eps == 0.0 and m2 is None:
        # The common case: vectorized kernels (class indices, no options).
        run_drivers(
            grad_kernels.cross_entropy_index_rows_serial,
            lambda *args: grad_kernels.cross_entropy_index_rows_parallel(
                *args, min(rows, 4 * numba.get_num_threads())),
            rows,
            rows * n,
            x2, y, scale, loss_rows, g2,
        )
    elif rows * n:
        run_drivers(
            grad_kernels.cross_entropy_rows_serial,
            grad_kernels.cross_entropy_rows_parallel,
            rows,
            rows * n,
            x2, t2, y, w, eps, scale, m2, loss_rows, g2,
        )
    return CrossEntropyRows(loss_rows, row_w, counted, denom, grad, res_dt)


def _cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    axis: int,
    label_smoothing: float,
    ignore_index: int | None,
    weight: ArrayLike | None,
    reduction: str,
    where: ArrayLike | None,
    want_grad: bool,
    fn: str,
) -> tuple[Any, np.ndarray | None]:
    args = cross_entropy_args(
        logits, target, axis, label_smoothing, ignore_index, weight, reduction, fn
    )
    res = cross_entropy_rows(args, where, want_grad)
    loss = _reduce(res.loss, args.red, res.denom, args.reduced, res.res_dt)
    return loss, _grad_out(res.grad, res.res_dt)


@keeps_types
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    axis: int = -1,
    *,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    where: ArrayLike | None = None,
) -> LossValue:
    r"""Cross-entropy between the softmax of logits and class targets.

    ``torch.nn.functional.cross_entropy`` (TensorFlow's
    ``softmax_cross_entropy_with_logits``) for numpy arrays: computed from
    the logits, stably, in one fused pass per sample.  For a sample with
    logits :math:`x` over :math:`C` classes and effective target mass

    .. math:: q_c = w_c \bigl((1 - \varepsilon)\, t_c + \varepsilon / C\bigr)

    (:math:`t` one-hot at the class index for index targets, :math:`w_c = 1`
    without weights, :math:`\varepsilon` the label smoothing), the loss is

    .. math:: L = -\sum_c q_c \log \mathrm{softmax}(x)_c
                = \sum_c q_c \Bigl(\log \sum_k e^{x_k} - x_c\Bigr)

    Parameters
    ----------
    logits : array_like
        Unnormalised log-probabilities, classes along ``axis``.  float32
        and float64 are computed (in float64) and returned as such; float16
        is returned as float16; bool and integers give float64.
    target : array_like
        Either class indices: an integer array of the logits' shape without
        ``axis`` (``(N,)`` for ``(N, C)`` logits), each in ``[0, C)`` or
        equal to ``ignore_index``; or class probabilities: a float array of
        the logits' shape.
    axis : int, optional
        The class axis.  Default ``-1`` (torch's layout ``(N, C, d1, ...)``
        is ``axis=1``).
    label_smoothing : float, optional
        :math:`\varepsilon \in [0, 1]`: the target becomes
        :math:`(1 - \varepsilon)\, t + \varepsilon / C`.  Default 0.
    ignore_index : int, optional
        A class-index value whose samples contribute nothing (loss and
        gradient 0) and are left out of the mean.  Default: none (torch's
        default is -100).
    weight : array_like, optional
        A weight per class, shape ``(C,)``.
    reduction : {'none', 'mean', 'sum'}, optional
        ``'none'``: one loss per sample (the logits' shape without
        ``axis``); ``'sum'``: their sum; ``'mean'`` (default): for index
        targets the sum divided by the summed weights :math:`w_{t_n}` of the
        non-ignored samples, for probability targets divided by the number
        of samples -- torch's rules.
    where : array_like of bool, optional
        Broadcastable to the logits' shape.  Entries where it is False are
        absent classes: they take no part in the softmax (probability 0),
        get no label-smoothing mass (:math:`C` counts a sample's valid
        classes) and a zero gradient; target mass on an absent class gives
        an infinite loss.  A sample with no valid class is skipped like an
        ignored one, so ``where=keep[:, None]`` drops whole samples.

    Returns
    -------
    numpy scalar or ndarray
        The loss, of the logits' float dtype: a scalar for ``'mean'`` and
        ``'sum'``, one value per sample for ``'none'``.  The mean is NaN
        when no sample counts (e.g. all ignored), as in torch.  A lazy dask
        array (0-d for a scalar) for dask input (see Notes).

    Raises
    ------
    IndexError
        A class index outside ``[0, C)`` that is not ``ignore_index`` (for
        dask input: when the result is computed).
    TypeError
        Class-index targets that are not integers, probability targets that
        are not floats, complex logits.
    ValueError
        A target of another shape, a weight of the wrong length, a bad
        ``reduction`` or ``label_smoothing``, ``ignore_index`` with
        probability targets.

    See Also
    --------
    cross_entropy_with_grad : the loss and its gradient in one pass.
    softjit.log_softmax : the log-probabilities themselves.

    Notes
    -----
    :math:`\log\sum_k e^{x_k} - x_c` is formed as :math:`(m - x_c) +
    \log(1 + s)`, with :math:`m` the row maximum and :math:`s` the sum of
    the other terms' :math:`e^{x_k - m}`, so huge logits are exact.  A class
    without target mass takes no part, even when its logit is ``-inf``
    (finite loss, no NaN); mass on a ``-inf`` logit gives ``inf``.  A NaN
    logit or target makes its sample's loss NaN (and so the mean or sum).
    No RuntimeWarning is emitted.

    Dask arrays: when ``logits``, ``target``, ``weight`` or ``where`` is a
    ``dask.array.Array``, nothing is computed; the result is a dask array
    with the same values (numpy operands are chunked as the logits).  The
    class axis may be split over chunks: it is never gathered.  Bad
    arguments raise at call time, except class indices out of range, which
    can only be seen when the result is computed.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    >>> round(float(softjit.cross_entropy(logits, [0, 1])), 12)
    0.318539769649
    >>> softjit.cross_entropy(logits, [0, 1], reduction="none")
    array([0.41703002, 0.22004952])

    It is ``-sum(target * log_softmax(logits))``, for probability targets
    too:

    >>> p = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])
    >>> softjit.cross_entropy(logits, p, reduction="none")
    array([0.80703002, 0.22004952])
    >>> -(p * softjit.log_softmax(logits)).sum(axis=-1)
    array([0.80703002, 0.22004952])

    Huge logits and impossible classes:

    >>> float(softjit.cross_entropy([1000.0, 0.0], 1))
    1000.0
    >>> float(softjit.cross_entropy([-np.inf, 1.0, 1.0], 2))
    0.6931471805599453

    Weights, label smoothing and ignored samples, as torch computes them:

    >>> x3 = np.vstack([logits, [9.0, 9.0, 9.0]])
    >>> float(softjit.cross_entropy(x3, [0, 1, -100], weight=[1.0, 2.0, 0.5],
    ...                             ignore_index=-100, label_smoothing=0.1))
    0.3491362563350538
    """
    if _any_dask(logits, target, weight, where):
        from ..integrations import dask_losses as dask_arrays

        return dask_arrays.cross_entropy(
            logits, target, axis, label_smoothing, ignore_index, weight, reduction, where,
            want_grad=False, fn="cross_entropy",
        )
    loss, _ = _cross_entropy(
        logits, target, axis, label_smoothing, ignore_index, weight, reduction, where,
        want_grad=False, fn="cross_entropy",
    )
    return loss


@keeps_types
def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    axis: int = -1,
    *,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    where: ArrayLike | None = None,
) -> tuple[LossValue, np.ndarray]:
    r"""Cross-entropy and its gradient with respect to the logits, in one pass.

    The loss is that of :func:`cross_entropy` (same arguments, same rules).
    With :math:`q` the effective target mass of a sample (see there), its
    gradient is

    .. math:: \frac{\partial L}{\partial x_c}
              = \Bigl(\sum_k q_k\Bigr) \mathrm{softmax}(x)_c - q_c

    -- ``softmax(x) - onehot(t)`` in the plain case -- divided by the
    mean's denominator for ``reduction='mean'``.  One fused kernel computes
    both: each sample's logits are read twice and its gradient written
    once; the softmax is not stored separately.

    Parameters
    ----------
    logits : array_like
        Unnormalised log-probabilities, classes along ``axis``.
    target : array_like
        Class indices (integer, the logits' shape without ``axis``) or
        class probabilities (float, the logits' shape).
    axis : int, optional
        The class axis.  Default ``-1``.
    label_smoothing : float, optional
        :math:`\varepsilon \in [0, 1]`.  Default 0.
    ignore_index : int, optional
        A class-index value whose samples contribute nothing.
    weight : array_like, optional
        A weight per class, shape ``(C,)``.
    reduction : {'none', 'mean', 'sum'}, optional
        As :func:`cross_entropy`.  Default ``'mean'``.
    where : array_like of bool, optional
        Absent classes, as :func:`cross_entropy`; they get a zero gradient.

    Returns
    -------
    loss : numpy scalar or ndarray
        As :func:`cross_entropy`.
    dlogits : ndarray
        The logits' shape and float dtype: the gradient of ``loss``
        (``'mean'``, ``'sum'``), or of ``loss.sum()`` for ``'none'`` (each
        sample's slice is the gradient of its own loss).  Ignored samples
        and absent classes get 0; a sample with a NaN logit gets NaN.  For
        dask input both are lazy dask arrays, as in :func:`cross_entropy`;
        the gradient of the mean is scaled by the lazily summed
        denominator, so nothing is computed at call time.

    Raises
    ------
    IndexError, TypeError, ValueError
        As :func:`cross_entropy`.

    See Also
    --------
    cross_entropy : the loss alone.
    log_softmax_vjp : the gradient through log_softmax for any upstream
        gradient.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    >>> loss, dlogits = softjit.cross_entropy_with_grad(logits, [0, 1])
    >>> round(float(loss), 12)
    0.318539769649
    >>> dlogits                     # (softmax(logits) - onehot([0, 1])) / 2
    array([[-0.17049943,  0.12121649,  0.04928295],
           [ 0.05430187, -0.09876047,  0.04445861]])

    A small step against the gradient lowers the loss:

    >>> float(softjit.cross_entropy(logits - 0.5 * dlogits, [0, 1])) < float(loss)
    True
    """
    if _any_dask(logits, target, weight, where):
        from ..integrations import dask_losses as dask_arrays

        return dask_arrays.cross_entropy(
            logits, target, axis, label_smoothing, ignore_index, weight, reduction, where,
            want_grad=True, fn="cross_entropy_with_grad",
        )
    loss, grad = _cross_entropy(
        logits, target, axis, label_smoothing, ignore_index, weight, reduction, where,
        want_grad=True, fn="cross_entropy_with_grad",
    )
    assert grad is not None
    return loss, grad
