"""softjit.xarray: named dimensions, coordinates and attributes, transposed
inputs, masks and weights as DataArrays, lazy dask-backed DataArrays."""

from __future__ import annotations

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

import softjit  # noqa: E402
import softjit.xarray as sx  # noqa: E402

FUNCS = {
    "softmax": (sx.softmax, softjit.softmax),
    "log_softmax": (sx.log_softmax, softjit.log_softmax),
}


@pytest.fixture
def logits(rng):
    return xr.DataArray(
        rng.standard_normal((3, 4, 5)) * 3,
        dims=("time", "sample", "class"),
        coords={
            "time": [10, 20, 30],
            "class": list("abcde"),
            "weight": ("class", np.arange(5.0)),
        },
        attrs={"units": "logit", "source": "test"},
        name="logits",
    )


def _reference(fn, da, dims, **kw):
    axis = tuple(da.get_axis_num(d) for d in dims)
    return fn(da.values, axis, **kw)


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("dim", ["class", "time", ["sample", "class"], ("class", "time"), None])
def test_softmax_family(logits, name, dim):
    xfn, fn = FUNCS[name]
    got = xfn(logits, dim=dim)
    dims = logits.dims if dim is None else [dim] if isinstance(dim, str) else dim
    np.testing.assert_allclose(got.values, _reference(fn, logits, dims), rtol=1e-14)
    assert got.dims == logits.dims
    assert got.attrs == logits.attrs and got.name == "logits"
    xr.testing.assert_identical(got.coords.to_dataset(), logits.coords.to_dataset())


@pytest.mark.parametrize("dim", ["class", ["time", "class"], None])
def test_logsumexp(logits, dim):
    got = sx.logsumexp(logits, dim=dim)
    dims = logits.dims if dim is None else [dim] if isinstance(dim, str) else dim
    np.testing.assert_allclose(got.values, _reference(softjit.logsumexp, logits, dims), rtol=1e-14)
    assert got.dims == tuple(d for d in logits.dims if d not in dims)
    assert got.attrs == logits.attrs
    for d in got.dims:
        xr.testing.assert_identical(got[d], logits[d])
    assert "weight" not in got.coords  # a coordinate along a reduced dim goes


@pytest.mark.parametrize("name", list(FUNCS))
def test_transposed_input(logits, name):
    xfn, _ = FUNCS[name]
    t = logits.transpose("class", "time", "sample")
    got = xfn(t, dim="class")
    assert got.dims == t.dims
    xr.testing.assert_allclose(got.transpose(*logits.dims), xfn(logits, dim="class"))
    xr.testing.assert_allclose(sx.logsumexp(t, dim="class"), sx.logsumexp(logits, dim="class"))


def test_temperature_dtype_keep_attrs(logits):
    got = sx.softmax(logits, dim="class", temperature=2.5, dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(
        got.values, softjit.softmax(logits.values, temperature=2.5, dtype=np.float32), rtol=1e-6
    )
    assert sx.log_softmax(logits, dim="class", keep_attrs=False).attrs == {}


@pytest.mark.parametrize("name", list(FUNCS))
def test_where_as_dataarray_numpy_and_missing_dims(logits, rng, name):
    xfn, fn = FUNCS[name]
    full = rng.random(logits.shape) < 0.6
    # A mask over "class" only (a missing core dim is added), one with the
    # dims in another order, and a plain numpy array in the input's order.
    per_class = xr.DataArray([True, False, True, True, False], dims="class")
    masks = {
        "per-class": (per_class, np.broadcast_to(per_class.values, logits.shape)),
        "transposed": (
            xr.DataArray(full, dims=logits.dims).transpose("class", "time", "sample"),
            full,
        ),
        "numpy": (full, full),
    }
    for where, mask in masks.values():
        got = xfn(logits, dim="class", where=where)
        np.testing.assert_allclose(got.values, fn(logits.values, where=mask), rtol=1e-14)
        assert got.dims == logits.dims
    lse = sx.logsumexp(logits, dim=["sample", "class"], where=per_class)
    np.testing.assert_allclose(
        lse.values,
        softjit.logsumexp(
            logits.values, (1, 2), where=np.broadcast_to(per_class.values, logits.shape)
        ),
        rtol=1e-14,
    )


def test_logsumexp_weights_and_sign(logits):
    b = xr.DataArray([1.0, -2.0, 0.5, 0.0, 3.0], dims="class")
    value, sign = sx.logsumexp(logits, dim="class", b=b, return_sign=True)
    want_v, want_s = softjit.logsumexp(logits.values, b=b.values, return_sign=True)
    np.testing.assert_allclose(value.values, want_v, rtol=1e-13)
    np.testing.assert_array_equal(sign.values, want_s)
    assert value.dims == sign.dims == ("time", "sample")
    assert value.name == sign.name == "logits"


def test_errors(logits):
    with pytest.raises(ValueError, match="not found"):
        sx.softmax(logits, dim="klass")
    with pytest.raises(ValueError, match="repeats"):
        sx.softmax(logits, dim=["class", "class"])
    with pytest.raises(TypeError, match="DataArray"):
        sx.softmax(logits.values, dim="class")
    with pytest.raises(ValueError, match="where with shape"):
        sx.softmax(logits, dim="class", where=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="temperature"):
        sx.softmax(logits, dim="class", temperature=-1.0)


# --------------------------------------------------------------------------- dask-backed


@pytest.fixture
def dask_array():
    return pytest.importorskip("dask.array")


@pytest.mark.parametrize(
    "chunks", [{"class": -1, "sample": 2}, {"class": 2}, {"class": 1, "time": 1}]
)
def test_dask_backed_is_lazy_and_right(logits, dask_array, chunks):
    lazy = logits.chunk(chunks)
    mask = xr.DataArray(np.arange(5) % 3 != 0, dims="class").chunk({"class": 2})
    results = {
        "softmax": sx.softmax(lazy, dim="class", temperature=0.7, where=mask),
        "log_softmax": sx.log_softmax(lazy, dim=["sample", "class"]),
        "logsumexp": sx.logsumexp(lazy, dim="class", b=mask.astype(float)),
    }
    eager = {
        "softmax": sx.softmax(logits, dim="class", temperature=0.7, where=mask.compute()),
        "log_softmax": sx.log_softmax(logits, dim=["sample", "class"]),
        "logsumexp": sx.logsumexp(logits, dim="class", b=mask.astype(float).compute()),
    }
    for name, res in results.items():
        assert isinstance(res.data, dask_array.Array), name
        assert res.attrs == logits.attrs
        xr.testing.assert_allclose(res.compute(), eager[name])
    # The softmax keeps the input's chunks: the split "class" dim was not gathered.
    assert results["softmax"].chunks == lazy.chunks


def test_dask_backed_nothing_computed(logits, dask_array):
    touched = []

    def touch(block):
        touched.append(1)
        return block

    lazy = logits.chunk({"class": 2}).map_blocks(touch, template=logits.chunk({"class": 2}))
    sx.softmax(lazy, dim="class")
    sx.logsumexp(lazy, dim="class", return_sign=True)
    assert touched == []
