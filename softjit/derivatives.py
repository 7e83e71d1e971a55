"""Derivatives of softmax and log_softmax: VJP, JVP and the Jacobian.

The public functions normalise their arguments with
:mod:`softjit._validate`, view the arrays as ``(rows, n)`` with
:mod:`softjit._run` and run the row kernels of
:mod:`softjit.kernels.gradients`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _dispatch
from ._core import softmax
from ._layout import empty_rows_layout, moved_last, rows_input, rows_shape, rows_view, same_layout
from ._run import run_drivers
from ._validate import (
    as_mask,
    check_out,
    kernel_dtype,
    normalize_axis,
    real_array,
    result_dtype,
)
from .kernels import gradients as grad_kernels

AxisLike = int | tuple[int, ...] | None

__all__ = ["log_softmax_vjp", "softmax_jacobian", "softmax_jvp", "softmax_vjp"]


def _detach(arr: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``arr``, or a copy of it when it overlaps ``out`` other than exactly."""
    if np.may_share_memory(arr, out) and not same_layout(arr, out):
        return arr.copy()
    return arr


_PAIR_DRIVERS = {
    "softmax_vjp": (grad_kernels.softmax_vjp_rows_serial, grad_kernels.softmax_vjp_rows_parallel),
    "log_softmax_vjp": (
        grad_kernels.log_softmax_vjp_rows_serial,
        grad_kernels.log_softmax_vjp_rows_parallel,
    ),
}


def forward_tolerance(dtype: np.dtype, n: int) -> float:
    """How far from 1 the sum of a slice of ``n`` softmax outputs of
    ``dtype`` may be (each entry rounded once, the sum's own rounding):
    ``max(n, 4)`` machine epsilons of ``dtype``."""
    return max(n, 4) * float(np.finfo(dtype).eps)


def check_forward(fn: str, name: str, bad: np.ndarray, tol: float) -> None:
    """The ValueError for slices that are not a forward output."""
    nbad = int(np.count_nonzero(bad))
    if nbad:
        what = "log_softmax(x)" if name == "logp" else "softmax(x)"
        rule = ("entries <= 0 whose exp sums to 1" if name == "logp"
                else "non-negative entries summing to 1")
        raise ValueError(
            f"{fn}: {name} must be {what} along axis ({rule}, within {tol:.1e}); "
            f"{nbad} of {bad.size} slices are not. For the derivative at logits x, "
            f"pass softmax(x) (or use softmax_jacobian(x, from_logits=True))."
        )


def _run_pair(
    kind: str,
    a: np.ndarray,
    b: np.ndarray,
    out: np.ndarray,
    axes: tuple[int, ...],
    mask: np.ndarray | None,
    tol: float,
) -> np.ndarray:
    """Run the ``kind`` row kernel on ``(a, b)`` into ``out`` (all of one
    shape, ``a``/``b``/``out`` of the kernel dtype); returns the per-slice
    flags of ``a`` not being a forward output."""
    rows, n = rows_shape(a.shape, axes)
    bad = np.zeros(rows, np.bool_)
    if rows * n == 0:
        return bad
    a2 = rows_input(a, axes, rows, n)
    b2 = rows_input(b, axes, rows, n)
    m2 = None if mask is None else rows_input(mask, axes, rows, n)
    o2 = rows_view(out, axes, rows, n)
    staged = o2 is None
    if staged:
        o2 = np.empty((rows, n), out.dtype)
    serial, parallel = _PAIR_DRIVERS[kind]
    run_drivers(serial, parallel, rows, rows * n, a2, b2, o2, m2, tol, bad)
    if staged:
        moved_out = moved_last(out, axes)
        np.copyto(moved_out, o2.reshape(moved_out.shape))
    return bad


def _pairwise(
    kind: str,
    fn: str,
    a: ArrayLike,
    b: ArrayLike,
    names: tuple[str, str],
    axis: AxisLike,
    where: ArrayLike | None,
    out: np.ndarray | None,
) -> np.ndarray:
    """Shared wrapper of the VJP/JVP functions: broadcasting, dtypes,
    ``out=`` (including in place), 0-d input; a DataArray, pandas object or
    masked array ``a`` gives its type back (a masked array's mask acts as
    ``where=~mask``)."""
    other = _dispatch.kind_of(a)
    if other not in (None, _dispatch.DASK):
        from .integrations import labels

        if other == _dispatch.MASKED:
            keep = ~np.ma.getmaskarray(a)
            where = keep if where is None else keep & np.asarray(where, dtype=bool)
        res = _pairwise(kind, fn, labels.unwrap(a), labels.unwrap(b, a), names, axis, where,
                        out)
        return labels.like(a, res)
    arr_a = real_array(a, names[0], fn)
    arr_b = real_array(b, names[1], fn)
    try:
        shape = np.broadcast_shapes(arr_a.shape, arr_b.shape)
    except ValueError:
        raise ValueError(
            f"{names[0]} with shape {arr_a.shape} and {names[1]} with shape {arr_b.shape} "
            "do not broadcast together"
        ) from None
    res_dt = result_dtype(np.result_type(arr_a.dtype, arr_b.dtype))
    k_dt = kernel_dtype(res_dt)
    work_shape = shape if shape else (1,)
    axes = normalize_axis(axis, len(work_shape))
    ak = np.broadcast_to(arr_a.astype(k_dt, copy=False), shape).reshape(work_shape)
    bk = np.broadcast_to(arr_b.astype(k_dt, copy=False), shape).reshape(work_shape)
    mask = None if where is None else as_mask(where, work_shape)
    tol = forward_tolerance(result_dtype(arr_a.dtype), rows_shape(work_shape, axes)[1])

    if out is not None:
        check_out(out, shape, res_dt)
        res = out.reshape(work_shape)
        if res.dtype == k_dt:
            bad = _run_pair(kind, _detach(ak, res), _detach(bk, res), res, axes, mask, tol)
            check_forward(fn, names[0], bad, tol)
            return out
        tmp = empty_rows_layout(work_shape, axes, k_dt)
        check_forward(fn, names[0], _run_pair(kind, ak, bk, tmp, axes, mask, tol), tol)
        np.copyto(res, tmp, casting="unsafe")
        return out

    tmp = empty_rows_layout(work_shape, axes, k_dt)
    check_forward(fn, names[0], _run_pair(kind, ak, bk, tmp, axes, mask, tol), tol)
    result = tmp.astype(res_dt, copy=False).reshape(shape)
    return result[()] if result.ndim == 0 else result


def softmax_vjp(
    y: ArrayLike,
    g: ArrayLike,
    axis: AxisLike = -1,
    *,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Vector-Jacobian product of softmax, from its output.

    For ``y = softmax(x)`` and an upstream gradient ``g = dL/dy``, returns
    ``dL/dx``:

    .. math:: (J^\top g)_i = y_i \Bigl(g_i - \sum_j g_j y_j\Bigr)

    computed in one fused pass per slice (float64 accumulation), without
    forming the Jacobian.

    Parameters
    ----------
    y : array_like
        The softmax output along ``axis`` (``softjit.softmax(x, axis)``).
    g : array_like
        The gradient with respect to ``y``; broadcasts with ``y``.
    axis : int, tuple of ints or None, optional
        The softmax axis or axes (as given to :func:`softjit.softmax`);
        ``None`` means the whole array.  Default ``-1``.
    where : array_like of bool, optional
        The mask given to the forward :func:`softjit.softmax`: entries where
        it is False take no part and get 0.
    out : ndarray, optional
        Array of the broadcast shape and the result dtype to write into;
        ``out=g`` (or ``out=y``) works in place.

    Returns
    -------
    ndarray
        ``dL/dx``, of the broadcast shape of ``y`` and ``g``; float32 when
        both are float32, float64 for float64 or integer input (float16 is
        computed in float64 and returned as float16).

    See Also
    --------
    softmax_jvp : the same product (the Jacobian is symmetric).
    softmax_jacobian : the full Jacobian.

    Notes
    -----
    The result sums to 0 along ``axis`` (up to rounding) when ``y`` sums to
    1: softmax is invariant to adding a constant to ``x``.  NaN in ``y`` or
    ``g`` makes the slice NaN.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> y = softjit.softmax(x)
    >>> softjit.softmax_vjp(y, [1.0, 0.0, 0.0])    # gradient of y[0]
    array([ 0.08192507, -0.02203304, -0.05989202])
    >>> float(abs(softjit.softmax_vjp(y, [0.3, -2.0, 5.0]).sum())) < 1e-15
    True

    Along axis 0 of a batch, with ``g`` broadcast:

    >>> ys = softjit.softmax(np.array([[0.0, 1.0], [0.0, 1.0]]), axis=0)
    >>> softjit.softmax_vjp(ys, np.array([[1.0], [0.0]]), axis=0)
    array([[ 0.25,  0.25],
           [-0.25, -0.25]])
    """
    return _pairwise("softmax_vjp", "softmax_vjp", y, g, ("y", "g"), axis, where, out)


def softmax_jvp(
    y: ArrayLike,
    v: ArrayLike,
    axis: AxisLike = -1,
    *,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Jacobian-vector product of softmax, from its output.

    For ``y = softmax(x)`` and a tangent ``v`` (a perturbation of ``x``),
    returns the directional derivative of ``y``:

    .. math:: (J v)_i = y_i \Bigl(v_i - \sum_j y_j v_j\Bigr)

    The softmax Jacobian :math:`J = \mathrm{diag}(y) - y y^\top` is
    symmetric, so this equals :func:`softmax_vjp` with ``v`` in place of
    ``g``.

    Parameters
    ----------
    y : array_like
        The softmax output along ``axis``.
    v : array_like
        The tangent (perturbation of the softmax input); broadcasts with
        ``y``.
    axis : int, tuple of ints or None, optional
        The softmax axis or axes; ``None`` means the whole array.  Default
        ``-1``.
    where : array_like of bool, optional
        The mask given to the forward :func:`softjit.softmax`; entries
        where it is False get 0.
    out : ndarray, optional
        Array of the broadcast shape and the result dtype to write into.

    Returns
    -------
    ndarray
        The change of ``y``, of the broadcast shape of ``y`` and ``v``.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> x = np.array([0.5, -1.0, 2.0])
    >>> v = np.array([1e-6, 0.0, -2e-6])
    >>> jv = softjit.softmax_jvp(softjit.softmax(x), v)
    >>> fd = softjit.softmax(x + v) - softjit.softmax(x)
    >>> bool(np.allclose(jv, fd, rtol=1e-4, atol=1e-12))
    True

    Adding a constant to every logit changes nothing:

    >>> softjit.softmax_jvp(softjit.softmax(x), np.ones(3)).round(15) + 0.0
    array([0., 0., 0.])
    """
    return _pairwise("softmax_vjp", "softmax_jvp", y, v, ("y", "v"), axis, where, out)


def log_softmax_vjp(
    logp: ArrayLike,
    g: ArrayLike,
    axis: AxisLike = -1,
    *,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Vector-Jacobian product of log_softmax, from its output.

    For ``logp = log_softmax(x)`` and ``g = dL/dlogp``, returns ``dL/dx``:

    .. math:: (J^\top g)_i = g_i - e^{\mathrm{logp}_i} \sum_j g_j

    Parameters
    ----------
    logp : array_like
        The log_softmax output along ``axis``.
    g : array_like
        The gradient with respect to ``logp``; broadcasts with ``logp``.
    axis : int, tuple of ints or None, optional
        The log_softmax axis or axes; ``None`` means the whole array.
        Default ``-1``.
    where : array_like of bool, optional
        The mask given to the forward :func:`softjit.log_softmax`.  Masked
        entries are constant (``-inf``) in the forward pass, so they get 0
        and their ``g`` is left out of the sum.  Without ``where``, an entry
        whose ``logp`` is ``-inf`` gets ``g_i``.
    out : ndarray, optional
        Array of the broadcast shape and the result dtype to write into;
        ``out=g`` works in place.

    Returns
    -------
    ndarray
        ``dL/dx``, of the broadcast shape of ``logp`` and ``g``.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> logp = softjit.log_softmax(np.array([1.0, 2.0, 3.0]))

    The negative log-likelihood of class 2 is ``-logp[2]``; its gradient
    is ``softmax(x) - onehot(2)``:

    >>> softjit.log_softmax_vjp(logp, [0.0, 0.0, -1.0])
    array([ 0.09003057,  0.24472847, -0.33475904])
    """
    return _pairwise(
        "log_softmax_vjp", "log_softmax_vjp", logp, g, ("logp", "g"), axis, where, out
    )


def softmax_jacobian(
    y: ArrayLike, axis: AxisLike = -1, *, from_logits: bool = False
) -> np.ndarray:
    r"""The Jacobian of softmax, from its output, for every slice.

    .. math:: J = \mathrm{diag}(y) - y y^\top, \qquad
              J_{ij} = \frac{\partial y_i}{\partial x_j} = y_i (\delta_{ij} - y_j)

    Parameters
    ----------
    y : array_like
        The softmax output along ``axis`` (or the logits, with
        ``from_logits``).
    axis : int, tuple of ints or None, optional
        The softmax axis.  For several axes (or ``None``) the softmax
        entries are taken in C order of those axes, as one axis of length
        ``n`` (their product).  Default ``-1``.
    from_logits : bool, optional
        ``y`` holds the logits ``x``: the Jacobian of softmax at ``x``
        (softmax is computed first).  Default False.

    Returns
    -------
    ndarray
        Shape ``(..., n, n)``, where ``...`` are the other axes of ``y`` in
        order; symmetric in its last two axes.  Its size is ``n`` times that
        of ``y``: prefer :func:`softmax_vjp` to apply it.

    Examples
    --------
    >>> import numpy as np
    >>> import softjit
    >>> y = softjit.softmax(np.log([1.0, 1.0, 2.0]))
    >>> y
    array([0.25, 0.25, 0.5 ])
    >>> softjit.softmax_jacobian(y)
    array([[ 0.1875, -0.0625, -0.125 ],
           [-0.0625,  0.1875, -0.125 ],
           [-0.125 , -0.125 ,  0.25  ]])
    >>> softjit.softmax_jacobian(np.ones((4, 2, 3)) / 2, axis=1).shape
    (4, 3, 2, 2)

    From logits (the derivative of softmax at ``x``):

    >>> softjit.softmax_jacobian(np.log([1.0, 1.0, 2.0]), from_logits=True)[2]
    array([-0.125, -0.125,  0.25 ])

    Logits where probabilities are expected are refused:

    >>> softjit.softmax_jacobian(np.array([1.0, 2.0, 3.0]))
    Traceback (most recent call last):
    ...
    ValueError: softmax_jacobian: y must be softmax(x) along axis ...
    """
    if from_logits:
        y = softmax(y, axis)
    arr = real_array(y, "y", "softmax_jacobian")
    res_dt = result_dtype(arr.dtype)
    k_dt = kernel_dtype(res_dt)
    work = arr.reshape(1) if arr.ndim == 0 else arr
    axes = normalize_axis(axis, work.ndim)
    rows, n = rows_shape(work.shape, axes)
    kept = [s for i, s in enumerate(work.shape) if i not in axes]
    res = np.empty((rows, n, n), k_dt)
    if rows * n:
        y2 = rows_input(work.astype(k_dt, copy=False), axes, rows, n)
        tol = forward_tolerance(res_dt, n)
        bad = np.zeros(rows, np.bool_)
        run_drivers(
            grad_kernels.softmax_jacobian_rows_serial,
            grad_kernels.softmax_jacobian_rows_parallel,
            rows,
            rows * n * n,
            y2,
            res,
            tol,
            bad,
        )
        check_forward("softmax_jacobian", "y", bad, tol)
    return res.astype(res_dt, copy=False).reshape([*kept, n, n])
