"""dask arrays in, lazy dask arrays out, for :func:`softjit.cross_entropy`
and :func:`softjit.cross_entropy_with_grad` (the softmax family's graphs are
in :mod:`softjit.integrations.dask`): one blockwise task per chunk when the
class axis lies in one chunk, else per-chunk partials of the normaliser
combined by a tree reduction, as for logsumexp."""

from __future__ import annotations

import functools
from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import ArrayLike

from .._validate import (
    kernel_dtype,
    result_dtype,
)
from ..kernels.kinds import Kind
from ..losses import _common as loss_args
from ..losses import _cross_entropy as ce_losses
from .dask import (
    _aligned_mask,
    _chunked_like,
    _empty,
    _field,
    _in_one_chunk,
    _normalize_block,
    _partials,
)

# --------------------------------------------------------------------------- cross-entropy

#: What the split-class-axis path knows about each row (:func:`_ce_rows_block`).
_CE_ROW = np.dtype(
    [
        ("weight", np.float64),  # the row's weight in the mean's denominator
        ("counted", np.bool_),  # not ignored, with a valid class
        ("nan", np.bool_),  # a NaN, only -inf or several +inf: the loss is NaN
        ("y", np.int64),  # the class index (-1: ignored, or probability targets)
        ("a", np.float64),  # the target's mass: (1 - eps) * w_y, or 1 - eps
        ("b", np.float64),  # the smoothing mass of each valid class: eps / nvalid
    ]
)


def _stand_in(value: Any) -> Any:
    """A dask array as a zero-strided numpy array of its shape and dtype (all
    that the argument checks look at); anything else as it is."""
    if isinstance(value, da.Array):
        if any(np.isnan(n) for n in value.shape):
            raise ValueError(
                f"a dask array of unknown shape {value.shape} was given; call its "
                "compute_chunk_sizes() method first"
            )
        return np.broadcast_to(np.empty((), value.dtype), value.shape)
    return value


def _chunked(value: Any, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """A numpy or dask array of the right shape as a dask array of ``chunks``."""
    if isinstance(value, da.Array):
        return value.rechunk(chunks)
    return da.from_array(value, chunks=chunks)


def _logits(logits: Any, target: Any, where: Any, args: Any) -> da.Array:
    """The logits as a dask array: numpy logits take the chunks of a dask
    target (the class axis whole for class indices) or mask."""
    if isinstance(logits, da.Array):
        return logits
    other = where if isinstance(where, da.Array) else None
    if isinstance(target, da.Array):
        other = target if args.kind == "prob" else da.expand_dims(target, args.ax)
    return _chunked_like(args.x, other)


def cross_entropy(
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
) -> Any:
    """Lazy ``cross_entropy`` (with ``want_grad``: ``cross_entropy_with_grad``)
    when ``logits``, ``target``, ``weight`` or ``where`` is a dask array."""
    args = ce_losses.cross_entropy_args(
        _stand_in(logits), _stand_in(target), axis, label_smoothing, ignore_index,
        _stand_in(weight), reduction, fn,
    )
    ax = args.ax
    x = _logits(logits, target, where, args)
    batch = x.chunks[:ax] + x.chunks[ax + 1 :]
    t = _chunked(target if isinstance(target, da.Array) else args.t,
                 x.chunks if args.kind == "prob" else batch)
    if args.kind == "index":
        t = t.map_blocks(
            _checked_targets, n_classes=x.shape[ax], ignore_index=args.ignore_index,
            meta=_empty(t.ndim, t.dtype),
        )
    mask = _aligned_mask(where, x)
    w = None
    if weight is not None:
        w = _chunked(weight if isinstance(weight, da.Array) else args.w, ((x.shape[ax],),))
    if _in_one_chunk(x, (ax,)):
        loss, row_w, counted, grad = _ce_in_one_chunk(x, t, mask, w, args, want_grad, fn)
    else:
        loss, row_w, counted, grad = _ce_split(x, t, mask, w, args, want_grad)

    # Per-row float64 losses, weights and flags (keepdims) -> the reduction.
    res_dt = result_dtype(args.x.dtype)
    scalar = _empty(0, np.float64)
    if args.red == "none":
        out = loss.squeeze(axis=ax).astype(res_dt)
    elif args.red == "sum":
        out = _sum(loss).astype(res_dt)
    else:
        denom = _sum(row_w)
        out = da.map_blocks(_ratio, _sum(loss), denom, meta=scalar).astype(res_dt)
    if not want_grad:
        return out
    if args.red == "mean":  # scaled by 1 / the global denominator, lazily
        inv = da.map_blocks(_ratio, 1.0, denom, meta=scalar)
        grad = da.map_blocks(
            _scale_grad, grad, inv, counted, mask, out_dtype=res_dt, meta=_empty(x.ndim, res_dt)
        )
    return out, grad.astype(res_dt)


def _quiet_sum(a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """``np.sum`` without warnings (``inf + -inf`` is NaN, as in softjit)."""
    with np.errstate(all="ignore"):
        return np.sum(a, axis=axis, keepdims=keepdims)


def _sum(a: da.Array) -> da.Array:
    """The float64 sum of all of ``a`` (a 0-d dask array)."""
    return da.reduction(
        a, _quiet_sum, _quiet_sum, dtype=np.float64, meta=_empty(0, np.float64),
        name="softjit-sum",
    )


def _checked_targets(
    tb: np.ndarray, n_classes: int, ignore_index: int | None, block_info: Any = None
) -> np.ndarray:
    """One chunk of class indices, unchanged once checked: softjit's
    IndexError, naming where the chunk starts (its index is the chunk's)."""
    try:
        loss_args._class_targets(tb, n_classes, ignore_index)
    except IndexError as exc:
        start = tuple(int(lo) for lo, _ in block_info[0]["array-location"])
        raise IndexError(f"{exc} (in the chunk of target that starts at index {start})") from None
    return tb


def _ratio(num: Any, den: np.ndarray) -> np.ndarray:
    """``num / den``, NaN where ``den`` is 0 (as softjit's mean), no warnings."""
    with np.errstate(all="ignore"):
        return np.where(den != 0, np.divide(num, den, dtype=np.float64), np.nan)


def _scale_grad(
    g: np.ndarray,
    inv: np.ndarray,
    counted: np.ndarray,
    mb: np.ndarray | None,
    *,
    out_dtype: np.dtype,
) -> np.ndarray:
    """The unscaled gradient of one block times ``inv`` (1 / the mean's
    denominator).  Ignored rows, rows with no valid class and absent classes
    keep an exact +0, as the kernels write them, also when ``inv`` is not a
    positive finite number (no sample counts: NaN)."""
    with np.errstate(all="ignore"):
        res = np.multiply(g, inv, dtype=np.float64)
    if not (np.isfinite(inv) and inv > 0):
        res = np.where(counted if mb is None else counted & mb, res, 0.0)
    return res.astype(out_dtype, copy=False)


# ---------------------------------------------------- cross-entropy: class axis in one chunk


def _ce_in_one_chunk(
    x: da.Array,
    t: da.Array,
    mask: da.Array | None,
    w: da.Array | None,
    args: Any,
    want_grad: bool,
    fn: str,
) -> tuple[da.Array, da.Array, da.Array, da.Array | None]:
    """One task per block runs softjit's kernels on whole rows (unreduced,
    unscaled); returns the per-row loss, weight and counted flag (keepdims)
    and the gradient."""
    ax = args.ax
    prob = args.kind == "prob"
    inputs = [x, t] + [a for a in (mask, w) if a is not None]
    core = ["(n)", "(n)" if prob else "()"] + ["(n)"] * (len(inputs) - 2)
    axes: list[tuple[int, ...]] = [(ax,), (ax,) if prob else ()]
    axes += [(ax,)] * (mask is not None) + [(0,)] * (w is not None)
    outputs = ["()"] * 3 + ["(n)"] * want_grad
    axes += [()] * 3 + [(ax,)] * want_grad
    k_dt = kernel_dtype(result_dtype(args.x.dtype))
    meta = (_empty(0, np.float64), _empty(0, np.float64), _empty(0, np.bool_))
    meta += (_empty(1, k_dt),) * want_grad
    res = da.apply_gufunc(
        _ce_block,
        ",".join(core) + "->" + ",".join(outputs),
        *inputs,
        axes=axes,
        meta=meta,
        has_mask=mask is not None,
        has_weight=w is not None,
        eps=args.eps,
        ignore_index=args.ignore_index,
        want_grad=want_grad,
        fn=fn,
    )
    loss, row_w, counted = (da.expand_dims(r, ax) for r in res[:3])
    return loss, row_w, counted, (res[3] if want_grad else None)


def _ce_block(
    xb: np.ndarray,
    tb: np.ndarray,
    *extras: np.ndarray,
    has_mask: bool,
    has_weight: bool,
    eps: float,
    ignore_index: int | None,
    want_grad: bool,
    fn: str,
) -> tuple[np.ndarray, ...]:
    """softjit's cross-entropy of one block of whole rows (the class axis
    last): per-row float64 losses, weights in the mean and counted flags,
    and the unscaled gradient.  An out-of-range class index raises here."""
    mb = extras[0] if has_mask else None
    wb = extras[-1] if has_weight else None
    args = ce_losses.cross_entropy_args(xb, tb, -1, eps, ignore_index, wb, "none", fn)
    res = ce_losses.cross_entropy_rows(args, mb, want_grad)
    rows = tuple(r.reshape(args.reduced) for r in (res.loss, res.weight, res.counted))
    return (*rows, res.grad) if want_grad else rows


# ---------------------------------------------- cross-entropy: class axis over several chunks


def _ce_split(
    x: da.Array,
    t: da.Array,
    mask: da.Array | None,
    w: da.Array | None,
    args: Any,
    want_grad: bool,
) -> tuple[da.Array, da.Array, da.Array, da.Array | None]:
    """The class axis split over chunks: never gathered.  The partials of
    the softmax give each row's maximum and log-sum-exp; each chunk then
    adds up ``-q_c log_softmax(x)_c`` over its classes (``q`` the effective
    target mass), and the gradient is ``sum(q) softmax(x) - q``."""
    ax, nd = args.ax, x.ndim
    n_classes = x.shape[ax]
    ind = tuple(range(nd))
    along = (None,) * ax + (slice(None),) + (None,) * (nd - ax - 1)
    classes = da.arange(n_classes, chunks=(x.chunks[ax],))[along]
    wc = None if w is None else w.rechunk((x.chunks[ax],))[along]
    part = _partials(x if mask is None else da.where(mask, x, -np.inf), None, (ax,), 1.0)
    nvalid = None if mask is None else mask.sum(axis=ax, keepdims=True)
    ty = da.expand_dims(t, ax) if args.kind == "index" else None
    rows = da.blockwise(
        _ce_rows_block, ind,
        part, ind,
        ty, None if ty is None else ind,
        nvalid, None if nvalid is None else ind,
        w, None if w is None else (nd,),
        n_classes=n_classes, eps=args.eps, ignore_index=args.ignore_index,
        concatenate=True, meta=_empty(nd, _CE_ROW),
    )  # fmt: skip
    row_w, counted = (
        rows.map_blocks(_field, field=f, meta=_empty(nd, _CE_ROW[f])) for f in ("weight", "counted")
    )
    tp = t if args.kind == "prob" else None
    t_dtype = kernel_dtype(result_dtype(args.x.dtype))
    # One value per row and class chunk, then summed over the class chunks.
    per_chunk = (*x.chunks[:ax], (1,) * len(x.chunks[ax]), *x.chunks[ax + 1 :])
    by_chunk = functools.partial(
        da.map_blocks, chunks=per_chunk, ax=ax, t_dtype=t_dtype, meta=_empty(nd, np.float64)
    )
    terms = by_chunk(_ce_loss_terms, x, part, rows, tp, mask, classes, wc)
    terms = terms.sum(axis=ax, keepdims=True)
    loss = da.map_blocks(_ce_loss_rows, terms, rows, meta=_empty(nd, np.float64))
    grad = None
    if want_grad:
        total = by_chunk(_ce_mass_sum, rows, tp, mask, classes, wc).sum(axis=ax, keepdims=True)
        grad = da.map_blocks(
            _ce_grad, x, part, rows, total, tp, mask, classes, wc, t_dtype=t_dtype,
            meta=_empty(nd, np.float64),
        )
    return loss, row_w, counted, grad


def _ce_rows_block(
    part: np.ndarray,
    tb: np.ndarray | None,
    nb: np.ndarray | None,
    wb: np.ndarray | None,
    *,
    n_classes: int,
    eps: float,
    ignore_index: int | None,
) -> np.ndarray:
    """The :data:`_CE_ROW` record of each row of one block (keepdims), from
    its partials, class indices (``tb``), number of valid classes (``nb``,
    None: all) and the class weights.  An out-of-range class index raises
    here, as softjit raises it."""
    rows = part.size
    y = None if tb is None else loss_args._class_targets(tb, n_classes, ignore_index)
    w = None if wb is None else loss_args._weights(wb, n_classes)
    nvalid = None if nb is None else nb.reshape(-1)
    weight, counted = ce_losses.row_weights(
        y, w, None if nvalid is None else nvalid > 0, rows, n_classes
    )
    rec = np.zeros(part.shape, _CE_ROW)
    flat = rec.reshape(-1)
    flat["weight"], flat["counted"] = weight, counted
    m = part["max"].reshape(-1)
    flat["nan"] = np.isnan(m) | (m == -np.inf) | (part["ninf"].reshape(-1) > 1)
    flat["y"] = -1 if y is None else y
    flat["a"] = (1.0 - eps) * (weight if y is not None and w is not None else 1.0)
    with np.errstate(all="ignore"):
        flat["b"] = eps / (n_classes if nvalid is None else nvalid)
    return rec


def _ce_mass(
    rows: np.ndarray,
    tb: np.ndarray | None,
    mb: np.ndarray | None,
    cb: np.ndarray,
    wb: np.ndarray | None,
    t_dtype: np.dtype,
) -> np.ndarray:
    """The effective target mass ``q`` of each entry of one block, as the
    kernels form it: ``b w_c + a [c == y]`` for class indices,
    ``w_c (a t_c + b)`` for probabilities (read in the kernel dtype); absent
    classes get no smoothing mass ``b``."""
    b = rows["b"] if mb is None else np.where(mb, rows["b"], 0.0)
    wc = 1.0 if wb is None else wb.astype(np.float64)
    if tb is not None:
        return wc * (rows["a"] * tb.astype(t_dtype).astype(np.float64) + b)
    return b * wc + np.where(cb == rows["y"], rows["a"], 0.0)


def _ce_mass_sum(
    rows: np.ndarray,
    tb: np.ndarray | None,
    mb: np.ndarray | None,
    cb: np.ndarray,
    wb: np.ndarray | None,
    *,
    ax: int,
    t_dtype: np.dtype,
) -> np.ndarray:
    """Each row's target mass over the classes of one block (keepdims)."""
    return _ce_mass(rows, tb, mb, cb, wb, t_dtype).sum(axis=ax, keepdims=True)


def _ce_loss_terms(
    xb: np.ndarray,
    part: np.ndarray,
    rows: np.ndarray,
    tb: np.ndarray | None,
    mb: np.ndarray | None,
    cb: np.ndarray,
    wb: np.ndarray | None,
    *,
    ax: int,
    t_dtype: np.dtype,
) -> np.ndarray:
    """Each row's ``sum -q_c log_softmax(x)_c`` over the classes of one
    block with target mass (keepdims): a class without mass takes no part,
    mass on an impossible class gives ``inf``."""
    q = _ce_mass(rows, tb, mb, cb, wb, t_dtype)
    logp = _normalize_block(
        xb, part, mb, kind=Kind.LOG_SOFTMAX, temperature=1.0, out_dtype=np.dtype(np.float64)
    )
    with np.errstate(all="ignore"):
        terms = np.where(q != 0, q * -logp, 0.0)
    return terms.sum(axis=ax, keepdims=True)


def _ce_loss_rows(terms: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The loss of each row: 0 for rows that do not count, NaN for special
    rows (a NaN, only ``-inf``, several ``+inf``), else the summed terms."""
    return np.where(rows["counted"], np.where(rows["nan"], np.nan, terms), 0.0)


def _ce_grad(
    xb: np.ndarray,
    part: np.ndarray,
    rows: np.ndarray,
    total: np.ndarray,
    tb: np.ndarray | None,
    mb: np.ndarray | None,
    cb: np.ndarray,
    wb: np.ndarray | None,
    *,
    t_dtype: np.dtype,
) -> np.ndarray:
    """The unscaled float64 gradient of one block, ``sum(q) softmax(x) - q``;
    0 for rows that do not count and absent classes, NaN in special rows."""
    q = _ce_mass(rows, tb, mb, cb, wb, t_dtype)
    p = _normalize_block(
        xb, part, mb, kind=Kind.SOFTMAX, temperature=1.0, out_dtype=np.dtype(np.float64)
    )
    with np.errstate(all="ignore"):
        g = total * p - q
    return np.where(rows["counted"] if mb is None else rows["counted"] & mb, g, 0.0)


# --------------------------------------------------------------------------- margin losses


def margin_loss(
    fn: Any,
    x: Any,
    target: Any,
    axis: int,
    reduction: str,
    where: Any,
    want_grad: bool,
    options: dict[str, Any],
) -> Any:
    """A margin loss (``fn``: :func:`softjit.margin_ranking_loss_with_grad`
    or :func:`softjit.multi_margin_loss_with_grad`) of dask input, lazily:
    the class axis in one chunk, per-example losses, the gradient of their
    sum and the count of examples that take part, block by block, then
    the reduction."""
    xs = _stand_in(x)
    ax = loss_args._class_axis(axis, xs.ndim)
    # Check the arguments now, as numpy input would: shapes here, values on
    # one example of zero-strided stand-ins.
    if where is not None:
        np.broadcast_shapes(np.shape(where), xs.shape)
    if target is not None and tuple(np.shape(target)) != xs.shape[:ax] + xs.shape[ax + 1:]:
        raise ValueError(f"target with shape {np.shape(target)} does not match the logits' "
                         f"shape {xs.shape} without axis {ax}")
    one = tuple(slice(0, min(1, d)) if i != ax else slice(None) for i, d in enumerate(xs.shape))
    small: tuple[Any, ...] = (xs[one],)
    if target is not None:
        if isinstance(target, da.Array):  # class 0 stands in for the unknown values
            ts = np.broadcast_to(np.zeros((), target.dtype), target.shape)
        else:
            ts = np.asarray(target)
        small = (xs[one], ts[one[:ax] + one[ax + 1:]])
    fn(*small, axis, reduction=reduction, **options)
    xd = da.asarray(x)
    xd = xd.rechunk({ax: -1})
    keep = _chunked(np.ones(xd.shape, bool) if where is None
                    else np.broadcast_to(where, xd.shape) if not isinstance(where, da.Array)
                    else da.broadcast_to(where, xd.shape), xd.chunks)
    blocks = [xd, keep]
    if target is not None:
        reduced_chunks = xd.chunks[:ax] + xd.chunks[ax + 1:]
        td = _chunked(target if isinstance(target, da.Array) else np.asarray(target),
                      reduced_chunks)
        blocks.append(da.expand_dims(td, ax))
    res_dt = result_dtype(xs.dtype)

    def per_block(xb: np.ndarray, kb: np.ndarray, *tb: np.ndarray) -> np.ndarray:
        """Per-example loss, taking part (0/1) and the gradient of the
        summed loss, stacked on a new leading axis of length 3 + n."""
        targs = (xb,) if not tb else (xb, np.squeeze(tb[0], ax))
        loss, grad = fn(*targs, axis, reduction="none", where=kb, **options)
        taking = _taking_part(xb, kb, tb, ax, options)
        return np.concatenate([np.expand_dims(np.asarray(loss, np.float64), ax),
                               np.expand_dims(taking.astype(np.float64), ax),
                               grad.astype(np.float64)], axis=ax)

    n = xd.shape[ax]
    chunks = (*xd.chunks[:ax], (n + 2,), *xd.chunks[ax + 1:])
    packed = da.map_blocks(per_block, *blocks, dtype=np.float64, chunks=chunks)
    index = [slice(None)] * xd.ndim
    index[ax] = 0
    loss_rows = packed[tuple(index)]
    index[ax] = 1
    taking = packed[tuple(index)]
    index[ax] = slice(2, None)
    grad = packed[tuple(index)]
    if reduction == "none":
        loss = loss_rows.astype(res_dt)
    elif reduction == "sum":
        loss = loss_rows.sum().astype(res_dt)
    else:
        count = taking.sum()
        loss = (loss_rows.sum() / count).astype(res_dt)
        grad = grad / count
    if not want_grad:
        return loss
    return loss, grad.astype(res_dt)


def _taking_part(xb: np.ndarray, kb: np.ndarray, tb: tuple[np.ndarray, ...], ax: int,
                 options: dict[str, Any]) -> np.ndarray:
    """Which examples of a block count in the mean: the positive kept
    (margin ranking) or the target class kept (multi-margin)."""
    if not tb:
        return np.take(kb, options.get("positive", 0), axis=ax)
    t = np.asarray(tb[0]).astype(np.intp)
    return np.take_along_axis(kb, t, axis=ax).squeeze(ax) & kb.any(axis=ax)
