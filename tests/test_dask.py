"""softjit on dask arrays: lazy graphs, every chunking, special values across
chunk boundaries, masks, temperature, dtypes, logsumexp options, graph size.

Every result is compared with softjit on the same data as a numpy array.
Most tests use dask's synchronous scheduler (fast, deterministic); one runs
the threaded scheduler.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import softjit  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
FUNCS = {"softmax": softjit.softmax, "log_softmax": softjit.log_softmax}
ALL_FUNCS = {**FUNCS, "logsumexp": softjit.logsumexp}
TOL = {np.float64: dict(rtol=1e-12, atol=1e-300), np.float32: dict(rtol=3e-7, atol=1e-38)}


@pytest.fixture(autouse=True)
def synchronous_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


def _check(got, want, dtype=np.float64):
    """``got`` is a lazy dask array equal to the numpy result ``want``."""
    assert isinstance(got, da.Array)
    res = got.compute()
    assert res.dtype == want.dtype and res.shape == want.shape
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(res, want, **TOL[np.dtype(dtype).type])


def _split(x: np.ndarray, chunks) -> da.Array:
    return da.from_array(x, chunks=chunks)


# --------------------------------------------------------------------------- chunkings

CHUNKINGS_2D = [
    pytest.param((7, 11), id="one-chunk"),
    pytest.param((3, 11), id="rows-split"),
    pytest.param((1, 1), id="1-element"),
    pytest.param((3, 4), id="both-split"),
    pytest.param(((2, 5), (5, 1, 5)), id="uneven"),
    pytest.param((7, (1, 10)), id="one-and-ten"),
    pytest.param(((7,), (3, 0, 8)), id="zero-length-chunk"),
]
AXES_2D = [-1, 0, None, (0, 1)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axis", AXES_2D)
@pytest.mark.parametrize("chunks", CHUNKINGS_2D)
@pytest.mark.parametrize("name", list(ALL_FUNCS))
def test_every_chunking_2d(rng, name, chunks, axis, dtype):
    fn = ALL_FUNCS[name]
    x = (rng.standard_normal((7, 11)) * 8).astype(dtype)
    _check(fn(_split(x, chunks), axis), fn(x, axis), dtype)


CHUNKINGS_3D = [(2, 3, 2), (1, 5, 6), ((1, 3), (2, 3), (4, 2)), (4, 1, 1)]
AXES_3D = [0, 1, 2, (0, 2), (1, 2), (0, 1), None]


@pytest.mark.parametrize("axis", AXES_3D)
@pytest.mark.parametrize("chunks", CHUNKINGS_3D)
@pytest.mark.parametrize("name", list(ALL_FUNCS))
def test_several_axes_chunked_3d(rng, name, chunks, axis):
    fn = ALL_FUNCS[name]
    x = rng.standard_normal((4, 5, 6)) * 4
    _check(fn(_split(x, chunks), axis), fn(x, axis))


@pytest.mark.parametrize("name", list(ALL_FUNCS))
def test_deep_combine_tree(rng, name):
    """split_every=2 forces several levels of combine steps."""
    fn = ALL_FUNCS[name]
    x = rng.standard_normal((3, 64)) * 20
    with dask.config.set(split_every=2):
        y = fn(_split(x, (3, 2)))
        names = [k for k in y.__dask_graph__().layers if "partial" in k]
        assert len(names) >= 4, names  # chunk step + several combine levels
        _check(y, fn(x))


@pytest.mark.parametrize("name", list(ALL_FUNCS))
@pytest.mark.parametrize("shape", [(), (1,), (0,), (0, 5), (3, 0)])
def test_small_and_empty(name, shape):
    fn = ALL_FUNCS[name]
    x = np.linspace(-1.0, 2.0, int(np.prod(shape))).reshape(shape)
    _check(fn(da.from_array(x, chunks=2), None if shape == () else -1), np.asarray(fn(x)))


def test_integer_bool_and_float16_input():
    for x in (np.arange(12).reshape(3, 4), np.eye(4, dtype=bool)):
        for name, fn in ALL_FUNCS.items():
            _check(fn(_split(x, (2, 3))), fn(x))
            assert fn(_split(x, 1)).dtype == np.float64, name
    h = np.linspace(-3, 3, 12, dtype=np.float16).reshape(3, 4)
    for fn in ALL_FUNCS.values():
        got = fn(_split(h, (3, 2))).compute()
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, fn(h))


@pytest.mark.parametrize("name", list(ALL_FUNCS))
def test_dtype_argument(rng, name):
    fn = ALL_FUNCS[name]
    x = rng.standard_normal((5, 9)) * 3
    for chunks in [(5, 9), (2, 4)]:
        _check(fn(_split(x, chunks), dtype=np.float32), fn(x, dtype=np.float32), np.float32)


# --------------------------------------------------------------------------- special values

INF, NAN = np.inf, np.nan
SPECIAL_ROWS = np.array(
    [
        [1.0, 2.0, INF, 3.0, 0.0, -1.0],  # one +inf
        [INF, 1.0, 2.0, 3.0, 4.0, INF],  # +inf in the first and last chunk
        [1.0, INF, INF, 0.0, 2.0, 3.0],  # two +inf in one chunk
        [-INF] * 6,  # all -inf
        [-INF, -INF, -INF, 0.5, -INF, -INF],  # one finite value
        [1.0, 2.0, 3.0, 4.0, 5.0, NAN],  # NaN in the last chunk
        [NAN, INF, 1.0, 2.0, 3.0, 4.0],  # NaN and +inf
        [1e308, -1e308, 1e308, 1.7e308, -INF, 0.0],  # huge magnitudes
        [-1e308, -1e308, -1e308, -1e308, -1e308, -1e308],  # equal huge negatives
        [1e16, 1e16 + 2, 1e16 + 4, 1e16 + 8, 1e16 + 16, 1e16 + 32],  # ulp(x) = 2
        [0.0, -40.0, -745.0, -746.0, -1000.0, 0.0],  # tiny terms, two maxima
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # maximum in the first chunk
    ]
)


@pytest.mark.parametrize("chunk", [1, 2, 4, (1, 5), (5, 1)])
@pytest.mark.parametrize("temperature", [1.0, 0.25, 7.0])
@pytest.mark.parametrize("name", list(FUNCS))
def test_special_values_across_chunks(name, chunk, temperature):
    fn = FUNCS[name]
    x = SPECIAL_ROWS
    d = _split(x, (3, chunk))
    _check(fn(d, temperature=temperature), fn(x, temperature=temperature))


@pytest.mark.parametrize("chunk", [1, 2, 4, (1, 5)])
def test_logsumexp_special_values_across_chunks(chunk):
    x = SPECIAL_ROWS
    _check(softjit.logsumexp(_split(x, (3, chunk))), softjit.logsumexp(x))


def test_special_values_along_axis_0(rng):
    """The same rows, reduced over a split leading axis (strided blocks)."""
    x = np.ascontiguousarray(SPECIAL_ROWS.T)
    for fn in ALL_FUNCS.values():
        for chunks in [(1, 4), (4, 5), ((2, 1, 3), 12)]:
            _check(fn(_split(x, chunks), axis=0), fn(x, axis=0))


# --------------------------------------------------------------------------- where, temperature

MASKS = {
    "full": lambda rng: rng.random((6, 10)) < 0.6,
    "row-broadcast": lambda rng: rng.random((1, 10)) < 0.5,
    "column-broadcast": lambda rng: rng.random((6, 1)) < 0.5,
    "1-d": lambda rng: rng.random(10) < 0.5,
    "all-false-rows": lambda rng: (
        np.repeat(rng.random((6, 1)) < 0.5, 10, axis=1) & (rng.random((6, 10)) < 0.7)
    ),
}


@pytest.mark.parametrize("mask_chunks", [None, (2, 3), (6, 10), 1])
@pytest.mark.parametrize("mask_kind", list(MASKS))
@pytest.mark.parametrize("x_chunks", [(2, 10), (2, 3), ((1, 5), (4, 6))])
@pytest.mark.parametrize("name", list(ALL_FUNCS))
def test_where(rng, name, x_chunks, mask_kind, mask_chunks):
    """numpy masks and dask masks of other chunks, broadcast and rechunked."""
    fn = ALL_FUNCS[name]
    x = rng.standard_normal((6, 10)) * 5
    x[0, 3], x[1, 0], x[2, 7] = np.inf, np.nan, -np.inf  # masked or not, by chance
    mask = MASKS[mask_kind](rng)
    if isinstance(mask_chunks, tuple):
        mask_chunks = mask_chunks[-mask.ndim :]
    where = mask if mask_chunks is None else da.from_array(mask, chunks=mask_chunks)
    kw = {} if name == "logsumexp" else dict(temperature=1.5)
    _check(fn(_split(x, x_chunks), where=where, **kw), fn(x, where=mask, **kw))


@pytest.mark.parametrize("name", list(FUNCS))
def test_fully_masked_rows_and_masked_specials(name):
    """Masked +inf, NaN and rows of only masked or masked + -inf entries."""
    fn = FUNCS[name]
    x = np.array(
        [
            [NAN, 1.0, INF, 2.0, INF, 3.0],
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            [-INF, 1.0, -INF, 2.0, -INF, 3.0],
            [INF, INF, 1.0, 2.0, INF, 0.0],
        ]
    )
    mask = np.array(
        [
            [False, True, True, True, False, True],  # NaN and one +inf masked
            [False] * 6,  # fully masked
            [True, False, True, False, True, False],  # only -inf left
            [True, False, True, True, False, True],  # one +inf left
        ]
    )
    for chunk in [1, 2, 3, 4]:
        got = fn(_split(x, (2, chunk)), where=da.from_array(mask, chunks=(1, 3)))
        _check(got, fn(x, where=mask))


# --------------------------------------------------------------------------- logsumexp options


B_CASES = {
    "positive": lambda rng: rng.random((6, 10)) + 0.1,
    "signed": lambda rng: rng.standard_normal((6, 10)),
    "with-zeros": lambda rng: np.where(rng.random((6, 10)) < 0.3, 0.0, rng.random((6, 10))),
    "row-broadcast": lambda rng: rng.standard_normal(10),
    "scalar": lambda rng: np.array(-2.0),
}


@pytest.mark.parametrize("b_dask", [False, True])
@pytest.mark.parametrize("b_kind", list(B_CASES))
@pytest.mark.parametrize("chunks", [(6, 10), (2, 3), 1])
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_logsumexp_weights_and_sign(rng, axis, chunks, b_kind, b_dask):
    x = rng.standard_normal((6, 10)) * 4
    x[1, 2], x[3, 4] = np.inf, -np.inf
    b = B_CASES[b_kind](rng)
    bb = da.from_array(b, chunks=2) if b_dask else b
    dx = _split(x, chunks)
    for return_sign in (False, True):
        got = softjit.logsumexp(dx, axis, b=bb, return_sign=return_sign)
        want = softjit.logsumexp(x, axis, b=b, return_sign=return_sign)
        if return_sign:
            _check(got[0], want[0])
            _check(got[1], want[1])
        else:
            _check(got, want)


def test_logsumexp_weights_special_values():
    """+inf entries of opposite weights in different chunks give NaN; a zero
    weight removes an infinite or NaN entry; an exactly cancelling sum."""
    x = np.array(
        [
            [INF, 1.0, 2.0, INF],
            [INF, 1.0, 2.0, INF],
            [NAN, INF, 1.0, 2.0],
            [1.0, 2.0, 2.0, 1.0],
            [-INF, -INF, 3.0, 3.0],
        ]
    )
    b = np.array(
        [
            [1.0, 1.0, 1.0, -1.0],
            [-2.0, 1.0, 1.0, -1.0],
            [0.0, 0.0, 1.0, 1.0],
            [1.0, 1.0, -1.0, -1.0],
            [1.0, 1.0, 2.0, -2.0],
        ]
    )
    for chunk in [1, 2, 3]:
        for return_sign in (False, True):
            got = softjit.logsumexp(_split(x, (2, chunk)), b=b, return_sign=return_sign)
            want = softjit.logsumexp(x, b=b, return_sign=return_sign)
            for g, w in zip(
                got if return_sign else [got], want if return_sign else [want], strict=True
            ):
                _check(g, w)


@pytest.mark.parametrize("axis", [-1, 0, (0, 1), None])
def test_logsumexp_keepdims_where(rng, axis):
    x = rng.standard_normal((5, 8))
    mask = rng.random((5, 8)) < 0.5
    for chunks in [(5, 8), (2, 3)]:
        _check(
            softjit.logsumexp(_split(x, chunks), axis, keepdims=True, where=mask),
            softjit.logsumexp(x, axis, keepdims=True, where=mask),
        )
        _check(
            softjit.logsumexp(
                _split(x, chunks), axis, b=x, keepdims=True, where=mask, return_sign=True
            )[1],
            softjit.logsumexp(x, axis, b=x, keepdims=True, where=mask, return_sign=True)[1],
        )


def test_logsumexp_dask_b_with_numpy_x(rng):
    """A numpy x broadcast against a chunked b takes b's chunks."""
    x = rng.standard_normal(6)
    b = rng.standard_normal((4, 6))
    got = softjit.logsumexp(x, b=da.from_array(b, chunks=(2, 2)))
    assert got.chunks == ((2, 2),)
    _check(got, softjit.logsumexp(x, b=b))
    got = softjit.logsumexp(x, axis=0, b=da.from_array(b, chunks=(2, 2)), return_sign=True)
    _check(got[1], softjit.logsumexp(x, axis=0, b=b, return_sign=True)[1])


def test_complex_input(rng):
    """Complex input works when the reduced axis lies in one chunk."""
    x = rng.standard_normal((3, 8)) + 1j * rng.standard_normal((3, 8))
    for name, fn in ALL_FUNCS.items():
        np.testing.assert_allclose(fn(_split(x, (1, 8))).compute(), fn(x), rtol=1e-12, err_msg=name)
        with pytest.raises(NotImplementedError, match="rechunk"):
            fn(_split(x, (1, 4)))
    v, s = softjit.logsumexp(_split(x, (1, 8)), return_sign=True)
    want_v, want_s = softjit.logsumexp(x, return_sign=True)
    assert v.dtype == want_v.dtype and s.dtype == want_s.dtype
    np.testing.assert_allclose(v.compute(), want_v, rtol=1e-12)
    np.testing.assert_allclose(s.compute(), want_s, rtol=1e-12)


# --------------------------------------------------------------------------- laziness, errors


def _counting(x: np.ndarray, chunks, counter: list[int]) -> da.Array:
    def touch(block):
        counter.append(1)
        return block

    return _split(x, chunks).map_blocks(touch, meta=np.empty((0,) * x.ndim, x.dtype))


@pytest.mark.parametrize("chunks", [(2, 12), (2, 5)])
def test_nothing_is_computed_at_call_time(rng, chunks):
    x = rng.standard_normal((6, 12))
    mask = rng.random((6, 12)) < 0.8
    counter: list[int] = []
    dx = _counting(x, chunks, counter)
    dm = _counting(mask, (3, 4), counter)
    results = [
        softjit.softmax(dx, temperature=2.0, where=dm),
        softjit.log_softmax(dx, axis=(0, 1), dtype=np.float32),
        softjit.logsumexp(dx, b=dx, where=dm, return_sign=True, keepdims=True)[1],
        softjit.logsumexp(dx, axis=0),
    ]
    assert counter == [], "a dask block was computed when the graph was built"
    assert all(isinstance(r, da.Array) for r in results)
    _check(results[0], softjit.softmax(x, temperature=2.0, where=mask))
    assert counter


def test_errors_are_raised_at_call_time(rng):
    dx = _split(rng.standard_normal((4, 6)), (2, 3))
    for fn in ALL_FUNCS.values():
        with pytest.raises(TypeError, match="out= is not supported for dask"):
            fn(dx, out=np.empty((4, 6)))
        with pytest.raises(TypeError, match="where must be a boolean"):
            fn(dx, where=np.ones((4, 6)))
        with pytest.raises(ValueError, match="where with shape"):
            fn(dx, where=np.ones((3, 6), bool))
        with pytest.raises(TypeError, match="dtype"):
            fn(dx, dtype=np.int32)
        with pytest.raises(np.exceptions.AxisError):
            fn(dx, axis=2)
        with pytest.raises(TypeError, match="x must be a numeric"):
            fn(da.from_array(np.array(["a", "b"])))
    for fn in FUNCS.values():
        with pytest.raises(ValueError, match="temperature"):
            fn(dx, temperature=0.0)
    with pytest.raises(ValueError, match="b with shape"):
        softjit.logsumexp(dx, b=np.ones(5))


# --------------------------------------------------------------------------- graph structure


def _n_tasks(arr: da.Array) -> int:
    return len(dict(arr.__dask_graph__()))


@pytest.mark.parametrize("name", list(ALL_FUNCS))
def test_task_count_grows_linearly(name):
    """Split axis: chunk + tree + normalize tasks, a bounded number per chunk."""
    fn = ALL_FUNCS[name]
    counts = {}
    for n in (8, 16, 32, 64, 128):
        x = da.ones((3, 2 * n), chunks=(3, 2))
        counts[n] = _n_tasks(fn(x)) - _n_tasks(x)
    assert all(counts[n] <= 4 * n + 10 for n in counts), counts
    # Affine in the number of chunks: the same number of tasks per added chunk.
    slopes = [(counts[2 * n] - counts[n]) / n for n in (8, 16, 32, 64)]
    assert max(slopes) <= 1.2 * min(slopes), (counts, slopes)


@pytest.mark.parametrize("name", list(FUNCS))
def test_axis_in_one_chunk_is_one_task_per_chunk(rng, name):
    x = _split(rng.standard_normal((40, 7)), (4, 7))
    y = FUNCS[name](x, temperature=2.0)
    assert _n_tasks(y) - _n_tasks(x) == x.npartitions
    assert y.chunks == x.chunks


@pytest.mark.parametrize("name", list(ALL_FUNCS))
def test_split_axis_is_never_gathered(name):
    """No rechunk of the reduced axis; every task sees one original chunk."""
    x = da.ones((4, 1000), chunks=(2, 100))
    y = ALL_FUNCS[name](x)
    assert not any("rechunk" in k for k in y.__dask_graph__().layers)
    if name != "logsumexp":
        assert y.chunks == x.chunks


# --------------------------------------------------------------------------- schedulers, docs


def test_threaded_scheduler(rng):
    """Many blocks at once through the threaded scheduler, some large enough
    for the parallel driver."""
    x = rng.standard_normal((64, 4096)) * 3
    dx = _split(x, (16, 4096))
    ds = _split(x, (16, 512))
    with dask.config.set(scheduler="threads", num_workers=4):
        for name, fn in ALL_FUNCS.items():
            want = fn(x)
            for d in (dx, ds):
                np.testing.assert_allclose(fn(d).compute(), want, rtol=1e-12, err_msg=name)


def test_documented_scaling_out_examples_run():
    """The code blocks of the documentation's dask and xarray page."""
    pytest.importorskip("xarray")
    page = README.parent / "docs" / "user-guide" / "scaling-out.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert len(blocks) >= 2
    for code in blocks:
        exec(compile(code, str(page), "exec"), {})


# --------------------------------------------------------------------------- cross-entropy

CE_FUNCS = {"loss": softjit.cross_entropy, "with_grad": softjit.cross_entropy_with_grad}
REDUCTIONS = ("none", "mean", "sum")


def _ce_results(x, target, dx, dtarget, **kw):
    """cross_entropy and cross_entropy_with_grad for every reduction: the dask
    results (checked lazy) and the numpy ones, flattened alike."""
    got, want = [], []
    for reduction in REDUCTIONS:
        for fn in CE_FUNCS.values():
            g = fn(dx, dtarget, reduction=reduction, **kw)
            w = fn(x, target, reduction=reduction, **kw)
            got += list(g) if isinstance(g, tuple) else [g]
            want += list(w) if isinstance(w, tuple) else [w]
    assert all(isinstance(g, da.Array) for g in got)
    return got, want


def _check_ce(x, target, dx, dtarget=None, **kw):
    """The dask results equal softjit's on numpy arrays: values (a gradient
    entry to within rounding of the largest one), shapes, dtypes, and the
    exact +0 that ignored rows and absent classes get."""
    got, want = _ce_results(x, target, dx, target if dtarget is None else dtarget, **kw)
    for g, res, w in zip(got, dask.compute(*got), want, strict=True):
        w, res = np.asarray(w), np.asarray(res)
        assert res.dtype == w.dtype == g.dtype and res.shape == w.shape == g.shape
        rtol = {2: 1e-3, 4: 3e-7, 8: 1e-12}[w.dtype.itemsize]
        finite = np.abs(w[np.isfinite(w)]).astype(np.float64)
        atol = rtol * (finite.max() if finite.size else 0.0)
        np.testing.assert_allclose(res, w, rtol=rtol, atol=atol)
        zero = w == 0
        np.testing.assert_array_equal(np.signbit(res[zero]), np.signbit(w[zero]))


CE_CHUNKS = [
    pytest.param((3, 6), id="rows-split"),
    pytest.param((3, 2), id="classes-split"),
    pytest.param(((1, 4, 5), (1, 5)), id="uneven"),
    pytest.param((10, 6), id="one-chunk"),
]


def _ce_data(rng):
    x = rng.standard_normal((10, 6)) * 4
    y = rng.integers(0, 6, 10)
    y[[2, 7]] = -100
    p = rng.random((10, 6))
    p[:, 1] = 0.0
    p /= p.sum(axis=1, keepdims=True)
    mask = rng.random((10, 6)) < 0.7
    mask[4] = False  # a row with no valid class
    return x, y, p, mask


CE_OPTIONS = {
    "plain": lambda y, mask: {},
    "weight": lambda y, mask: dict(weight=np.array([0.5, 2.0, 1.0, 0.0, 3.0, 1.5])),
    "smoothing": lambda y, mask: dict(label_smoothing=0.2),
    "where": lambda y, mask: dict(where=mask),
    "where-row": lambda y, mask: dict(where=mask[:, :1]),
    "everything": lambda y, mask: dict(
        weight=np.arange(1.0, 7.0), label_smoothing=0.1, where=mask
    ),
}


@pytest.mark.parametrize("option", list(CE_OPTIONS))
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("chunks", CE_CHUNKS)
def test_cross_entropy_options(rng, chunks, kind, option):
    """Every reduction and option, loss and gradient, against numpy softjit."""
    x, y, p, mask = _ce_data(rng)
    kw = CE_OPTIONS[option](y, mask)
    if kind == "index":
        target = y
        kw["ignore_index"] = -100
    else:
        target = p
    _check_ce(x, target, _split(x, chunks), **kw)


@pytest.mark.parametrize("chunk", [6, 1, 2, 4, (1, 5)])
@pytest.mark.parametrize("option", ["plain", "where", "everything"])
def test_cross_entropy_special_values(rng, chunk, option):
    """NaN, +inf, -inf and huge logits, in one chunk and across chunks."""
    x = SPECIAL_ROWS
    mask = rng.random(x.shape) < 0.6
    mask[1] = [True, False, True, True, True, False]  # leaves one +inf
    mask[3] = False
    kw = CE_OPTIONS[option](None, mask)
    y = np.array([2, 0, 1, 3, 0, 1, 4, 5, 2, 5, 0, 0])
    dx = _split(x, (3, chunk))
    _check_ce(x, y, dx, **kw)
    p = rng.random(x.shape)
    p[:, 1] = 0.0
    _check_ce(x, p, dx, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.bool_])
def test_cross_entropy_dtypes(rng, dtype):
    x = (rng.standard_normal((5, 7)) * 4).astype(dtype)
    y = rng.integers(0, 7, 5)
    p = rng.random((5, 7))
    for chunks in [(2, 7), (2, 3)]:
        _check_ce(x, y, _split(x, chunks), label_smoothing=0.1)
        _check_ce(x, p, _split(x, chunks))


@pytest.mark.parametrize("chunks", [(2, 5, 3), (2, 2, 3), (1, 1, 1)])
def test_cross_entropy_other_axes_and_dask_targets(rng, chunks):
    """A middle and a leading class axis; numpy targets are chunked as the
    logits, dask targets of other chunks are rechunked to them."""
    x = rng.standard_normal((4, 5, 6)) * 3
    dx = _split(x, chunks)
    y = rng.integers(0, 5, (4, 6))
    y[0, 0] = -1
    mask = rng.random((4, 5, 6)) < 0.7
    kw = dict(axis=1, ignore_index=-1, weight=np.arange(5.0), where=mask)
    _check_ce(x, y, dx, **kw)
    _check_ce(x, y, dx, da.from_array(y, chunks=(3, 1)), **kw)
    loss = softjit.cross_entropy(dx, y, reduction="none", **kw)
    assert loss.chunks == (dx.chunks[0], dx.chunks[2])
    y0 = rng.integers(0, 4, (5, 6))
    _check_ce(x, y0, dx, axis=0, label_smoothing=0.2, where=mask[:1])
    p = rng.random((4, 5, 6))
    _check_ce(x, p, dx, da.from_array(p, chunks=2), axis=1, weight=np.arange(5.0))


@pytest.mark.parametrize("chunk", [4, 2])
def test_cross_entropy_one_sample_and_empty(chunk):
    x = np.array([1.0, 2.0, 3.0, 1000.0])
    _check_ce(x, 1, _split(x, chunk))
    _check_ce(x, np.array([0.1, 0.2, 0.3, 0.4]), _split(x, chunk))
    for shape, chunks in [((0, 4), (1, chunk)), ((3, 0), (1, 1))]:
        e = np.zeros(shape)
        t = np.full(shape[0], -1)
        _check_ce(e, t, _split(e, chunks), ignore_index=-1)


@pytest.mark.parametrize("chunks", [(2, 4), (2, 2)])
def test_cross_entropy_zero_and_negative_denominators(rng, chunks):
    """The mean is NaN when no sample counts (its gradient NaN where the
    kernels compute one, +0 for ignored rows and absent classes)."""
    x = rng.standard_normal((6, 4))
    mask = rng.random((6, 4)) < 0.6
    y = np.array([0, 1, 2, 3, 0, 1])
    dx = _split(x, chunks)
    _check_ce(x, np.full(6, 7), dx, ignore_index=7)
    _check_ce(x, y, dx, weight=np.zeros(4))
    _check_ce(x, y, dx, weight=np.zeros(4), label_smoothing=0.5, where=mask)
    _check_ce(x, y, dx, weight=[1.0, -1.0, 1.0, -1.0])
    _check_ce(x, y, dx, weight=[-1.0, 1.0, -2.0, 0.5], where=mask)
    _check_ce(x, y, dx, where=np.zeros((6, 4), bool))


def test_cross_entropy_numpy_logits_with_dask_arguments(rng):
    """A dask target, weight or mask makes the result lazy; numpy logits take
    the dask target's chunks (the class axis whole for class indices)."""
    x = rng.standard_normal((6, 4))
    y = np.array([0, 1, 2, 3, 0, 1])
    mask = rng.random((6, 4)) < 0.6
    w = np.arange(1.0, 5.0)
    dy = da.from_array(y, chunks=4)
    _check_ce(x, y, x, dy)
    assert softjit.cross_entropy(x, dy, reduction="none").chunks == dy.chunks
    for kw_np, kw_da in [
        (dict(where=mask), dict(where=da.from_array(mask, chunks=(2, 2)))),
        (dict(weight=w), dict(weight=da.from_array(w, chunks=2))),
    ]:
        for reduction in REDUCTIONS:
            got = softjit.cross_entropy_with_grad(x, y, reduction=reduction, **kw_da)
            want = softjit.cross_entropy_with_grad(x, y, reduction=reduction, **kw_np)
            for g, v in zip(got, want, strict=True):
                assert isinstance(g, da.Array)
                np.testing.assert_allclose(g.compute(), v, rtol=1e-12, atol=1e-15)
    dx = _split(x, (2, 2))
    got = softjit.cross_entropy_with_grad(dx, y, weight=da.from_array(w, chunks=3))
    want = softjit.cross_entropy_with_grad(x, y, weight=w)
    for g, v in zip(dask.compute(*got), want, strict=True):
        np.testing.assert_allclose(g, v, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("chunks", [(2, 12), (2, 5)])
def test_cross_entropy_nothing_is_computed_at_call_time(rng, chunks):
    x = rng.standard_normal((6, 12))
    y = rng.integers(0, 12, 6)
    p = rng.random((6, 12))
    mask = rng.random((6, 12)) < 0.8
    counter: list[int] = []
    dx = _counting(x, chunks, counter)
    dy = _counting(y, (4,), counter)
    dp = _counting(p, (3, 4), counter)
    dm = _counting(mask, (3, 4), counter)
    results = []
    for reduction in REDUCTIONS:
        results.append(softjit.cross_entropy(dx, dy, reduction=reduction, where=dm))
        results += softjit.cross_entropy_with_grad(
            dx, y, reduction=reduction, weight=np.arange(12.0), label_smoothing=0.1
        )
        results += softjit.cross_entropy_with_grad(dx, dp, reduction=reduction, where=dm)
        results += softjit.cross_entropy_with_grad(x, dy, reduction=reduction)
    assert counter == [], "a dask block was computed when the graph was built"
    assert all(isinstance(r, da.Array) for r in results)
    want = softjit.cross_entropy(x, y, reduction="none", where=mask)
    np.testing.assert_allclose(results[0].compute(), want, rtol=1e-12)
    assert counter


def test_cross_entropy_errors(rng):
    """Bad arguments raise at call time, as for numpy input; a class index
    out of range raises when the result is computed, naming the chunk."""
    x = rng.standard_normal((4, 6))
    for dx in (_split(x, (2, 6)), _split(x, (2, 3))):
        y = np.arange(4)
        for fn in CE_FUNCS.values():
            for kw, exc, match in [
                (dict(axis=(0,)), TypeError, "axis must be an int"),
                (dict(axis=2), np.exceptions.AxisError, "out of range"),
                (dict(reduction="avg"), ValueError, "reduction"),
                (dict(label_smoothing=2.0), ValueError, "label_smoothing"),
                (dict(weight=np.ones(5)), ValueError, "weight must be"),
                (dict(weight=da.ones(5)), ValueError, "weight must be"),
                (dict(where=np.ones((4, 5), bool)), ValueError, "where with shape"),
                (dict(where=da.ones((4, 6))), TypeError, "where must be a boolean"),
                (dict(ignore_index=1.5), TypeError, "ignore_index"),
            ]:
                with pytest.raises(exc, match=match):
                    fn(dx, y, **kw)
            for target, exc, match in [
                (np.arange(4.0), TypeError, "must be an integer array"),
                (da.ones((4, 6), dtype=int), TypeError, "must be floating point"),
                (np.ones((4, 5)), ValueError, "target must have shape"),
            ]:
                with pytest.raises(exc, match=match):
                    fn(dx, target)
            with pytest.raises(ValueError, match="ignore_index applies"):
                fn(dx, da.ones((4, 6)), ignore_index=1)
            with pytest.raises(TypeError, match="complex"):
                fn(dx + 1j, y)
            with pytest.raises(ValueError, match="at least one dimension"):
                fn(da.from_array(np.float64(1.0)), 0)
            with pytest.raises(ValueError, match="unknown shape"):
                fn(dx, da.from_array(y)[da.from_array(y) >= 0])
            for reduction in REDUCTIONS:
                res = fn(dx, np.array([0, 1, 9, 2]), reduction=reduction)
                for r in res if isinstance(res, tuple) else (res,):
                    with pytest.raises(IndexError, match=r"target 9 .*starts at index \(2,\)"):
                        r.compute()


def test_cross_entropy_graph(rng):
    """A split class axis is never gathered (no rechunk at all: only a numpy
    mask or weight would be split into the logits' chunks); with the class
    axis in one chunk, the loss keeps the logits' row chunks."""
    x = da.ones((4, 1000), chunks=(2, 100))
    y = np.zeros(4, int)
    for fn in CE_FUNCS.values():
        for reduction in REDUCTIONS:
            res = fn(x, y, reduction=reduction, label_smoothing=0.1)
            for r in res if isinstance(res, tuple) else (res,):
                assert not any("rechunk" in k for k in r.__dask_graph__().layers)
    grad = softjit.cross_entropy_with_grad(x, y)[1]
    assert grad.chunks == x.chunks
    rows = _split(rng.standard_normal((40, 7)), (4, 7))
    assert softjit.cross_entropy(rows, np.zeros(40, int), reduction="none").chunks == ((4,) * 10,)


def test_cross_entropy_threaded_scheduler(rng):
    x = rng.standard_normal((64, 300)) * 3
    y = rng.integers(0, 300, 64)
    want = softjit.cross_entropy_with_grad(x, y, label_smoothing=0.1)
    with dask.config.set(scheduler="threads", num_workers=4):
        for chunks in [(16, 300), (16, 75)]:
            got = dask.compute(*softjit.cross_entropy_with_grad(
                _split(x, chunks), y, label_smoothing=0.1))
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- numpy x, dask mask


@pytest.mark.parametrize("name", list(FUNCS))
def test_numpy_x_with_dask_where_is_lazy(rng, name):
    """softmax / log_softmax of a numpy x with a dask mask: lazy (the mask is
    not computed at call time) and equal to the numpy result; x takes the
    mask's chunks."""
    fn = FUNCS[name]
    x = rng.standard_normal((6, 10)) * 3
    mask = rng.random((6, 10)) < 0.6
    counter: list[int] = []
    dm = _counting(mask, (2, 5), counter)
    lazy = [
        fn(x, where=dm, temperature=1.5),
        fn(x, axis=0, where=dm),
        fn(x, axis=None, where=dm),
        fn(x, where=_counting(mask[:1], (1, 5), counter)),
    ]
    assert counter == []
    assert lazy[0].chunks == dm.chunks
    _check(lazy[0], fn(x, where=mask, temperature=1.5))
    _check(lazy[1], fn(x, axis=0, where=mask))
    _check(lazy[2], fn(x, axis=None, where=mask))
    _check(lazy[3], fn(x, where=mask[:1]))
    assert counter
    with pytest.raises(ValueError, match="where with shape"):
        fn(x, where=da.ones((3, 10), dtype=bool))
