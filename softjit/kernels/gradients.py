"""Row kernels for the derivatives and losses, and their drivers.

Each ``*_row`` function works on one row (a 1-D slice along the softmax
axis) and is shared by the drivers below (serial and ``prange`` loops over
the rows of a 2-D ``(rows, n)`` array) and by the gufunc layer
(:mod:`softjit.gufuncs`).  Arithmetic is done in float64 whatever the
storage dtype.

Optional arguments (``mask``, ``weight``, ``grad``, the probability target
``t``) are ``None`` or an array; numba prunes the ``is None`` branches at
compile time, so e.g. the loss-only kernels carry no gradient stores.

Cross-entropy is written once for both kinds of target.  A row's loss is
``sum_c q_c * (lse - x_c)`` where ``lse`` is the logsumexp of the row and
``q`` the effective target mass (class weight x (smoothed) target), and
its gradient is ``Q * softmax(x) - q`` with ``Q = sum(q)``.  ``lse - x_c``
is formed as ``(m - x_c) + log1p(s)`` (``m`` the row maximum, ``s`` the sum
of the other terms' ``exp``), so huge logits lose nothing, and a class
with no mass (``q_c == 0``) takes no part in the loss even when its logit
is ``-inf``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._options import PARALLEL, SERIAL
from . import steps
from .exact import mask_row as row_of  # row r of a 2-D array, or None (numba only)

# ---------------------------------------------------------------------------
# Softmax derivatives
# ---------------------------------------------------------------------------


@njit(**SERIAL)
def not_softmax(mn, s, count, tol):
    """Whether a row whose valid entries have minimum ``mn`` and sum ``s``
    (``count`` of them) cannot be a softmax output: a negative entry, or a
    sum off 1 by more than ``tol``.  Rows with no valid entry, all zeros
    (a fully masked forward row) or a NaN pass (the forward pass gives
    them 0s or NaN)."""
    return count > 0 and (mn < 0.0 or (abs(s - 1.0) > tol and s != 0.0))


@njit(**SERIAL)
def softmax_vjp_row(y, g, out, mask, tol):
    """``out = y * (g - sum(g * y))`` over the valid entries; masked ones get 0.
    Returns whether ``y`` is not a softmax output (:func:`not_softmax`),
    found in the same pass.

    The Jacobian of softmax is symmetric, so this is also the JVP.  ``out``
    may be ``y`` or ``g`` itself: entry ``i`` is read before it is written.
    """
    d = 0.0
    s = 0.0
    mn = 0.0
    count = 0
    for i in range(y.shape[0]):
        if mask is not None and not mask[i]:
            continue
        yi = np.float64(y[i])
        d += yi * np.float64(g[i])
        s += yi
        mn = min(mn, yi)
        count += 1
    for i in range(y.shape[0]):
        if mask is not None and not mask[i]:
            out[i] = 0.0
        else:
            out[i] = np.float64(y[i]) * (np.float64(g[i]) - d)
    return not_softmax(mn, s, count, tol)


@njit(**SERIAL)
def log_softmax_vjp_row(logp, g, out, mask, tol):
    """``out = g - exp(logp) * sum(g)`` over the valid entries; masked ones
    get 0.  Returns whether ``logp`` is not a log_softmax output (an entry
    above ``tol`` or ``exp(logp)`` not summing to 1 within ``tol``)."""
    s = 0.0
    for i in range(g.shape[0]):
        if mask is not None and not mask[i]:
            continue
        s += np.float64(g[i])
    total = 0.0
    mx = -np.inf
    count = 0
    for i in range(g.shape[0]):
        if mask is not None and not mask[i]:
            out[i] = 0.0
        else:
            lp = np.float64(logp[i])
            p = math.exp(lp)
            total += p
            mx = max(mx, lp)
            count += 1
            out[i] = np.float64(g[i]) - p * s
    return not_softmax(-mx if mx > tol else 0.0, total, count, tol)


@njit(**SERIAL)
def softmax_jacobian_row(y, out, tol):
    """``out = diag(y) - outer(y, y)`` for one row ``y``; ``out`` is ``(n, n)``.
    Returns whether ``y`` is not a softmax output."""
    n = y.shape[0]
    s = 0.0
    mn = 0.0
    for i in range(n):
        yi = np.float64(y[i])
        s += yi
        mn = min(mn, yi)
        for j in range(n):
            out[i, j] = -yi * np.float64(y[j])
        out[i, i] = yi * (1.0 - yi)
    return not_softmax(mn, s, n, tol)


@njit(**SERIAL)
def softmax_vjp_rows_serial(y, g, out, mask, tol, bad):
    for r in range(y.shape[0]):
        bad[r] = softmax_vjp_row(y[r], g[r], out[r], row_of(mask, r), tol)


@njit(**PARALLEL)
def softmax_vjp_rows_parallel(y, g, out, mask, tol, bad):
    for r in prange(y.shape[0]):
        bad[r] = softmax_vjp_row(y[r], g[r], out[r], row_of(mask, r), tol)


@njit(**SERIAL)
def log_softmax_vjp_rows_serial(logp, g, out, mask, tol, bad):
    for r in range(logp.shape[0]):
        bad[r] = log_softmax_vjp_row(logp[r], g[r], out[r], row_of(mask, r), tol)


@njit(**PARALLEL)
def log_softmax_vjp_rows_parallel(logp, g, out, mask, tol, bad):
    for r in prange(logp.shape[0]):
        bad[r] = log_softmax_vjp_row(logp[r], g[r], out[r], row_of(mask, r), tol)


@njit(**SERIAL)
def softmax_jacobian_rows_serial(y, out, tol, bad):
    for r in range(y.shape[0]):
        bad[r] = softmax_jacobian_row(y[r], out[r], tol)


@njit(**PARALLEL)
def softmax_jacobian_rows_parallel(y, out, tol, bad):
    for r in prange(y.shape[0]):
        bad[r] = softmax_jacobian_row(y[r], out[r], tol)


# ---------------------------------------------------------------------------
# Cross-entropy
# ---------------------------------------------------------------------------


@njit(**SERIAL)
def fill_row(out, mask, value):
    """``value`` at the valid entries of ``out``, 0 at the masked ones."""
    for i in range(out.shape[0]):
        if mask is not None and not mask[i]:
            out[i] = 0.0
        else:
            out[i] = value


@njit(**SERIAL)
def scan_row(x, mask):
    """Return (max, number of valid entries, any NaN, number of +inf) over
    the valid entries of ``x``."""
    m = -np.inf
    nvalid = 0
    has_nan = False
    nposinf = 0
    for i in range(x.shape[0]):
        if mask is not None and not mask[i]:
            continue
        v = np.float64(x[i])
        nvalid += 1
        if v > m:
            m = v
        elif v != v:
            has_nan = True
        if v == np.inf:
            nposinf += 1
    return m, nvalid, has_nan, nposinf


@njit(**SERIAL)
def target_mass(i, t, y, w, a, b):
    """Effective target mass ``q_i`` of class ``i``.

    Class-index target (``t is None``): ``a * [i == y] + b * w_i``.
    Probability target: ``w_i * (a * t_i + b)``.  ``w_i`` is 1 without
    weights.
    """
    wi = 1.0 if w is None else np.float64(w[i])
    if t is None:
        q = b * wi
        if i == y:
            q += a
        return q
    return wi * (a * np.float64(t[i]) + b)


@njit(**SERIAL)
def cross_entropy_row(x, t, y, w, eps, scale, mask, grad):
    """Cross-entropy of the logits row ``x``; return the loss (float64) and,
    when ``grad`` is not None, write ``scale * d(loss)/dx`` into it.

    Target: the probability row ``t`` (``y`` unused), or (``t is None``)
    the class index ``y`` (``y < 0``: ignored, loss 0 and gradient 0).
    ``w``: class weights or None; ``eps``: label smoothing, spread over the
    row's valid classes.
    Masked entries (``mask`` False) are classes with probability 0: they get
    no smoothing mass, a zero gradient, and an infinite loss only if the
    target puts mass on them.  A row with no valid class is skipped like an
    ignored target.  Special rows: a NaN, a row of ``-inf`` or several
    ``+inf`` give NaN; a single ``+inf`` takes all the probability.
    """
    if t is None:
        if y < 0:
            if grad is not None:
                fill_row(grad, None, 0.0)
            return 0.0
    m, nvalid, has_nan, nposinf = scan_row(x, mask)
    if nvalid == 0:
        if grad is not None:
            fill_row(grad, None, 0.0)
        return 0.0
    if has_nan or m == -np.inf or nposinf > 1:
        if grad is not None:
            fill_row(grad, mask, np.nan)
        return np.nan
    b = eps / nvalid
    if t is None:
        a = (1.0 - eps) * (1.0 if w is None else np.float64(w[y]))
    else:
        a = 1.0 - eps
    n = x.shape[0]

    if m == np.inf:
        # Exactly one +inf: softmax is one-hot there; every other class with
        # mass has probability 0 and an infinite loss.
        total = 0.0
        loss = 0.0
        for i in range(n):
            valid = mask is None or mask[i]
            q = target_mass(i, t, y, w, a, b if valid else 0.0)
            total += q
            if q != 0.0 and not (valid and x[i] == np.inf):
                loss += q * np.inf
        if grad is not None:
            for i in range(n):
                if mask is not None and not mask[i]:
                    grad[i] = 0.0
                else:
                    p = 1.0 if x[i] == np.inf else 0.0
                    grad[i] = scale * (total * p - target_mass(i, t, y, w, a, b))
        return loss

    # Finite maximum: one pass for exp (stored in grad), the sum, the total
    # mass and sum_c q_c (m - x_c); one more to finish the gradient.
    s = 0.0
    seen_max = False
    total = 0.0
    qd = 0.0
    for i in range(n):
        if mask is not None and not mask[i]:
            q = target_mass(i, t, y, w, a, 0.0)
            if q != 0.0:  # mass on an impossible class
                total += q
                qd += q * np.inf
            continue
        v = np.float64(x[i])
        e = math.exp(v - m)
        if grad is not None:
            grad[i] = e
        if v == m and not seen_max:
            seen_max = True
        else:
            s += e
        q = target_mass(i, t, y, w, a, b)
        total += q
        if q != 0.0:
            qd += q * (m - v)
    loss = qd + total * math.log1p(s)
    if grad is not None:
        r = total / (1.0 + s)
        for i in range(n):
            if mask is not None and not mask[i]:
                grad[i] = 0.0
            else:
                grad[i] = scale * (np.float64(grad[i]) * r - target_mass(i, t, y, w, a, b))
    return loss


@njit(**SERIAL)
def cross_entropy_rows_serial(x, t, y, w, eps, scale, mask, loss, grad):
    for r in range(x.shape[0]):
        loss[r] = cross_entropy_row(
            x[r], row_of(t, r), -1 if y is None else y[r], w, eps, scale, row_of(mask, r),
            row_of(grad, r),
        )


@njit(**PARALLEL)
def cross_entropy_rows_parallel(x, t, y, w, eps, scale, mask, loss, grad):
    for r in prange(x.shape[0]):
        loss[r] = cross_entropy_row(
            x[r], row_of(t, r), -1 if y is None else y[r], w, eps, scale, row_of(mask, r),
            row_of(grad, r),
        )


@njit(**SERIAL)
def cross_entropy_index_row(x, y, scale, grad, scratch):
    """Vectorized cross-entropy of a unit-stride logits row with the class
    index ``y`` (``y < 0``: ignored), no weights, smoothing or mask; writes
    ``scale * d(loss)/dx`` into the unit-stride ``grad`` unless it is None.

    loss = (max - x[y]) + log1p(sum of the other terms), the softmax in the
    float64 ``scratch`` row; special rows go to :func:`cross_entropy_row`.
    """
    if y >= 0 and x.shape[0] > 0:
        m = steps.row_max(x)
        if -np.inf < m < np.inf:
            s, k = steps.exp_sums(x, m, 1.0, scratch)
            if s == s:
                if grad is not None:
                    steps.scale_into(scratch[:x.shape[0]], scale / (s + k), grad)
                    grad[y] = np.float64(grad[y]) - scale
                return (m - np.float64(x[y])) + math.log1p(s + (k - 1))
    return cross_entropy_row(x, None, y, None, 0.0, scale, None, grad)


@njit(**SERIAL)
def cross_entropy_index_rows_range(x, y, scale, loss, grad, lo, hi):
    n = x.shape[1]
    scratch = np.empty(n)
    xbuf = steps.row_buffer(x, n)
    if grad is None:
        for r in range(lo, hi):
            loss[r] = cross_entropy_index_row(steps.unit_row(x[r], xbuf), y[r], scale,
                                              None, scratch)
    else:
        gbuf = steps.row_buffer(grad, n)
        for r in range(lo, hi):
            g = steps.unit_row(grad[r], gbuf)
            loss[r] = cross_entropy_index_row(steps.unit_row(x[r], xbuf), y[r], scale, g,
                                              scratch)
            steps.write_back(grad[r], g)


@njit(**SERIAL)
def cross_entropy_index_rows_serial(x, y, scale, loss, grad):
    """:func:`cross_entropy_index_row` over the rows (``grad`` may be None)."""
    cross_entropy_index_rows_range(x, y, scale, loss, grad, np.int64(0), x.shape[0])


@njit(**PARALLEL)
def cross_entropy_index_rows_parallel(x, y, scale, loss, grad, nblocks):
    rows = x.shape[0]
    for b in prange(nblocks):
        cross_entropy_index_rows_range(x, y, scale, loss, grad, b * rows // nblocks,
                                       (b + 1) * rows // nblocks)


@njit(**SERIAL)
def cross_entropy_label_row(x, label, grad):
    """Unweighted cross-entropy for the gufunc layer: NaN (and a NaN
    gradient) for a label outside ``[0, n)``, since a gufunc cannot raise."""
    if label < 0 or label >= x.shape[0]:
        if grad is not None:
            fill_row(grad, None, np.nan)
        return np.nan
    scratch = np.empty(x.shape[0])
    if grad is None:
        return cross_entropy_index_row(steps.as_unit(x), label, 1.0, None, scratch)
    g = steps.as_unit(grad)
    loss = cross_entropy_index_row(steps.as_unit(x), label, 1.0, g, scratch)
    steps.write_back(grad, g)
    return loss


# ---------------------------------------------------------------------------
# Margin losses
# ---------------------------------------------------------------------------


@njit(**SERIAL)
def margin_ranking_row(s, pos, margin, scale, grad):
    """``sum_{j != pos} max(0, margin - s[pos] + s[j])``; NaN if any term is
    NaN.  ``grad`` (or None) receives ``scale`` times the gradient."""
    n = s.shape[0]
    sp = np.float64(s[pos])
    loss = 0.0
    active = 0
    bad = sp != sp
    for j in range(n):
        if j == pos:
            continue
        z = margin - sp + np.float64(s[j])
        if z > 0.0:
            loss += z
            active += 1
            if grad is not None:
                grad[j] = scale
        else:
            if z != z:
                bad = True
            if grad is not None:
                grad[j] = 0.0
    if bad:
        if grad is not None:
            fill_row(grad, None, np.nan)
        return np.nan
    if grad is not None:
        grad[pos] = -scale * active
    return loss


@njit(**SERIAL)
def multi_margin_row(x, y, p, margin, wy, scale, grad):
    """torch's multi-margin loss of one row with target class ``y``:
    ``wy * sum_{i != y} max(0, margin - x[y] + x[i])**p / n`` (``p`` 1 or 2);
    NaN if any term is NaN.  ``grad`` (or None) receives ``scale`` times
    the gradient."""
    n = x.shape[0]
    xy = np.float64(x[y])
    loss = 0.0
    gy = 0.0
    c = wy / n
    bad = xy != xy
    for i in range(n):
        if i == y:
            continue
        z = margin - xy + np.float64(x[i])
        if z > 0.0:
            if p == 1:
                loss += z
                gi = scale * c
            else:
                loss += z * z
                gi = scale * c * 2.0 * z
            gy -= gi
            if grad is not None:
                grad[i] = gi
        else:
            if z != z:
                bad = True
            if grad is not None:
                grad[i] = 0.0
    if bad:
        if grad is not None:
            fill_row(grad, None, np.nan)
        return np.nan
    if grad is not None:
        grad[y] = gy
    return c * loss


@njit(**SERIAL)
def margin_ranking_rows_serial(s, pos, margin, scale, loss, grad):
    for r in range(s.shape[0]):
        loss[r] = margin_ranking_row(s[r], pos, margin, scale, row_of(grad, r))


@njit(**PARALLEL)
def margin_ranking_rows_parallel(s, pos, margin, scale, loss, grad):
    for r in prange(s.shape[0]):
        loss[r] = margin_ranking_row(s[r], pos, margin, scale, row_of(grad, r))


@njit(**SERIAL)
def multi_margin_rows_serial(x, y, p, margin, w, scale, loss, grad):
    for r in range(x.shape[0]):
        wy = 1.0 if w is None else np.float64(w[y[r]])
        loss[r] = multi_margin_row(x[r], y[r], p, margin, wy, scale, row_of(grad, r))


@njit(**PARALLEL)
def multi_margin_rows_parallel(x, y, p, margin, w, scale, loss, grad):
    for r in prange(x.shape[0]):
        wy = 1.0 if w is None else np.float64(w[y[r]])
        loss[r] = multi_margin_row(x[r], y[r], p, margin, wy, scale, row_of(grad, r))


@njit(**SERIAL)
def margin_ranking_gufunc_row(s, pos, margin):
    """Loss of one row for the gufunc layer; NaN for ``pos`` outside ``[0, n)``."""
    if pos < 0 or pos >= s.shape[0]:
        return np.nan
    return margin_ranking_row(s, pos, np.float64(margin), 1.0, None)


@njit(**SERIAL)
def multi_margin_gufunc_row(x, y, margin):
    """p=1, unweighted loss of one row for the gufunc layer; NaN for ``y``
    outside ``[0, n)``."""
    if y < 0 or y >= x.shape[0]:
        return np.nan
    return multi_margin_row(x, y, 1, np.float64(margin), 1.0, 1.0, None)
