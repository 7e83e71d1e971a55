"""The kernels' primitives (softjit.kernels.primitives): the two exp, over
their whole range and at every float32 argument, log1p, special values; and
a check that the kernels' hot loops compile to vector code."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit, prange

from softjit.kernels import _llvm, primitives

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


# --------------------------------------------------- float64 exp (x <= 0)


@njit(parallel=True)
def _max_ulp_exp_f64(d, d_lo):
    """Largest error of exp_neg_f64_2(d, d_lo) in ulps of the double-double
    reference exp(d) * (1 + d_lo) (|d_lo| <= 1e-13: exact to ~1e-30)."""
    worst = np.zeros(d.shape[0])
    for i in prange(d.shape[0]):
        hi, lo = dd_exp(d[i])
        lo += hi * d_lo[i]
        got = primitives.exp_neg_f64_2(d[i], d_lo[i])
        ulp = np.spacing(abs(hi)) if hi != 0.0 else 5e-324
        worst[i] = abs((got - hi) - lo) / ulp
    return worst.max()


def test_exp_f64_within_one_ulp_at_ten_million_points():
    """The float64 kernels' exp, of the shifted terms x - max formed as an
    exact double-double: within 1 ulp at 10^7 points with normal results."""
    rng = np.random.default_rng(7)
    d = -np.concatenate([
        rng.uniform(0.0, 708.3, 5_000_000),
        rng.uniform(0.0, 1.0, 2_000_000),
        rng.uniform(0.0, 1e-6, 1_000_000),
        rng.uniform(600.0, 708.3, 1_000_000),
    ])
    assert _max_ulp_exp_f64(d, np.zeros_like(d)) <= 1.0
    # x - max as a double-double: its low part enters the result
    v = rng.uniform(-400.0, 300.0, 1_000_000)
    m = rng.uniform(300.0, 308.0, v.size)
    hi, lo = _two_sum_map(v, -m)
    assert np.any(lo != 0.0)
    assert _max_ulp_exp_f64(hi, lo) <= 1.0


@njit
def _two_sum_map(a, b):
    hi = np.empty_like(a)
    lo = np.empty_like(a)
    for i in range(a.shape[0]):
        hi[i], lo[i] = primitives.two_diff(a[i], -b[i])
    return hi, lo


def test_exp_f64_subnormal_results_and_specials():
    # Subnormal results, within one subnormal ulp of the double-double
    # reference (the polynomial's rounding and the final one can add up).
    xs = np.linspace(-745.2, -708.4, 100_001)
    got = np.array([primitives.exp_neg_f64_2(v, 0.0) for v in xs])
    ref = np.array([dd_exp(v)[0] for v in xs])  # hi * 2**k: rounded once
    assert np.max(np.abs(got - ref)) <= 5e-324
    specials = np.array([-np.inf, 0.0, -0.0, -745.13, -745.14, -746.0, -1e308, -5e-324])
    want = np.exp(specials)
    got = np.array([primitives.exp_neg_f64_2(v, 0.0) for v in specials])
    np.testing.assert_array_equal(got, want)
    assert np.isnan(primitives.exp_neg_f64_2(np.nan, 0.0))


# ------------------------------------------- the float32 results' exp (x <= 0)


_F32_BLOCK = 4096  # bit patterns per block: the error loop below runs on vectors


@njit(error_model="numpy")
def _rel_errors_f32(start, errs):
    """Relative errors of exp_neg_f64_for_f32 at the float32 values with bit
    patterns start, start + 1, ... (one per entry of ``errs``), against the
    float64 exp (itself within 1 ulp, 1.1e-16)."""
    for j in range(errs.shape[0]):
        x = np.float64(_llvm.i32_as_f32(start + j))
        ref = primitives.exp_neg_f64_2(x, 0.0)
        errs[j] = abs(primitives.exp_neg_f64_for_f32(x) / ref - 1.0)


@njit(parallel=True)
def _max_rel_exp_f32(lo_bits, hi_bits):
    """Largest relative error over the float32 bit patterns [lo_bits, hi_bits)."""
    nblocks = (hi_bits - lo_bits + _F32_BLOCK - 1) // _F32_BLOCK
    worst = np.zeros(nblocks)
    for b in prange(nblocks):
        start = lo_bits + b * _F32_BLOCK
        errs = np.empty(min(_F32_BLOCK, hi_bits - start))
        _rel_errors_f32(start, errs)
        worst[b] = errs.max()
    return worst.max()


def test_exp_for_f32_results_at_every_float32():
    """float32 kernels compute exp((x - max) / T) in float64 with a shorter
    polynomial and round once at the end: at every float32 argument from -0
    to -103.97 (where exp rounds to 0 in float32) its relative error stays
    below 1.2e-8, at most 0.2 float32 ulp on top of the final rounding."""
    lo = np.int64(-(2**31))  # -0.0 (bit patterns of negative floats as int32)
    hi = np.int64(int(np.float32(-103.97).view(np.uint32)) + 1 - 2**32)
    assert _max_rel_exp_f32(lo, hi) <= 1.2e-8
    # float64 arguments (x - max of float32 values, divided by T)
    d = -np.random.default_rng(3).uniform(0.0, 103.97, 10_000)
    got = np.array([primitives.exp_neg_f64_for_f32(v) for v in d])
    np.testing.assert_allclose(got, np.exp(d), rtol=1.2e-8, atol=0)


def test_exp_for_f32_specials():
    # below -103.97 the results round to 0 in float32 (divided by a sum >= 1);
    # clamped at exp(-708)
    assert np.float32(primitives.exp_neg_f64_for_f32(-104.0)) == 0.0
    for v in (-708.0, -1e308, -np.inf):
        got = primitives.exp_neg_f64_for_f32(v)
        assert 0.0 <= got < 1e-300
    assert primitives.exp_neg_f64_for_f32(0.0) == 1.0
    assert np.isnan(primitives.exp_neg_f64_for_f32(np.nan))


# ------------------------------------------------------------------ log1p


@njit
def _log1p_map(a, out):
    for i in range(a.shape[0]):
        out[i] = primitives.log1p_pos(a[i])


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
from softjit.kernels import short_rows, steps
x = np.zeros(64, {dtype}); s = np.zeros(64)
steps.exp_sum_block(x, 0.0, 1.0, s, x, True)  # the fused exp + sum + next max
short_rows.block_exp(s.reshape(8, 8), s[:8], 1.0, s.reshape(8, 8), x.reshape(8, 8))  # short rows
steps.scale_into(s, 0.5, x)
steps.row_max(x)
steps.lane_sum(np.zeros(192), 128)  # float64 softmax sums, TwoSum across lanes
# rows across memory: loops across a block of rows
from softjit.kernels import columns as column_kernels
xt = x.reshape(4, 16); m = np.zeros(16); acc = np.zeros((4, 16)); e = np.zeros((4, 16))
column_kernels.block_max(xt, 0, 16, m, m.copy(), True)
column_kernels.block_exp_sums(False, xt, 0, 16, m, m, 1.0, e, acc, 0, 0)
import re
for fn in (steps.exp_sum_block, short_rows.block_exp, steps.scale_into,
           steps.row_max, steps.lane_sum, column_kernels.block_max,
           column_kernels.block_exp_sums):
    asm = "".join(fn.inspect_asm().values())
    packed = re.findall(r"\\bv(?:fmadd\\w*|max|mul|add)p[sd]\\s[^\\n]*%[yz]mm", asm)
    print(fn.__name__, len(packed))
    assert len(packed) >= 2, fn.__name__ + " has no packed vector arithmetic"
# Large results are written with streaming (non-temporal) vector stores.
steps.stream_scale_into(s, 0.5, x)
asm = "".join(steps.stream_scale_into.inspect_asm().values())
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
