"""Vectorizable math primitives of the kernels: ``exp`` of the shifted
terms, ``log1p`` of the sums, and error-free transformations.

numba's ``math.exp`` compiles to a scalar libm call inside loops (there is
no SVML), so the kernels use these polynomial versions, which LLVM turns
into AVX2/AVX-512 code:

* range reduction ``x = k*ln2 + r``, ``|r| <= ln2/2``: ``k`` is rounded by
  adding ``1.5 * 2**52``, whose low bits then hold ``k`` as an integer, so
  no float-to-int conversion (scalar on AVX2) is needed; ``r`` uses ln2
  split in two constants (Cody and Waite);
* a polynomial for ``exp(r)`` (fitted at Chebyshev nodes, evaluated with
  Estrin's scheme for a short dependency chain);
* ``2**k`` built in the exponent bits, applied as two factors so that
  subnormal results are rounded once and correctly.

Two ``exp`` serve the kernels: :func:`exp_neg_f64_2` (float64 results,
within 1 ulp, of an exact double-double argument) and
:func:`exp_neg_f64_for_f32` (results rounded to float32 later: relative
error about 1e-8).  Both take arguments ``<= 0`` (the kernels' ``x - max``);
below the underflow bound they give 0 (``-inf`` included); NaN stays NaN.

These functions must not be compiled with the ``reassoc`` fast-math flag,
which would fold the rounding constant and the Cody-Waite correction away;
the flag set in :mod:`softjit._options` omits it, and flags stay attached
to the instructions when LLVM inlines these functions into kernels that use
it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._options import SERIAL, SERIAL_INLINE, STRICT, STRICT_INLINE
from ._llvm import f64_as_i64, i64_as_f64

# float64 constants
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln2 with its low 32 bits cleared
_LN2_LO = 1.90821492927058770002e-10  # ln2 - _LN2_HI
_SHIFT64 = 6755399441055744.0  # 1.5 * 2**52
_SHIFT64_BITS = 0x4338000000000000
_EXP64_LO = -746.0  # exp(x) rounds to 0 below about -745.13


# exp(r) = 1 + r + r**2 * q(r) on |r| <= ln2/2, q a polynomial fitted by
# interpolation at Chebyshev nodes in 200-bit arithmetic (mpmath).  Maximum
# relative error of 1 + r + r**2 q(r) with these float64 coefficients:
# degree 9: 1.6e-17 (0.15 ulp); degree 4: 1.0e-8.
_Q9 = (0.5000000000000001, 0.16666666666666669, 0.041666666666624164,
       0.008333333333330065, 0.0013888888917196881, 0.0001984126986304067,
       2.4801521322116825e-05, 2.7557268480116333e-06, 2.762007599981065e-07,
       2.5100375924709717e-08)
_Q4 = (0.5, 0.16666577025255677, 0.04166655466162291, 0.00836317313152351,
       0.0013926176191150312)


@njit(**SERIAL_INLINE)
def _reduce_f64(xc):
    """``(r, r_lo, k)`` with ``xc = k*ln2 + r + r_lo``, ``|r| <= ln2/2``.

    ``k*ln2_hi`` is exact (ln2_hi has 32 trailing zero bits) and so is its
    difference with ``xc``; ``r_lo`` is the rounding error of ``r``.
    """
    t = xc * _LOG2E + _SHIFT64
    kf = t - _SHIFT64
    k = f64_as_i64(t) - _SHIFT64_BITS
    r1 = xc - kf * _LN2_HI
    corr = kf * _LN2_LO
    r = r1 - corr
    return r, (r1 - r) - corr, k


@njit(**SERIAL_INLINE)
def _exp_reduced_q9(r, r_lo):
    """``exp(r + r_lo)`` for ``|r| <= ln2/2``: ``1 + r`` is summed exactly
    and everything else added to its rounding error, so the result is
    rounded once (relative error of the polynomial: 1.6e-17).

    ``exp(r + r_lo) = p * (1 + r_lo)`` to first order, ``p = 1 + r + r**2 q``:
    the correction ``r_lo * (r + r**2 q)`` matters when ``r_lo`` carries the
    low part of an exact ``x - max`` (up to half an ulp of ``|x - max|``,
    e.g. 5.7e-14 at 400: without it the error reaches 150 ulp there)."""
    q = _Q9
    r2 = r * r
    r4 = r2 * r2
    b03 = (q[0] + q[1] * r) + r2 * (q[2] + q[3] * r)
    b47 = (q[4] + q[5] * r) + r2 * (q[6] + q[7] * r)
    poly = (b03 + r4 * b47) + (r4 * r4) * (q[8] + q[9] * r)
    one_r = 1.0 + r
    tail = r + r2 * poly
    return one_r + (((1.0 - one_r) + r) + ((r_lo + r_lo * tail) + r2 * poly))


@njit(**SERIAL_INLINE)
def _times_pow2(p, k):
    """``p * 2**k`` rounded once, also for subnormal results (two factors)."""
    k2 = k >> 1
    k1 = k - k2
    return p * i64_as_f64((k1 + 1023) << 52) * i64_as_f64((k2 + 1023) << 52)


@njit(**SERIAL_INLINE)
def two_diff(a, b):
    """``(d, err)`` with ``d + err == a - b`` exactly (Knuth's TwoSum)."""
    d = a - b
    bb = d - a
    return d, (a - (d - bb)) - (b + bb)


@njit(**SERIAL_INLINE)
def two_sum(a, b):
    """``(s, err)`` with ``s + err == a + b`` exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


_SPLITTER = 134217729.0  # 2**27 + 1 (Veltkamp's splitting)


@njit(**STRICT_INLINE)
def two_prod(a, b):
    """``(p, err)`` with ``p + err == a * b`` exactly (Dekker), without a
    fused multiply-add (no fast-math flags: no contraction either)."""
    p = a * b
    t = _SPLITTER * a
    ah = t - (t - a)
    al = a - ah
    t = _SPLITTER * b
    bh = t - (t - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(**STRICT)
def reciprocal2(s, s_lo):
    """``1 / (s + s_lo)`` for a double-double (``|s_lo| <= ulp(s) / 2``),
    within about half an ulp: ``r = 1 / s`` and one Newton step, whose
    residual ``1 - r * (s + s_lo)`` is formed exactly enough."""
    r = 1.0 / s
    p, p_lo = two_prod(r, s)
    return r + r * (((1.0 - p) - p_lo) - r * s_lo)


@njit(**SERIAL)
def exp_neg_f64_2(d, d_lo):
    """``exp(d + d_lo)`` for ``d <= 0`` with ``d_lo`` a small correction:
    the kernels pass ``x - max`` as an exact double-double, so that the
    rounding of the subtraction (relative error ``|x - max| * 2**-53`` in
    the result) does not reach the result.  NaN propagates."""
    low = d < _EXP64_LO  # clamped: the result is 0, drop the correction
    r, r_lo, k = _reduce_f64(_EXP64_LO if low else d)
    return _times_pow2(_exp_reduced_q9(r, r_lo + (0.0 if low else d_lo)), k)


# log1p for the kernels' sums: log1p(a) with a >= 0 (a = sum of the terms
# below the maximum plus the count of the others, less one).
_SQRT2 = 1.4142135623730951
_LN2_HI_LOG = 6.93147180369123816490e-01  # ln2 split in two: k * _LN2_HI_LOG is exact
_LN2_LO_LOG = 1.90821492927058770002e-10
# log(f) = 2 atanh(s) = 2s + s * R(s**2), s = (f - 1) / (f + 1), with
# R(z) = sum_{j >= 1} 2 z**j / (2j + 1); |s| <= 0.1716, so z <= 0.0295 and
# twelve terms leave a truncation below 1e-19 of the result.
_LOG_R = tuple(2.0 / (2 * j + 1) for j in range(1, 13))


@njit(**STRICT)
def log1p_pos(a):
    """``log1p(a)`` for finite ``a >= 0``, within 1 ulp, without a library
    call, so that loops over rows vectorize.

    ``u = 1 + a`` rounded, and its rounding error ``c`` (exact: a
    Fast2Sum) enters as ``c / u``; ``u = 2**k * f`` with ``f`` in
    ``[sqrt(2)/2, sqrt(2))`` and ``log(f) = g - g**2/2 + s * (g**2/2 + R)``
    (``g = f - 1``, exact), the large terms summed last.
    """
    u = 1.0 + a
    c = (1.0 - (u - a)) if a >= 1.0 else (a - (u - 1.0))
    bits = f64_as_i64(u)
    k = (bits >> 52) - 1023
    f = i64_as_f64((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = f > _SQRT2
    f = f * (0.5 if big else 1.0)
    k = k + (1 if big else 0)
    g = f - 1.0
    sg = g / (2.0 + g)
    z = sg * sg
    q = _LOG_R
    r = q[11]
    for j in range(10, -1, -1):
        r = r * z + q[j]
    r = r * z
    hfsq = 0.5 * g * g
    kf = np.float64(k)
    return kf * _LN2_HI_LOG - ((hfsq - (sg * (hfsq + r) + (kf * _LN2_LO_LOG + c / u))) - g)


_EXP_F32_LO = -708.0  # exp(-708)/s rounds to 0 in float32 like any smaller value
_LN2 = 0.6931471805599453


@njit(**SERIAL)
def exp_neg_f64_for_f32(x):
    """``exp(x)`` in float64 for ``x <= 0``, relative error about 1e-8.

    For results that are rounded to float32 (an ulp is at least 6e-8 in
    relative terms, so this adds at most 0.17 ulp to the final rounding's
    0.5): a shorter
    polynomial, ln2 in one constant (the fused multiply-add keeps the
    reduction error near 1e-14), and arguments clamped at -708, whose
    result already rounds to 0 in float32, so ``2**k`` is one normal factor.
    NaN propagates as in :func:`exp_neg_f64_2`.
    """
    xc = _EXP_F32_LO if x < _EXP_F32_LO else x  # NaN propagates
    t = xc * _LOG2E + _SHIFT64
    kf = t - _SHIFT64
    r = xc - kf * _LN2
    q = _Q4
    r2 = r * r
    poly = (q[0] + q[1] * r) + r2 * ((q[2] + q[3] * r) + r2 * q[4])
    return (1.0 + (r + r2 * poly)) * i64_as_f64((f64_as_i64(t) - _SHIFT64_BITS + 1023) << 52)


