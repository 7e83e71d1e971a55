"""Vectorizable math primitives for the kernels: ``exp`` in float32 and
float64, bit casts, and a re-typing of unit-stride views.

numba's ``math.exp`` compiles to a scalar libm call inside loops (there is
no SVML), so the kernels use these polynomial versions, which LLVM turns
into AVX2/AVX-512 code:

* range reduction ``x = k*ln2 + r``, ``|r| <= ln2/2``: ``k`` is rounded by
  adding ``1.5 * 2**52`` (``2**23`` for float32), whose low bits then hold
  ``k`` as an integer, so no float-to-int conversion (scalar on AVX2) is
  needed; ``r`` uses ln2 split in two constants (Cody and Waite);
* a polynomial for ``exp(r)`` (fitted at Chebyshev nodes, evaluated with
  Estrin's scheme for a short dependency chain);
* ``2**k`` built in the exponent bits, applied as two factors so that
  subnormal results are rounded once and correctly.

Inputs below the underflow bound give 0 (``-inf`` included), above the
overflow bound ``inf``; NaN stays NaN.  These functions must not be
compiled with the ``reassoc`` fast-math flag, which would fold the
rounding constant and the Cody-Waite correction away; the flag set in
:mod:`softjit._options` omits it, and flags stay attached to the
instructions when LLVM inlines these functions into kernels that use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._options import SERIAL, STRICT


@intrinsic
def f64_as_i64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def i64_as_f64(typingctx, x):
    """Reinterpret the bits of an int64 as a float64."""
    if x != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def f32_as_i32(typingctx, x):
    """Reinterpret the bits of a float32 as an int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def i32_as_f32(typingctx, x):
    """Reinterpret the low 32 bits of an integer as a float32.

    (numba widens int32 arithmetic to int64, so any integer is accepted.)
    """
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if sig.args[0].bitwidth != 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(x), codegen


def _same_array(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    """Code of an intrinsic that returns its array argument as another
    array type of the same memory layout (a new reference to it)."""
    src = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0])
    dst = cgutils.create_struct_proxy(sig.return_type)(context, builder)
    for field in ("meminfo", "parent", "nitems", "itemsize", "data", "shape", "strides"):
        setattr(dst, field, getattr(src, field))
    value = dst._getvalue()
    context.nrt.incref(builder, sig.return_type, value)
    return value


@intrinsic
def unit_stride_view(typingctx, arr):
    """The 1-D array ``arr`` typed as C-contiguous (same data, no copy).

    The caller guarantees that ``arr.strides[0] == arr.itemsize``; numba
    then compiles contiguous (vectorizable) loops for it.  Rows of gufunc
    arguments and of strided 2-D views arrive typed as any-layout.
    """
    if not (isinstance(arr, types.Array) and arr.ndim == 1):
        return None
    # Typed writable so that it unifies with scratch buffers; the kernels
    # never write to their input.
    ret = arr.copy(layout="C", readonly=False)
    return ret(arr), _same_array


@intrinsic
def read_only_view(typingctx, arr):
    """``arr`` typed read-only (same data, no copy).  numba compiles a
    function once for read-only and once for writable arrays; callers that
    hold a writable array pass it on read-only, so that one compilation
    serves them and the callers whose input is read-only."""
    if not isinstance(arr, types.Array):
        return None
    return arr.copy(readonly=True)(arr), _same_array


def _borrowed(context: Any, builder: Any, typ: Any, src: Any, offset: Any, n: Any) -> Any:
    """A borrowed unit-stride 1-D array of type ``typ``: ``n`` elements of
    the array ``src`` from ``offset`` bytes on, with no reference (null
    meminfo: numba's reference counting skips it)."""
    dst = cgutils.create_struct_proxy(typ)(context, builder)
    dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
    dst.parent = cgutils.get_null_value(dst.parent.type)
    dst.nitems = n
    dst.itemsize = src.itemsize
    dst.data = cgutils.pointer_add(builder, src.data, offset)
    dst.shape = cgutils.pack_array(builder, [n])
    dst.strides = cgutils.pack_array(builder, [src.itemsize])
    return dst._getvalue()


@intrinsic
def line_view(typingctx, arr, j, start, count):
    """``arr[j, start:start + count]`` of the 2-D ``arr`` as a 1-D array
    typed C-contiguous, *borrowed*: it holds no reference (no reference
    count to update, which would cost more than a short loop over it), so
    it must not outlive ``arr`` in the caller.  The caller guarantees unit
    stride along the second axis (``arr.strides[1] == arr.itemsize``) and
    the bounds.  Typed writable, as :func:`unit_stride_view`: the kernels
    never write to their input."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2
            and all(isinstance(a, types.Integer) for a in (j, start, count))):
        return None
    ret = arr.copy(ndim=1, layout="C", readonly=False)

    def codegen(context, builder, sig, args):
        src = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0])
        strides = cgutils.unpack_tuple(builder, src.strides, 2)
        jj, lo, n = (context.cast(builder, v, t, types.intp)
                     for v, t in zip(args[1:], sig.args[1:], strict=True))
        offset = builder.add(builder.mul(jj, strides[0]), builder.mul(lo, src.itemsize))
        return _borrowed(context, builder, sig.return_type, src, offset, n)

    return ret(arr, j, start, count), codegen


@intrinsic
def span_view(typingctx, arr, start, count):
    """``arr[start:start + count]`` of the unit-stride 1-D ``arr``, typed
    C-contiguous and borrowed, as :func:`line_view` (no reference count;
    the caller keeps ``arr`` alive and the bounds)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1
            and all(isinstance(a, types.Integer) for a in (start, count))):
        return None
    ret = arr.copy(layout="C", readonly=False)

    def codegen(context, builder, sig, args):
        src = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0])
        lo, n = (context.cast(builder, v, t, types.intp)
                 for v, t in zip(args[1:], sig.args[1:], strict=True))
        return _borrowed(context, builder, sig.return_type, src, builder.mul(lo, src.itemsize), n)

    return ret(arr, start, count), codegen


#: Bytes of a cache line (x86-64 and most 64-bit CPUs).
CACHE_LINE = 64


@intrinsic
def prefetch(typingctx, arr, i):
    """Ask the CPU to bring the cache line of ``arr[i]`` (1-D ``arr``) into
    the caches, for a read soon (``llvm.prefetch``: a hint, with no effect
    on results; the caller keeps ``i`` in bounds)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        idx = context.cast(builder, args[1], sig.args[1], types.intp)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0")
        # read, keep in every cache level, data cache
        builder.call(fn, [builder.bitcast(builder.gep(a.data, [idx]), i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, i), codegen


# float64 constants
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln2 with its low 32 bits cleared
_LN2_LO = 1.90821492927058770002e-10  # ln2 - _LN2_HI
_SHIFT64 = 6755399441055744.0  # 1.5 * 2**52
_SHIFT64_BITS = 0x4338000000000000
_EXP64_LO = -746.0  # exp(x) rounds to 0 below about -745.13
_EXP64_HI = 710.0  # and overflows above about 709.78

# exp(r) = 1 + r + r**2 * q(r) on |r| <= ln2/2, q a polynomial fitted by
# interpolation at Chebyshev nodes in 200-bit arithmetic (mpmath).  Maximum
# relative error of 1 + r + r**2 q(r) with these float64 coefficients:
# degree 9: 1.6e-17 (0.15 ulp); degree 5: 2.2e-10; degree 4: 1.0e-8.
_Q9 = (0.5000000000000001, 0.16666666666666669, 0.041666666666624164,
       0.008333333333330065, 0.0013888888917196881, 0.0001984126986304067,
       2.4801521322116825e-05, 2.7557268480116333e-06, 2.762007599981065e-07,
       2.5100375924709717e-08)
_Q5 = (0.5000000013457804, 0.16666666681614342, 0.041666465005270034,
       0.008333310934363356, 0.0013933641117472883, 0.00019890980964683147)
_Q4 = (0.5, 0.16666577025255677, 0.04166655466162291, 0.00836317313152351,
       0.0013926176191150312)


@njit(**SERIAL)
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


@njit(**SERIAL)
def _exp_reduced_q9(r, r_lo):
    """``exp(r + r_lo)`` for ``|r| <= ln2/2``: ``1 + r`` is summed exactly
    and everything else added to its rounding error, so the result is
    rounded once (relative error of the polynomial: 1.6e-17)."""
    q = _Q9
    r2 = r * r
    r4 = r2 * r2
    b03 = (q[0] + q[1] * r) + r2 * (q[2] + q[3] * r)
    b47 = (q[4] + q[5] * r) + r2 * (q[6] + q[7] * r)
    poly = (b03 + r4 * b47) + (r4 * r4) * (q[8] + q[9] * r)
    one_r = 1.0 + r
    return one_r + (((1.0 - one_r) + r) + (r_lo + r2 * poly))


@njit(**SERIAL)
def _times_pow2(p, k):
    """``p * 2**k`` rounded once, also for subnormal results (two factors)."""
    k2 = k >> 1
    k1 = k - k2
    return p * i64_as_f64((k1 + 1023) << 52) * i64_as_f64((k2 + 1023) << 52)


@njit(**SERIAL)
def exp_f64(x):
    """``exp(x)`` for float64, within 1 ulp; vectorizes in loops."""
    r, r_lo, k = _reduce_f64(min(max(x, _EXP64_LO), _EXP64_HI))
    y = _times_pow2(_exp_reduced_q9(r, r_lo), k)
    return x if x != x else y


@njit(**SERIAL)
def exp_neg_f64(x):
    """:func:`exp_f64` for ``x <= 0`` (``-inf`` included): the kernels'
    shifted arguments ``x - max`` are never positive.  A NaN argument gives
    NaN (through the polynomial, with no extra select), which the kernels
    detect in their sums."""
    # NaN fails the comparison and propagates through the polynomial.
    r, r_lo, k = _reduce_f64(_EXP64_LO if x < _EXP64_LO else x)
    return _times_pow2(_exp_reduced_q9(r, r_lo), k)


@njit(**SERIAL)
def two_diff(a, b):
    """``(d, err)`` with ``d + err == a - b`` exactly (Knuth's TwoSum)."""
    d = a - b
    bb = d - a
    return d, (a - (d - bb)) - (b + bb)


@njit(**SERIAL)
def two_sum(a, b):
    """``(s, err)`` with ``s + err == a + b`` exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


_SPLITTER = 134217729.0  # 2**27 + 1 (Veltkamp's splitting)


@njit(**STRICT)
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
    NaN propagates as in :func:`exp_neg_f64`.
    """
    xc = _EXP_F32_LO if x < _EXP_F32_LO else x  # NaN propagates
    t = xc * _LOG2E + _SHIFT64
    kf = t - _SHIFT64
    r = xc - kf * _LN2
    q = _Q4
    r2 = r * r
    poly = (q[0] + q[1] * r) + r2 * ((q[2] + q[3] * r) + r2 * q[4])
    return (1.0 + (r + r2 * poly)) * i64_as_f64((f64_as_i64(t) - _SHIFT64_BITS + 1023) << 52)


# float32 constants
_LOG2E_F = np.float32(1.44269504)
_LN2_HI_F = np.float32(0.693145752)  # ln2 with its low 12 bits cleared
_LN2_LO_F = np.float32(1.42860677e-06)  # ln2 - _LN2_HI_F
_SHIFT32 = np.float32(12582912.0)  # 1.5 * 2**23
_SHIFT32_BITS = np.int32(0x4B400000)
_EXP32_LO = np.float32(-104.0)  # exp(x) rounds to 0 below about -103.97
_EXP32_HI = np.float32(89.0)  # and overflows above about 88.72
_Q5_F = tuple(np.float32(c) for c in _Q5)
_ONE_F = np.float32(1.0)


@njit(**SERIAL)
def exp_f32(x):
    """``exp(x)`` for float32 in float32 arithmetic, within 1 ulp."""
    xc = min(max(x, _EXP32_LO), _EXP32_HI)
    t = xc * _LOG2E_F + _SHIFT32
    kf = t - _SHIFT32
    k = f32_as_i32(t) - _SHIFT32_BITS
    r1 = xc - kf * _LN2_HI_F
    corr = kf * _LN2_LO_F
    r = r1 - corr
    r_lo = (r1 - r) - corr
    q = _Q5_F
    r2 = r * r
    poly = (q[0] + q[1] * r) + r2 * ((q[2] + q[3] * r) + r2 * (q[4] + q[5] * r))
    one_r = _ONE_F + r
    p = one_r + (((_ONE_F - one_r) + r) + (r_lo + r2 * poly))
    k2 = k >> 1
    k1 = k - k2
    y = p * i32_as_f32((k1 + 127) << 23) * i32_as_f32((k2 + 127) << 23)
    return x if x != x else y


def _is_x86() -> bool:
    import llvmlite.binding as llvm

    return llvm.get_process_triple().split("-")[0] in ("x86_64", "i386", "i686")


_MXCSR_FLAGS = 0x3F  # the six exception-status bits of the SSE control register


@intrinsic
def fp_flags_save(typingctx):
    """The CPU's floating-point exception flags (x86 MXCSR; 0 elsewhere).

    Vectorized comparisons and max on NaN raise the "invalid" flag, which
    numpy turns into a RuntimeWarning after a gufunc loop.  The gufunc
    cores save the flags on entry and restore them on exit, so softjit
    never triggers such a warning.
    """

    def codegen(context, builder, sig, args):
        if not _is_x86():
            return ir.Constant(ir.IntType(32), 0)
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()]),
            "llvm.x86.sse.stmxcsr")
        builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])
        return builder.load(slot)

    return types.int32(), codegen


@intrinsic
def fp_flags_restore(typingctx, saved):
    """Set the exception flags back to ``saved`` (from :func:`fp_flags_save`)."""
    if saved != types.int32:
        return None

    def codegen(context, builder, sig, args):
        if _is_x86():
            i8p = ir.IntType(8).as_pointer()
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            fnty = ir.FunctionType(ir.VoidType(), [i8p])
            stm = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
            ldm = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
            builder.call(stm, [builder.bitcast(slot, i8p)])
            current = builder.load(slot)
            keep = builder.and_(current, ir.Constant(ir.IntType(32), ~_MXCSR_FLAGS & 0xFFFFFFFF))
            flags = builder.and_(args[0], ir.Constant(ir.IntType(32), _MXCSR_FLAGS))
            builder.store(builder.or_(keep, flags), slot)
            builder.call(ldm, [builder.bitcast(slot, i8p)])
        return context.get_dummy_value()

    return types.void(types.int32), codegen


@intrinsic
def max_no_nan(typingctx, a, b):
    """``max(a, b)`` for floats known not to be NaN (LLVM ``maxnum`` with the
    ``nnan`` flag), which LLVM vectorizes as a reduction.  With a NaN
    operand the result is unspecified: callers detect NaN otherwise."""
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        name = "llvm.maxnum.f64" if isinstance(ty, ir.DoubleType) else "llvm.maxnum.f32"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty]), name)
        return builder.call(fn, args, fastmath=("nnan", "nsz"))

    return a(a, b), codegen


#: Bytes written by one :func:`stream_scaled` (one AVX register).
STREAM_BYTES = 32


@intrinsic
def stream_scaled(typingctx, src, i, r, dst):
    """``dst[i:i + w] = src[i:i + w] * r`` with one aligned non-temporal
    (streaming) vector store, ``w = STREAM_BYTES // dst.itemsize``.

    ``src`` is float64 (unit stride), ``dst`` float32 or float64 with
    ``&dst[i]`` aligned to ``STREAM_BYTES``.  A streaming store writes
    around the caches: a large result then costs one write of memory
    instead of a read for ownership and a write.  Call :func:`store_fence`
    after the last one.  No bounds checks: callers keep ``i + w`` in range.
    """
    if not (isinstance(src, types.Array) and src.dtype == types.float64
            and isinstance(dst, types.Array) and dst.dtype in (types.float32, types.float64)
            and isinstance(i, types.Integer) and r == types.float64):
        return None
    width = STREAM_BYTES * 8 // dst.dtype.bitwidth

    def codegen(context, builder, sig, args):
        s = context.make_array(sig.args[0])(context, builder, args[0])
        d = context.make_array(sig.args[3])(context, builder, args[3])
        idx = context.cast(builder, args[1], sig.args[1], types.intp)
        vt = ir.VectorType(ir.DoubleType(), width)
        v = builder.load(builder.bitcast(builder.gep(s.data, [idx]), vt.as_pointer()), align=8)
        rv = ir.Constant(vt, ir.Undefined)
        for k in range(width):
            rv = builder.insert_element(rv, args[2], ir.Constant(ir.IntType(32), k))
        p = builder.fmul(v, rv)
        if sig.args[3].dtype == types.float32:
            p = builder.fptrunc(p, ir.VectorType(ir.FloatType(), width))
        ptr = builder.bitcast(builder.gep(d.data, [idx]), p.type.as_pointer())
        store = builder.store(p, ptr, align=STREAM_BYTES)
        store.set_metadata("nontemporal",
                           builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()

    return types.void(src, i, r, dst), codegen


@intrinsic
def store_fence(typingctx):
    """Order earlier streaming stores before later memory operations
    (``sfence`` on x86, a full fence elsewhere)."""

    def codegen(context, builder, sig, args):
        if _is_x86():
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence")
            builder.call(fn, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen
