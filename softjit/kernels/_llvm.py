"""Every numba ``@intrinsic`` of softjit: the one module that knows
numba's and LLVM's internals.

* bit casts between floats and integers (``bitcast``), for the exponent
  arithmetic of the ``exp`` and ``log1p`` primitives;
* views that numba cannot express: a unit-stride re-typing of an array,
  a read-only re-typing, and borrowed 1-D views of a row or span of a
  2-D array that live only inside the kernel that made them (no reference
  count, no memory owner);
* ``llvm.maxnum`` for a vectorizable running maximum, a prefetch hint,
  streaming (non-temporal) stores and their fence;
* ``llvm.fma`` for exact products (double-double arithmetic);
* saving and restoring the x86 floating-point exception flags around the
  gufunc cores.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


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


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM ``llvm.fma``: one instruction where
    the CPU has FMA, an exact library call elsewhere), for error-free
    products in double-double arithmetic."""
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, sig, args):
        ty = ir.DoubleType()
        fnty = ir.FunctionType(ty, [ty, ty, ty])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fn, args)

    return types.float64(types.float64, types.float64, types.float64), codegen
