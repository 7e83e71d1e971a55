"""softmax / log_softmax / logsumexp against the plain-numpy reference:
every axis, dtype and memory layout."""

import itertools

import numpy as np
import pytest
import reference as ref

import softjit

SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 3, 2, 5)]


def all_axes(ndim):
    """Every int axis (positive and negative), every tuple, None and ()."""
    yield from range(-ndim, ndim)
    for k in range(2, ndim + 1):
        yield from itertools.combinations(range(ndim), k)
    yield None
    yield ()


CASES = [(shape, axis) for shape in SHAPES for axis in all_axes(len(shape))]


def tol(dtype):
    return {"rtol": 2e-6, "atol": 1e-30} if dtype == np.float32 else {"rtol": 1e-12, "atol": 0}


@pytest.mark.parametrize(("shape", "axis"), CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_every_axis(shape, axis, dtype, rng):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    for fn, rfn in [(softjit.softmax, ref.softmax), (softjit.log_softmax, ref.log_softmax)]:
        got = fn(x, axis=axis)
        assert got.dtype == dtype and got.shape == x.shape
        np.testing.assert_allclose(got, rfn(x, axis), **tol(dtype))


@pytest.mark.parametrize(("shape", "axis"), CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_every_axis(shape, axis, dtype, rng):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    got = softjit.logsumexp(x, axis=axis)
    want = ref.logsumexp(x, axis)
    assert np.asarray(got).dtype == dtype and np.shape(got) == want.shape
    np.testing.assert_allclose(got, want, **tol(dtype))
    kept = softjit.logsumexp(x, axis=axis, keepdims=True)
    assert kept.ndim == x.ndim
    np.testing.assert_allclose(np.squeeze(kept, axis=axis if axis != () else None)
                               if axis != () else kept, want, **tol(dtype))


def layouts(rng):
    base = rng.standard_normal((6, 8)) * 3
    return {
        "C": base,
        "F": np.asfortranarray(base),
        "transposed": base.T,
        "strided": base[::2, ::3],
        "negative": base[::-1, ::-2],
        "big-endian": base.astype(">f8"),
        "big-endian-f32": base.astype(">f4"),
        "readonly": np.frombuffer(base.tobytes(), dtype=np.float64).reshape(6, 8),
        "broadcast": np.broadcast_to(base[0], (5, 8)),
        "3d-middle": rng.standard_normal((3, 4, 5)).transpose(0, 2, 1),
    }


@pytest.mark.parametrize("name", list(layouts(np.random.default_rng(0))))
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_layouts(name, axis, rng):
    x = layouts(rng)[name]
    before = x.copy()
    want_dtype = np.float32 if x.dtype.itemsize == 4 else np.float64
    for fn, rfn in [(softjit.softmax, ref.softmax), (softjit.log_softmax, ref.log_softmax)]:
        got = fn(x, axis=axis)
        assert got.dtype == want_dtype and got.dtype.isnative
        np.testing.assert_allclose(got, rfn(x, axis), **tol(want_dtype))
    np.testing.assert_allclose(softjit.logsumexp(x, axis=axis), ref.logsumexp(x, axis),
                               **tol(want_dtype))
    np.testing.assert_array_equal(x, before)


def _compiled_signatures():
    from numba.core.registry import CPUDispatcher

    from softjit.kernels import _cache

    return {f"{d.py_func.__module__}.{d.py_func.__name__}": len(d.signatures)
            for d in _cache.compiled_functions("softjit.kernels")
            if isinstance(d, CPUDispatcher)}


@pytest.mark.parametrize("shape", [(6, 8), (300, 300)])  # small call; multi-threaded driver
def test_read_only_inputs_compile_nothing_new(shape, rng):
    """numba types read-only arrays apart from writable ones; softjit passes
    its kernels read-only views (small arrays: copies), so a read-only
    input runs the kernels a writable one compiled, with equal results."""
    x = rng.standard_normal(shape)
    ro = x.copy()
    ro.flags.writeable = False
    y = softjit.softmax(x)  # the forward output, writable and read-only
    y_ro = y.copy()
    y_ro.flags.writeable = False
    calls = [
        lambda a: softjit.softmax(a),
        lambda a: softjit.log_softmax(a, axis=0),
        lambda a: softjit.logsumexp(a, axis=-1),
        lambda a: softjit.softmax(a, where=a > 0),
        lambda a: softjit.softmax_vjp(y_ro if a is ro else y, a),
        lambda a: softjit.cross_entropy(a, np.zeros(a.shape[0], np.int64)),
    ]
    want = [call(x) for call in calls]
    before = _compiled_signatures()
    for call, w in zip(calls, want, strict=True):
        np.testing.assert_array_equal(call(ro), w)
    after = _compiled_signatures()
    assert after == before, {k: (before.get(k), v) for k, v in after.items() if v != before.get(k)}


@pytest.mark.parametrize(
    "dtype", [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64]
)
def test_integer_and_bool_give_float64(dtype):
    x = np.array([[0, 1, 1], [1, 0, 0]], dtype=dtype)
    for fn, rfn in [(softjit.softmax, ref.softmax), (softjit.log_softmax, ref.log_softmax)]:
        got = fn(x)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, rfn(x), rtol=1e-14)
    assert softjit.logsumexp(x).dtype == np.float64


def test_float16_is_correctly_rounded(rng):
    x = (rng.standard_normal((50, 40)) * 4).astype(np.float16)
    for fn, rfn in [(softjit.softmax, ref.softmax), (softjit.log_softmax, ref.log_softmax)]:
        got = fn(x)
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, rfn(x).astype(np.float16))
    got = softjit.logsumexp(x)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, ref.logsumexp(x).astype(np.float16))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_argument(dtype, rng):
    x = rng.standard_normal((4, 9))
    for fn, rfn in [(softjit.softmax, ref.softmax), (softjit.log_softmax, ref.log_softmax)]:
        got = fn(x, dtype=dtype)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, rfn(x), rtol=1e-3 if dtype == np.float16 else 2e-6)
    assert softjit.logsumexp([1, 2, 3], dtype=dtype).dtype == dtype


def test_lists_scalars_and_zero_d():
    assert softjit.softmax(3.0) == 1.0
    assert isinstance(softjit.softmax(3.0), np.float64)
    assert softjit.log_softmax(np.float32(-7.0)) == 0.0
    assert softjit.log_softmax(np.float32(-7.0)).dtype == np.float32
    assert softjit.logsumexp(2.5) == 2.5
    for axis in (None, 0, -1, (), (0,)):
        assert softjit.softmax(np.array(5.0), axis=axis) == 1.0
    np.testing.assert_allclose(softjit.softmax([[1, 2], [3, 4]]), ref.softmax([[1, 2], [3, 4]]))


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 3), (0, 0), (2, 0, 3)])
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_empty(shape, axis):
    x = np.empty(shape)
    for fn in (softjit.softmax, softjit.log_softmax):
        got = fn(x, axis=axis)
        assert got.shape == shape and got.dtype == np.float64
    got = softjit.logsumexp(x, axis=axis)
    want = np.full(np.sum(x, axis=axis).shape, -np.inf)
    np.testing.assert_array_equal(got, want)


def test_temperature(rng):
    x = rng.standard_normal((5, 11)) * 10
    for t in (1e-3, 0.5, 2.0, 1e6):
        np.testing.assert_allclose(softjit.softmax(x, temperature=t), ref.softmax(x, -1, t),
                                   rtol=1e-12)
        np.testing.assert_allclose(softjit.log_softmax(x, temperature=t),
                                   ref.log_softmax(x, -1, t), rtol=1e-12)
        np.testing.assert_allclose(softjit.softmax(x, temperature=t), ref.softmax(x / t),
                                   rtol=1e-9)


def test_where(rng):
    x = rng.standard_normal((6, 7))
    mask = rng.random((6, 7)) > 0.4
    mask[2] = False  # a fully masked row
    x[3, ~mask[3]] = np.nan  # NaN where masked out takes no part
    sm = softjit.softmax(x, where=mask)
    np.testing.assert_allclose(sm, ref.softmax(x, where=mask), rtol=1e-13)
    np.testing.assert_array_equal(sm[~mask], 0.0)
    np.testing.assert_array_equal(sm[2], 0.0)
    ls = softjit.log_softmax(x, where=mask)
    np.testing.assert_allclose(ls, ref.log_softmax(x, where=mask), rtol=1e-13)
    np.testing.assert_array_equal(ls[~mask], -np.inf)
    lse = softjit.logsumexp(x, where=mask)
    np.testing.assert_allclose(lse, ref.logsumexp(x, where=mask), rtol=1e-13)
    assert lse[2] == -np.inf
    # a mask that broadcasts (one per column), along another axis
    cols = np.array([True, False, True, True, False, True, True])
    np.testing.assert_allclose(softjit.softmax(x[:, :7], axis=0, where=cols),
                               ref.softmax(x[:, :7], axis=0, where=cols), rtol=1e-13)


def test_where_float32_and_all_axes(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    mask = rng.random((3, 4, 5)) > 0.3
    for axis in (0, 1, (0, 2), None):
        np.testing.assert_allclose(softjit.softmax(x, axis=axis, where=mask),
                                   ref.softmax(x, axis, where=mask), rtol=2e-6, atol=1e-30)
        np.testing.assert_allclose(softjit.logsumexp(x, axis=axis, where=mask),
                                   ref.logsumexp(x, axis, where=mask), rtol=2e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [-1, 0, 1, None])
def test_in_place(dtype, axis, rng):
    x = rng.standard_normal((4, 6, 5)).astype(dtype)
    for fn, rfn in [(softjit.softmax, ref.softmax), (softjit.log_softmax, ref.log_softmax)]:
        y = x.copy()
        res = fn(y, axis=axis, out=y)
        assert res is y
        np.testing.assert_allclose(y, rfn(x, axis), **tol(dtype))


def test_in_place_float16_and_views(rng):
    x = rng.standard_normal((4, 6)).astype(np.float16)
    y = x.copy()
    softjit.softmax(y, out=y)
    np.testing.assert_array_equal(y, ref.softmax(x).astype(np.float16))
    base = rng.standard_normal((8, 10))
    view = base[::2, 1::2]
    want = ref.log_softmax(view)
    softjit.log_softmax(view, out=view)
    np.testing.assert_allclose(view, want, rtol=1e-13)


def test_in_place_allocates_nothing_of_the_array_size():
    import tracemalloc

    x = np.random.default_rng(1).standard_normal((512, 2048))  # 8 MiB
    for fn in (softjit.softmax, softjit.log_softmax):
        y = x.copy()
        fn(y, out=y)  # compile (or load) the kernel first
        tracemalloc.start()
        fn(x, out=x)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < x.nbytes // 8, peak


def _owner(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


@pytest.mark.parametrize("layout", ["C", "F", "int"])
def test_results_own_their_memory_and_give_it_back_when_dropped(layout):
    """No memory is kept between calls: a dropped result's memory is freed."""
    import tracemalloc

    x = np.random.default_rng(2).standard_normal((1024, 4096))  # 32 MiB
    if layout == "F":
        x = np.asfortranarray(x)
    elif layout == "int":
        x = (x * 10).astype(np.int64)
    fns = [softjit.softmax, softjit.log_softmax, softjit.logsumexp,
           lambda a: softjit.softmax(a, axis=0)]
    for fn in fns:
        fn(x)  # compile (or load) the kernels first
        tracemalloc.start()
        for _ in range(3):
            res = fn(x)
            owner = _owner(res)
            assert owner.flags.owndata and owner.base is None
            del res, owner
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert current < 1 << 20, current


def test_partial_overlap_is_handled():
    buf = np.linspace(-3, 3, 11)
    x, out = buf[:-1], buf[1:]
    want = ref.softmax(x.copy())
    softjit.softmax(x, out=out)
    np.testing.assert_allclose(out, want, rtol=1e-13)
    buf = np.linspace(-3, 3, 12).reshape(3, 4)
    want = ref.log_softmax(buf.T.copy())
    softjit.log_softmax(buf.T, out=buf.T.copy())  # disjoint copy: fine
    res = softjit.log_softmax(buf.T, out=buf.T)  # same elements, transposed view
    np.testing.assert_allclose(res, want, rtol=1e-13)


def test_out_argument(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    out = np.empty_like(x)
    assert softjit.softmax(x, out=out) is out
    np.testing.assert_allclose(out, ref.softmax(x), rtol=2e-6)
    strided = np.empty((3, 8), np.float32)[:, ::2]
    softjit.log_softmax(x, out=strided)
    np.testing.assert_allclose(strided, ref.log_softmax(x), rtol=2e-6)
    red = np.empty(4, np.float32)
    assert softjit.logsumexp(x, axis=0, out=red) is red
    np.testing.assert_allclose(red, ref.logsumexp(x, 0), rtol=2e-6)
    f16 = np.empty((3, 4), np.float16)
    softjit.softmax(x.astype(np.float16), out=f16)
    np.testing.assert_array_equal(f16, ref.softmax(x.astype(np.float16)).astype(np.float16))


def test_inputs_are_not_modified(rng):
    x = rng.standard_normal((5, 6))
    b = rng.random((5, 6))
    mask = rng.random((5, 6)) > 0.5
    copies = [x.copy(), b.copy(), mask.copy()]
    softjit.softmax(x, where=mask, temperature=2.0)
    softjit.log_softmax(x, axis=0)
    softjit.logsumexp(x, b=b, where=mask)
    for a, c in zip([x, b, mask], copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_large_arrays_take_the_parallel_path(rng):
    # (rows, n) of 2**17 elements runs the multi-threaded driver.
    x = rng.standard_normal((256, 512)).astype(np.float32) * 8
    np.testing.assert_allclose(softjit.softmax(x), ref.softmax(x), rtol=2e-6, atol=1e-30)
    np.testing.assert_allclose(softjit.log_softmax(x, axis=0), ref.log_softmax(x, 0), rtol=2e-6,
                               atol=1e-6)
    np.testing.assert_allclose(softjit.logsumexp(x), ref.logsumexp(x), rtol=2e-6)


_GUARD_PAGE = """
import ctypes, mmap
import numpy as np
import softjit
shape = {shape}
nbytes = shape[0] * shape[1] * 4
size = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
buf = mmap.mmap(-1, size + mmap.PAGESIZE)
start = ctypes.addressof(ctypes.c_char.from_buffer(buf))
libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
assert libc.mprotect(start + size, mmap.PAGESIZE, 0) == 0  # no access after the array
x = np.frombuffer(buf, np.float32, shape[0] * shape[1], size - nbytes).reshape(shape)
x[...] = np.random.default_rng(0).standard_normal(shape)
for fn in (softjit.softmax, softjit.log_softmax, softjit.logsumexp):
    fn(x)
    fn(x, axis=0)
print("CHILD_OK")
"""


@pytest.mark.parametrize("shape", [(4096, 1031), (3, 100)], ids=["streamed", "small"])
def test_no_read_past_the_input(shape):
    """The kernels read nothing after the input's last element: an array
    that ends just before a page the process may not touch (a crash
    otherwise), large enough for streaming stores and small."""
    import os
    import pathlib
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("mprotect through ctypes: Linux")
    root = str(pathlib.Path(softjit.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run([sys.executable, "-c", _GUARD_PAGE.format(shape=shape)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "CHILD_OK" in proc.stdout, (proc.returncode, proc.stderr)


@pytest.mark.parametrize("shape", [(4096, 1031), (2, 2_100_000)], ids=["rows", "long-rows"])
def test_large_results_streamed(shape, rng):
    """Results of 16 MiB or more are written with streaming stores (from an
    aligned element on, the head and tail plainly): the same values as the
    reference, the same bits into an ``out=`` at any alignment and the same
    bits as the gufunc layer, which sees one row at a time."""
    from softjit import gufuncs

    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    assert x.nbytes >= 1 << 24
    for fn, rfn, gfn in [(softjit.softmax, ref.softmax, gufuncs.softmax),
                         (softjit.log_softmax, ref.log_softmax, gufuncs.log_softmax)]:
        got = fn(x)
        np.testing.assert_allclose(got, rfn(x, -1), **tol(np.float32))
        assert np.array_equal(got, gfn(x))
        for offset in (1, 3):  # out= starting 4 and 12 bytes past a 16-byte boundary
            buf = np.empty(x.size + offset, np.float32)[offset:].reshape(shape)
            assert np.array_equal(fn(x, out=buf), got)


def test_kernels_take_the_kind_as_an_int():
    """An IntEnum argument would compile every kernel a second time."""
    x = np.random.default_rng(3).standard_normal((40, 300))
    for fn in (softjit.softmax, softjit.log_softmax, softjit.logsumexp):
        for a in (x, x[:, :7], x.T, x.astype(np.float32)):
            fn(a)
            fn(a, axis=0)
    from softjit.kernels import _cache

    enum_sigs = [(d.py_func.__name__, sig) for d in _cache.compiled_functions("softjit.kernels")
                 for sig in d.signatures if "IntEnum" in str(sig)]
    assert enum_sigs == []
