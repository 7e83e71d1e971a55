"""The column kernels (softjit.kernels.columns): rows that lie across memory.

softmax along axis 0 of a C-ordered array, along the last axis of a
Fortran-ordered one, or along middle axes, against the row kernels on a
transposed copy (the same bits for rows of up to 64 elements, the same
order of additions) and against the numpy reference; special values, in
place, temperature, and results that do not depend on how the rows are
split into blocks and threads.  The accuracy contract for these layouts is
in test_accuracy.py.
"""

import numpy as np
import pytest
import reference as ref

import softjit
from softjit import _layout, _run
from softjit.kernels import columns as column_kernels
from softjit.kernels.kinds import Kind

FUNCS = [softjit.softmax, softjit.log_softmax]


def tol(dtype):
    return {"rtol": 2e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12,
                                                                      "atol": 1e-13}


def across(x, axes):
    """Whether softjit runs the column kernels for ``x`` reduced over ``axes``."""
    rows, n = _layout.rows_shape(x.shape, axes)
    return _layout.across_view(x, axes, rows, n) is not None


def test_which_layouts_take_the_column_kernels(rng):
    c = rng.standard_normal((50, 40))
    assert across(c, (0,)) and across(np.asfortranarray(c), (1,))
    assert across(rng.standard_normal((3, 50, 40)), (1,))  # a middle axis
    assert across(rng.standard_normal((3, 5, 6, 40)), (1, 2))  # middle axes
    assert not across(c, (1,))  # rows along memory: the row kernels
    assert not across(rng.standard_normal((3, 50, 40)), (0, 2))  # not one block of axes
    assert not across(rng.standard_normal((50, 1)), (0,))  # one row
    assert not across(rng.standard_normal((1, 40)), (0,))  # rows of one element
    assert across(rng.standard_normal((40_000, 2)), (0,))  # long rows too


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [2, 3, 10, 64])
@pytest.mark.parametrize("rows", [2, 7, 65, 300])
def test_short_rows_give_the_row_kernels_bits(rows, n, dtype, rng):
    x = (rng.standard_normal((n, rows)) * 6).astype(dtype)
    xt = np.ascontiguousarray(x.T)
    assert across(x, (0,))
    for fn in FUNCS:
        for t in (1.0, 0.7):
            assert np.array_equal(fn(x, axis=0, temperature=t), fn(xt, temperature=t).T)
    assert np.array_equal(softjit.logsumexp(x, axis=0), softjit.logsumexp(xt))
    # a Fortran-ordered array along its last axis is the same layout
    assert np.array_equal(softjit.softmax(np.asfortranarray(xt)), softjit.softmax(xt))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [65, 1000, 9000, 40_000])
def test_long_rows_against_the_reference(n, dtype, rng):
    """Rows longer than the short ones; from LONG_ROW (32768) elements on,
    softmax computes its terms again in the output pass."""
    x = (rng.standard_normal((n, 37)) * 6).astype(dtype)
    x[5, 3] = np.nan
    x[:, 4] = -np.inf
    x[7, 6] = np.inf
    for fn, rfn in [(softjit.softmax, ref.softmax), (softjit.log_softmax, ref.log_softmax)]:
        got = fn(x, axis=0, temperature=1.5)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, rfn(x / 1.5, 0), **tol(dtype))
        y = x.copy()
        fn(y, axis=0, temperature=1.5, out=y)
        np.testing.assert_array_equal(y, got)
    np.testing.assert_allclose(softjit.logsumexp(x, axis=0), ref.logsumexp(x, 0), **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [
    ((3, 5, 7), 1), ((40, 50, 30), 1), ((4, 3, 5, 6), (1, 2)), ((2, 3, 4, 5), (0, 1)),
    ((6, 70, 8), (0, 1)), ((5, 9, 2), 1),
], ids=str)
def test_middle_axes(shape, axis, dtype, rng):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    axes = tuple(np.atleast_1d(axis))
    assert across(x, axes)
    for fn, rfn in [(softjit.softmax, ref.softmax), (softjit.log_softmax, ref.log_softmax)]:
        np.testing.assert_allclose(fn(x, axis=axis), rfn(x, axis), **tol(dtype))
        y = x.copy()
        assert fn(y, axis=axis, out=y) is y
        np.testing.assert_allclose(y, rfn(x, axis), **tol(dtype))
    got = softjit.logsumexp(x, axis=axis, keepdims=True)
    np.testing.assert_allclose(got, np.expand_dims(ref.logsumexp(x, axis), axes), **tol(dtype))


def special_matrix(n, rows, dtype, rng):
    """Rows (columns of the returned (n, rows) array) with every kind of
    special value, beside ordinary rows in the same blocks."""
    x = (rng.standard_normal((n, rows)) * 3).astype(dtype)
    x[3, 2] = np.nan
    x[5, 4] = np.inf
    x[:, 7] = -np.inf
    x[1, 9] = x[2, 9] = np.inf
    x[:, 11] = 5.0  # all equal
    x[0, 13] = -np.inf
    x[:, 15] = np.inf
    x[4, 17] = -np.inf
    x[6, 17] = np.nan
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [12, 100])
def test_special_values(n, dtype, rng):
    x = special_matrix(n, 20, dtype, rng)
    xt = np.ascontiguousarray(x.T)
    for fn in FUNCS:
        got = fn(x, axis=0)
        want = fn(xt).T  # the row kernels hand special rows to the same exact kernels
        if n <= 64:
            assert np.array_equal(got, want, equal_nan=True)
        else:
            assert np.array_equal(np.isnan(got), np.isnan(want))
            np.testing.assert_allclose(got, want, **tol(dtype))
        y = x.copy()
        fn(y, axis=0, out=y)
        np.testing.assert_array_equal(y, got)
        y = np.asfortranarray(xt)  # the same layout, along the last axis
        fn(y, out=y)
        np.testing.assert_array_equal(y, got.T)
    lse = softjit.logsumexp(x, axis=0)
    np.testing.assert_array_equal(np.isnan(lse), np.isnan(softjit.logsumexp(xt)))
    np.testing.assert_allclose(lse, softjit.logsumexp(xt), **tol(dtype))
    assert lse[7] == -np.inf and lse[15] == np.inf and np.isnan(lse[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_logsumexp_near_zero(dtype, rng):
    """Rows whose logsumexp is below 1 in magnitude, where the maximum and
    the logarithm cancel (float32 recomputes them with the exact exp)."""
    x = np.log(rng.dirichlet(np.ones(100), size=30).T).astype(dtype)  # logsumexp ~ 0
    got = softjit.logsumexp(x, axis=0)
    want = ref.logsumexp(x.astype(np.float64), 0)
    assert np.all(np.abs(want) < 1e-5)
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [30, 300])
def test_bits_do_not_depend_on_blocks_or_threads(n, dtype, rng):
    """Each row's arithmetic is the same whichever block, range of rows or
    thread computes it: the whole array (parallel), its parts and the
    serial driver give equal bits."""
    x = (rng.standard_normal((n, 3001)) * 4).astype(dtype)
    for fn in FUNCS:
        whole = fn(x, axis=0)
        parts = np.concatenate([fn(x[:, :333], axis=0), fn(x[:, 333:340], axis=0),
                                fn(x[:, 340:], axis=0)], axis=1)
        assert np.array_equal(whole, parts)
    x3 = np.ascontiguousarray(x)[None]
    none = np.empty(0, dtype)
    for kind, fn in zip((Kind.SOFTMAX, Kind.LOG_SOFTMAX), FUNCS, strict=True):
        if not _run.columns_match_rows(kind, x.dtype, n):
            continue  # such rows are copied into rows along memory instead
        out = np.empty_like(x3)
        column_kernels.columns_serial(kind, _layout.read_only(x3), out, none, none, 1.0)
        assert np.array_equal(out[0], fn(x, axis=0))


def test_out_whose_slabs_differ_from_the_input(rng):
    """``x`` and ``out`` of the same shape whose 3-D views differ (one
    splits into slabs, the other is one block): the column kernels need
    both alike, else another path runs."""
    base = rng.standard_normal((3, 4, 5))
    inputs = [base, np.ascontiguousarray(base.transpose(1, 0, 2)).transpose(1, 0, 2)]
    for x in inputs:
        for out in (np.zeros((3, 4, 5)), np.zeros((4, 3, 5)).transpose(1, 0, 2)):
            for fn, rfn in [(softjit.softmax, ref.softmax), (softjit.log_softmax, ref.log_softmax)]:
                assert fn(x, axis=1, out=out) is out
                np.testing.assert_allclose(out, rfn(base, 1), **tol(np.float64))


def test_out_of_another_layout_and_inputs_untouched(rng):
    x = rng.standard_normal((80, 30))
    before = x.copy()
    want = softjit.softmax(np.ascontiguousarray(x.T)).T
    for out in (np.empty((80, 30)), np.empty((80, 30), order="F"),
                np.empty((30, 80)).T, np.empty((80, 60))[:, ::2]):
        assert softjit.softmax(x, axis=0, out=out) is out
        np.testing.assert_allclose(out, want, rtol=1e-14, atol=1e-16)
    ro = x.copy()
    ro.flags.writeable = False
    np.testing.assert_allclose(softjit.log_softmax(ro, axis=0), np.log(want), rtol=1e-13)
    np.testing.assert_array_equal(x, before)
