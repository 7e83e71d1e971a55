"""The vectorized exp primitives: accuracy over their whole range, special
values, and a check that the kernels' hot loops compile to vector code."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit, prange

from softjit import _simd

# ------------------------------------------------ a double-double reference


@njit
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit
def _split(a):
    c = 134217729.0 * a  # 2**27 + 1
    hi = c - (c - a)
    return hi, a - hi


@njit
def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit
def _dd_add(ah, al, bh, bl):
    s, e = _two_sum(ah, bh)
    e += al + bl
    return _two_sum(s, e)


@njit
def _dd_mul(ah, al, bh, bl):
    p, e = _two_prod(ah, bh)
    e += ah * bl + al * bh
    return _two_sum(p, e)


_LN2_DD = (0.6931471805599453, 2.3190468138462996e-17)


@njit
def dd_exp(x):
    """exp(x) as a double-double (relative error ~1e-30) for |x| < 709.7.

    x = k*ln2 + r; exp(r) = exp(r/256)**256 with a Taylor series in
    double-double arithmetic.  Compiled without fast-math.
    """
    k = np.floor(x / _LN2_DD[0] + 0.5)
    ph, pl = _dd_mul(k, 0.0, _LN2_DD[0], _LN2_DD[1])
    rh, rl = _dd_add(x, 0.0, -ph, -pl)
    rh, rl = rh / 256.0, rl / 256.0
    sh, sl = 1.0, 0.0  # Taylor sum
    th, tl = 1.0, 0.0  # current term
    for i in range(1, 16):
        th, tl = _dd_mul(th, tl, rh, rl)
        th, tl = th / i, tl / i
        sh, sl = _dd_add(sh, sl, th, tl)
    for _ in range(8):
        sh, sl = _dd_mul(sh, sl, sh, sl)
    scale = 2.0 ** k
    return sh * scale, sl * scale


# ----------------------------------------------------------------- f64 exp


@njit(parallel=True)
def _max_ulp_exp_f64(xs):
    """Largest error of _simd.exp_f64 in ulps of the double-double reference."""
    worst = np.zeros(xs.shape[0])
    for i in prange(xs.shape[0]):
        hi, lo = dd_exp(xs[i])
        got = _simd.exp_f64(xs[i])
        ulp = np.spacing(abs(hi)) if hi != 0.0 else 5e-324
        worst[i] = abs((got - hi) - lo) / ulp
    return worst.max()


def test_exp_f64_within_one_ulp_at_ten_million_points():
    rng = np.random.default_rng(7)
    xs = np.concatenate([
        rng.uniform(-708.3, 709.7, 6_000_000),  # normal results
        rng.uniform(-1.0, 1.0, 2_000_000),
        rng.uniform(-1e-6, 1e-6, 1_000_000),
        rng.uniform(-700.0, -600.0, 1_000_000),
    ])
    assert _max_ulp_exp_f64(xs) <= 1.0


def test_exp_f64_subnormal_results_and_specials():
    # Subnormal results, within one subnormal ulp of the double-double
    # reference (the polynomial's rounding and the final one can add up).
    xs = np.linspace(-745.2, -708.4, 100_001)
    got = np.array([_simd.exp_f64(v) for v in xs])
    ref = np.array([dd_exp(v)[0] for v in xs])  # hi * 2**k: rounded once
    assert np.max(np.abs(got - ref)) <= 5e-324
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 709.78, 709.79, -745.13,
                         -745.14, -1e308, 1e308, 5e-324, -5e-324])
    with np.errstate(over="ignore"):
        want = np.exp(specials)
    got = np.array([_simd.exp_f64(v) for v in specials])
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------- f32 exp


_F32_BLOCK = 4096  # bit patterns per block: the error loop below runs on vectors


@njit(error_model="numpy")
def _ulp_errors_f32(start, errs):
    """ulp errors of exp_f32 at the float32 bit patterns start, start + 1, ...
    (one per entry of ``errs``), against exp_f64 (itself within 1e-16).

    Branch-free, so the loop is vectorized: the ulp of the float32 result
    r32 is its exponent's power of two times 2**-23 (at least 2**-149),
    and an overflowing reference (r32 == inf) counts as exact only if
    exp_f32 overflows too."""
    for j in range(errs.shape[0]):
        x = _simd.i32_as_f32(start + j)
        ref = _simd.exp_f64(np.float64(x))
        got = np.float64(_simd.exp_f32(x))
        r32 = np.float32(ref)
        power = np.float64(_simd.i32_as_f32(_simd.f32_as_i32(r32) & 0x7F800000))
        ulp = max(power * 2.0**-23, 1.401298464324817e-45)
        finite = abs(got - ref) / ulp
        overflow = 0.0 if got == np.inf else np.inf
        errs[j] = overflow if r32 == np.inf else finite


@njit(parallel=True)
def _max_ulp_exp_f32(lo_bits, hi_bits):
    """Largest ulp error of exp_f32 over the float32 bit patterns [lo_bits, hi_bits)."""
    nblocks = (hi_bits - lo_bits + _F32_BLOCK - 1) // _F32_BLOCK
    worst = np.zeros(nblocks)
    for b in prange(nblocks):
        start = lo_bits + b * _F32_BLOCK
        errs = np.empty(min(_F32_BLOCK, hi_bits - start))
        _ulp_errors_f32(start, errs)
        worst[b] = errs.max()
    return worst.max()


def test_exp_f32_within_one_ulp_for_every_float32_in_range():
    pos_hi = int(np.float32(89.0).view(np.int32)) + 1
    neg_hi = int(np.float32(-104.0).view(np.uint32)) + 1
    assert _max_ulp_exp_f32(0, pos_hi) <= 1.0  # +0 .. 89
    # -0 .. -104: bit patterns 0x80000000 .. as int32 they are negative
    assert _max_ulp_exp_f32(np.int64(-(2**31)), np.int64(neg_hi - 2**32)) <= 1.0


def test_exp_f32_specials():
    specials = np.array([np.nan, np.inf, -np.inf, 0, -0.0, 88.72, 88.73, -103.97, -104.0,
                         -87.4, -3e38, 3e38], dtype=np.float32)
    with np.errstate(over="ignore"):
        want = np.exp(specials.astype(np.float64)).astype(np.float32)
    got = np.array([_simd.exp_f32(v) for v in specials])
    np.testing.assert_array_equal(got, want)


# ------------------------------------------- kernels' exps (x <= 0 only)


@njit
def _kernel_exp_errors(xs):
    e64 = 0.0
    e32 = 0.0
    for x in xs:
        hi, lo = dd_exp(x)
        ulp = np.spacing(abs(hi)) if hi != 0.0 else 5e-324
        e64 = max(e64, abs((_simd.exp_neg_f64(x) - hi) - lo) / ulp)
        if hi > 1e-300:
            e32 = max(e32, abs(_simd.exp_neg_f64_for_f32(x) / hi - 1.0))
    return e64, e32


def test_kernel_exps():
    xs = np.concatenate([np.random.default_rng(3).uniform(-708.0, 0.0, 1_000_000),
                         -np.logspace(-20, 2, 10_000)])
    e64, e32 = _kernel_exp_errors(xs)
    assert e64 <= 1.0
    assert e32 <= 1.2e-8  # at most 0.2 float32 ulp
    assert _simd.exp_neg_f64(-np.inf) == 0.0
    # clamped at exp(-708), which rounds to 0 in any float32 result
    assert 0.0 < _simd.exp_neg_f64_for_f32(-np.inf) < 1e-300
    assert np.isnan(_simd.exp_neg_f64(np.nan)) and np.isnan(_simd.exp_neg_f64_for_f32(np.nan))


# ------------------------------------------------------------------ log1p


@njit
def _log1p_map(a, out):
    for i in range(a.shape[0]):
        out[i] = _simd.log1p_pos(a[i])


def test_log1p_pos_within_one_ulp():
    """log1p of the kernels' sums (finite, >= 0) against mpmath at 120 bits:
    random points up to 64 (rows of up to 64 elements) and beyond, tiny
    and subnormal arguments, and the neighbourhoods of the reduction's
    switch points (sqrt(2) - 1, 1, powers of two)."""
    import mpmath

    rng = np.random.default_rng(11)
    a = np.concatenate([
        rng.uniform(0.0, 64.0, 6000), rng.uniform(0.0, 1.0, 3000),
        10.0 ** rng.uniform(-320.0, 0.0, 3000), 2.0 ** rng.uniform(6.0, 60.0, 1000),
        np.sqrt(2.0) - 1.0 + np.arange(-64, 64) * 2.0 ** -54,
        1.0 + np.arange(-64, 64) * 2.0 ** -52, 2.0 ** np.arange(-30.0, 40.0),
        [0.0, 5e-324, 2.2250738585072014e-308, 63.0, 64.0],
    ])
    got = np.empty_like(a)
    _log1p_map(a, got)
    mpmath.mp.prec = 120
    worst = 0.0
    for ai, gi in zip(a.tolist(), got.tolist(), strict=True):
        want = mpmath.log1p(mpmath.mpf(ai))
        if want == 0:
            assert gi == 0.0
            continue
        ulp = mpmath.mpf(float(np.spacing(abs(float(want)))))
        worst = max(worst, float(abs(mpmath.mpf(gi) - want) / ulp))
    assert worst <= 1.0, worst


# ----------------------------------------------------------- vector code

_ASM_CHECK = """
import numpy as np
from softjit import _fastrows
x = np.zeros(64, {dtype}); s = np.zeros(64)
_fastrows.exp_sum_block(x, 0.0, 1.0, s, x, True)  # the fused exp + sum + next max
_fastrows.block_exp(s.reshape(8, 8), s[:8], 1.0, s.reshape(8, 8), x.reshape(8, 8))  # short rows
_fastrows.scale_into(s, 0.5, x)
_fastrows.row_max(x)
_fastrows.lane_sum(np.zeros(192), 128)  # float64 softmax sums, TwoSum across lanes
from softjit import _columns  # rows across memory: loops across a block of rows
xt = x.reshape(4, 16); m = np.zeros(16); acc = np.zeros((4, 16)); e = np.zeros((4, 16))
_columns.block_max(xt, 0, 16, m, m.copy(), True)
_columns.block_exp_sums(False, xt, 0, 16, m, m, 1.0, e, acc, 0, 0)
import re
for fn in (_fastrows.exp_sum_block, _fastrows.block_exp, _fastrows.scale_into,
           _fastrows.row_max, _fastrows.lane_sum, _columns.block_max,
           _columns.block_exp_sums):
    asm = "".join(fn.inspect_asm().values())
    packed = re.findall(r"\\bv(?:fmadd\\w*|max|mul|add)p[sd]\\s[^\\n]*%[yz]mm", asm)
    print(fn.__name__, len(packed))
    assert len(packed) >= 2, fn.__name__ + " has no packed vector arithmetic"
# Large results are written with streaming (non-temporal) vector stores.
_fastrows.stream_scale_into(s, 0.5, x)
asm = "".join(_fastrows.stream_scale_into.inspect_asm().values())
assert re.search(r"\\bvmovnt\\w*\\s[^\\n]*%[xyz]mm", asm) and "sfence" in asm, "no streaming stores"
print("CHILD_OK")
"""


@pytest.mark.parametrize("dtype", ["np.float32", "np.float64"])
def test_hot_loops_are_vectorized(tmp_path, dtype):
    """Compile the kernels afresh (inspection needs code that was not loaded
    from numba's cache) and look for packed AVX arithmetic in them."""
    if "avx2" not in open("/proc/cpuinfo").read():
        pytest.skip("no AVX2 on this machine")
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    import softjit

    root = str(__import__("pathlib").Path(softjit.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_ASM_CHECK.format(dtype=dtype))],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "CHILD_OK" in proc.stdout, proc.stdout + proc.stderr
