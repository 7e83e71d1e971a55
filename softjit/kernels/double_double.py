"""Double-double arithmetic for float64 logsumexp where its result is near 0.

``logsumexp(x) = m + log(sum(exp(x - m)))`` with ``m = max(x)``: when ``m``
is negative and the logarithm nearly cancels it (log-probabilities that
sum to about 1, say), the float64 sum and logarithm, each within an ulp of
their own magnitude, leave an error of many ulps of the small result.
:func:`logsumexp_dd` recomputes such a row with every step carried as a
double-double (an unevaluated sum ``hi + lo`` of two float64, about 106
bits), so that the final rounding to float64 is the only one that matters
for results down to about ``|m| * 2**-40``.

A double-double is a pair ``(hi, lo)`` with ``|lo| <= ulp(hi) / 2``.  The
algorithms are the classic ones (Dekker 1971; Knuth, TAOCP vol. 2,
4.2.2; Bailey's QD library's "sloppy" add and mul), with relative errors
near ``2**-104`` per operation.  Compiled without fast-math flags: the
error-free transformations rely on every rounding happening as written.

References
----------
T. J. Dekker, "A floating-point technique for extending the available
precision", Numerische Mathematik 18 (1971).
Y. Hida, X. S. Li, D. H. Bailey, "Library for double-double and
quad-double arithmetic" (2007).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .._options import STRICT, STRICT_INLINE
from ._llvm import f64_as_i64, fma, i64_as_f64
from .primitives import two_diff, two_sum

# ln2 as a double-double (hi, lo), to 106 bits.
_LN2_HI = 0.6931471805599453
_LN2_LO = 2.3190468138462996e-17
# 1/n! as double-doubles for n = 2 .. 9 (hi, lo): the Taylor coefficients
# of expm1 that carry more than float64 precision into the sum.
_INV_FACT = (
    (0.5, 0.0),
    (0.16666666666666666, 9.25185853854297e-18),
    (0.041666666666666664, 2.3129646346357427e-18),
    (0.008333333333333333, 1.1564823173178714e-19),
    (0.001388888888888889, -5.300543954373577e-20),
    (0.0001984126984126984, 1.7209558293420705e-22),
    (2.48015873015873e-05, 2.1511947866775882e-23),
    (2.7557319223985893e-06, -1.858393274046472e-22),
)
# Halvings of the reduced argument before the series (and squarings after).
_HALVINGS = 6
_LOG2E = 1.4426950408889634
_SHIFT64 = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_SHIFT64_BITS = 0x4338000000000000
_EXP_LO = -746.0  # exp(d) rounds to 0 below about -745.13


@njit(**STRICT_INLINE)
def fast_two_sum(a, b):
    """``(s, err)`` with ``s + err == a + b`` exactly, for ``|a| >= |b|``."""
    s = a + b
    return s, b - (s - a)


@njit(**STRICT_INLINE)
def two_prod_fma(a, b):
    """``(p, err)`` with ``p + err == a * b`` exactly (one fused multiply-add)."""
    p = a * b
    return p, fma(a, b, -p)


@njit(**STRICT_INLINE)
def dd_add(ah, al, bh, bl):
    """``(ah, al) + (bh, bl)``."""
    s, e = two_sum(ah, bh)
    e += al + bl
    return fast_two_sum(s, e)


@njit(**STRICT_INLINE)
def dd_mul(ah, al, bh, bl):
    """``(ah, al) * (bh, bl)``."""
    p, e = two_prod_fma(ah, bh)
    e += ah * bl + al * bh
    return fast_two_sum(p, e)


@njit(**STRICT_INLINE)
def _horner(ch, cl, ph, pl, rh, rl):
    """``(c + p) * r`` in double-double."""
    sh, sl = dd_add(ch, cl, ph, pl)
    return dd_mul(sh, sl, rh, rl)


@njit(**STRICT_INLINE)
def expm1_dd_small(rh, rl):
    """``expm1(r)`` of a double-double ``|r| <= ln2 / 2**(_HALVINGS + 1)``.

    The Taylor series up to ``r**10 / 10!``: the first term left out,
    ``r**11 / 11!``, is below ``2**-100`` of the result for
    ``|r| <= 0.0055``; coefficients to ``1/9!`` are double-doubles, the last
    one a float64 (its rounding is far below the result's precision).
    """
    c = _INV_FACT
    # Horner, p = 1/(j+2)! + r * p, written out (a loop over the tuple
    # would keep LLVM from vectorizing the callers' loops).  The terms from
    # r**7/7! on are below 2**-53 of the result: plain float64 suffices.
    tail = c[5][0] + rh * (c[6][0] + rh * (c[7][0] + rh * (1.0 / 3628800.0)))
    ph, pl = dd_mul(tail, 0.0, rh, rl)
    ph, pl = _horner(c[4][0], c[4][1], ph, pl, rh, rl)
    ph, pl = _horner(c[3][0], c[3][1], ph, pl, rh, rl)
    ph, pl = _horner(c[2][0], c[2][1], ph, pl, rh, rl)
    ph, pl = _horner(c[1][0], c[1][1], ph, pl, rh, rl)
    ph, pl = _horner(c[0][0], c[0][1], ph, pl, rh, rl)  # r/2! + r**2/3! + ...
    ph, pl = dd_add(1.0, 0.0, ph, pl)
    return dd_mul(ph, pl, rh, rl)


@njit(**STRICT_INLINE)
def _double(eh, el):
    """``expm1(2r)`` from ``e = expm1(r)``: ``e * (2 + e)``."""
    sh, sl = dd_add(2.0, 0.0, eh, el)
    return dd_mul(eh, el, sh, sl)


@njit(**STRICT_INLINE)
def exp_dd(dh, dl):
    """``exp(d)`` of a double-double ``d <= 0`` as a double-double, relative
    error about ``2**-100`` (less where the result is subnormal); 0 below
    the float64 range.  Branch-free, so that loops over terms vectorize.

    ``d = k ln2 + r`` (``r`` in double-double, ln2 to 106 bits), ``r``
    halved ``_HALVINGS`` times (exact), ``expm1`` of it by its series, then
    ``expm1(2r) = expm1(r) * (2 + expm1(r))`` undoes the halvings without
    losing the relative precision of the small values, and ``2**k`` scales
    (two factors, each a normal float64).
    """
    low = dh < _EXP_LO
    dc = _EXP_LO if low else dh
    t = dc * _LOG2E + _SHIFT64
    kf = t - _SHIFT64
    k = f64_as_i64(t) - _SHIFT64_BITS
    th, tl = two_prod_fma(kf, -_LN2_HI)
    rh, rl = dd_add(dc, 0.0 if low else dl, th, tl - kf * _LN2_LO)
    scale = 2.0 ** -_HALVINGS
    eh, el = expm1_dd_small(rh * scale, rl * scale)
    eh, el = _double(eh, el)  # _HALVINGS times, written out (see above)
    eh, el = _double(eh, el)
    eh, el = _double(eh, el)
    eh, el = _double(eh, el)
    eh, el = _double(eh, el)
    eh, el = _double(eh, el)
    eh, el = dd_add(1.0, 0.0, eh, el)
    k1 = k >> 1
    f1 = i64_as_f64((k1 + 1023) << 52)
    f2 = i64_as_f64((k - k1 + 1023) << 52) * (0.0 if low else 1.0)
    return (eh * f1) * f2, (el * f1) * f2


@njit(**STRICT)
def exp_dd_terms(x, m, hi, lo):
    """``hi[i] + lo[i] = exp(x[i] - m)`` in double-double (``x - m`` formed
    exactly): a pure map, vectorized."""
    for i in range(x.shape[0]):
        dh, dl = two_diff(x[i], m)
        hi[i], lo[i] = exp_dd(dh, dl)


@njit(**STRICT)
def log_dd(sh, sl):
    """``log(s)`` of a positive double-double, as a double-double: the
    float64 ``log`` and one Newton step ``y + (s - exp(y)) / exp(y)``,
    which doubles its precision (``exp(y) <= 1`` is all :func:`exp_dd`
    needs: ``y`` of a sum of terms with one term equal to 1 is >= 0, so
    the step is taken from ``-y``)."""
    y = math.log(sh)
    eh, el = exp_dd(-y, 0.0)  # 1 / exp(y)
    ph, pl = dd_mul(sh, sl, eh, el)  # s / exp(y), about 1
    return fast_two_sum(y, (ph - 1.0) + pl)


@njit(**STRICT)
def logsumexp_dd(x, m):
    """``logsumexp`` of the float64 row ``x`` with maximum ``m`` (finite),
    every step in double-double, rounded once to float64 at the end."""
    n = x.shape[0]
    hi = np.empty(n)
    lo = np.empty(n)
    exp_dd_terms(x, m, hi, lo)
    sh = 0.0
    sl = 0.0
    for i in range(n):
        sh, err = two_sum(sh, hi[i])
        sl += err + lo[i]
    sh, sl = fast_two_sum(sh, sl)
    lh, ll = log_dd(sh, sl)
    rh, rl = dd_add(m, 0.0, lh, ll)
    return rh + rl


@njit(**STRICT)
def cancels(m, lse):
    """Whether float64 ``lse = m + log(sum)`` lost precision to
    cancellation (``m < 0`` and ``log(sum) = lse - m`` more than half of
    ``|lse|``): the cases :func:`logsumexp_dd` recomputes.  Elsewhere the
    float64 steps leave at most about 2 ulp of the result."""
    return m < 0.0 and (lse - m) > 0.5 * abs(lse)
