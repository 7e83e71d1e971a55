"""Types in, types out: xarray DataArrays, pandas DataFrames and Series and
numpy masked arrays come back as passed, with their labels or mask; the
optional submodules load on attribute access; importing softjit imports
none of dask, xarray or pandas."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from reference import log_softmax as ref_log_softmax
from reference import logsumexp as ref_logsumexp
from reference import softmax as ref_softmax

import softjit


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]], index=["a", "b"],
                        columns=["x", "y", "z"])


@pytest.fixture
def array() -> xr.DataArray:
    return xr.DataArray(np.arange(12.0).reshape(3, 4) / 3, dims=("sample", "class"),
                        coords={"class": list("pqrs"), "sample": [10, 20, 30]},
                        attrs={"units": "logit"}, name="scores")


@pytest.mark.parametrize(("op", "ref"), [(softjit.softmax, ref_softmax),
                                         (softjit.log_softmax, ref_log_softmax)])
def test_dataframe_and_series_keep_their_labels(frame, op, ref):
    got = op(frame)
    assert isinstance(got, pd.DataFrame)
    assert got.index.equals(frame.index) and got.columns.equals(frame.columns)
    np.testing.assert_allclose(got.to_numpy(), ref(frame.to_numpy(), -1), rtol=1e-14)
    along_index = op(frame, 0)
    np.testing.assert_allclose(along_index.to_numpy(), ref(frame.to_numpy(), 0), rtol=1e-14)
    s = op(frame["z"])
    assert isinstance(s, pd.Series) and s.name == "z" and s.index.equals(frame.index)
    np.testing.assert_allclose(s.to_numpy(), ref(frame["z"].to_numpy(), -1), rtol=1e-14)


def test_logsumexp_of_pandas_reduces_to_a_series_or_scalar(frame):
    rows = softjit.logsumexp(frame)
    assert isinstance(rows, pd.Series) and rows.index.equals(frame.index)
    np.testing.assert_allclose(rows.to_numpy(), ref_logsumexp(frame.to_numpy(), -1), rtol=1e-14)
    cols = softjit.logsumexp(frame, 0)
    assert isinstance(cols, pd.Series) and cols.index.equals(frame.columns)
    whole = softjit.logsumexp(frame, None)
    assert np.ndim(whole) == 0
    np.testing.assert_allclose(whole, ref_logsumexp(frame.to_numpy(), None), rtol=1e-14)
    value, sign = softjit.logsumexp(frame, b=-np.ones(3), return_sign=True)
    assert isinstance(value, pd.Series) and (sign.to_numpy() == -1).all()
    assert np.ndim(softjit.logsumexp(frame["x"])) == 0


def test_dataarray_by_axis_or_dim(array):
    by_axis = softjit.softmax(array)
    by_dim = softjit.softmax(array, dim="class")
    for got in (by_axis, by_dim):
        assert isinstance(got, xr.DataArray)
        assert got.dims == array.dims and got.name == "scores" and got.attrs == array.attrs
        assert (got["class"] == array["class"]).all()
        np.testing.assert_allclose(got.values, ref_softmax(array.values, -1), rtol=1e-14)
    np.testing.assert_allclose(softjit.log_softmax(array, 0).values,
                               ref_log_softmax(array.values, 0), rtol=1e-14)
    lse = softjit.logsumexp(array, dim="class")
    assert lse.dims == ("sample",) and list(lse["sample"].values) == [10, 20, 30]
    np.testing.assert_allclose(lse.values, ref_logsumexp(array.values, -1), rtol=1e-14)
    with pytest.raises(TypeError, match="not both"):
        softjit.softmax(array, 0, dim="class")
    with pytest.raises(TypeError, match="dim="):
        softjit.softmax(array.values, dim="class")


def test_dataarray_where_aligned_by_name_and_dask_stays_lazy(array):
    keep = xr.DataArray([True, False, True, True], dims="class")
    got = softjit.softmax(array, where=keep)
    assert (got.sel({"class": "q"}) == 0).all()
    lazy = softjit.softmax(array.chunk({"class": 2}))
    assert lazy.chunks is not None
    np.testing.assert_allclose(lazy.compute().values, ref_softmax(array.values, -1), rtol=1e-14)


def test_masked_entries_take_no_part():
    x = np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    got = softjit.softmax(x)
    assert isinstance(got, np.ma.MaskedArray)
    assert list(got.mask) == [False, True, False]
    np.testing.assert_allclose(got.compressed(), ref_softmax(np.array([1.0, 3.0]), -1),
                               rtol=1e-15)
    np.testing.assert_array_equal(got.data, softjit.softmax([1.0, 2.0, 3.0],
                                                            where=[True, False, True]))
    ls = softjit.log_softmax(x)
    np.testing.assert_allclose(ls.compressed(), ref_log_softmax(np.array([1.0, 3.0]), -1),
                               rtol=1e-15)
    np.testing.assert_allclose(softjit.logsumexp(x), ref_logsumexp(np.array([1.0, 3.0]), -1),
                               rtol=1e-15)


def test_masked_logsumexp_masks_fully_masked_slices():
    m = np.ma.array([[1.0, 2.0], [3.0, 4.0]], mask=[[1, 1], [0, 1]])
    got = softjit.logsumexp(m)
    assert isinstance(got, np.ma.MaskedArray)
    assert list(got.mask) == [True, False] and got[1] == 3.0
    assert softjit.logsumexp(np.ma.array([1.0, 2.0], mask=[1, 1])) is np.ma.masked
    both = softjit.softmax(m, where=np.array([[True, True], [False, True]]))
    assert both.mask.tolist() == m.mask.tolist()
    np.testing.assert_array_equal(both.data[1], [0.0, 0.0])  # masked and where=False


def test_derivatives_give_the_type_back(frame, array):
    y = softjit.softmax(frame)
    g = pd.DataFrame(np.ones((2, 3)), index=frame.index, columns=frame.columns)
    got = softjit.softmax_vjp(y, g)
    assert isinstance(got, pd.DataFrame) and got.columns.equals(frame.columns)
    np.testing.assert_allclose(got.to_numpy(), 0.0, atol=1e-15)
    ya = softjit.softmax(array)
    va = softjit.softmax_jvp(ya, array)
    assert isinstance(va, xr.DataArray) and va.dims == array.dims
    np.testing.assert_allclose(va.values, softjit.softmax_jvp(ya.values, array.values))
    lp = softjit.log_softmax(np.ma.array([0.0, 1.0, 2.0], mask=[0, 0, 1]))
    lv = softjit.log_softmax_vjp(lp, np.ones(3))
    assert isinstance(lv, np.ma.MaskedArray) and lv.mask.tolist() == [False, False, True]


@pytest.mark.parametrize("fn", [softjit.softmax_vjp, softjit.softmax_jvp])
def test_derivatives_refuse_logits(fn):
    with pytest.raises(ValueError, match=r"softmax\(x\)"):
        fn(np.array([1.0, 2.0, 3.0]), np.ones(3))
    with pytest.raises(ValueError, match=r"softmax\(x\)"):
        fn(np.array([[0.5, 0.5], [0.9, -0.1]]), np.ones(2))  # a negative entry
    fn(softjit.softmax(np.array([1.0, 2.0, 3.0], np.float32)), np.ones(3, np.float32))


def test_jacobian_and_log_softmax_vjp_refuse_wrong_input():
    with pytest.raises(ValueError, match=r"softmax\(x\)"):
        softjit.softmax_jacobian(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"log_softmax\(x\)"):
        softjit.log_softmax_vjp(np.array([1.0, 2.0, 3.0]), np.ones(3))
    with pytest.raises(ValueError, match=r"log_softmax\(x\)"):
        softjit.log_softmax_vjp(np.zeros(3), np.ones(3))  # exp sums to 3


def test_jacobian_from_logits():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(softjit.softmax_jacobian(x, from_logits=True),
                                  softjit.softmax_jacobian(softjit.softmax(x)))
    y = ref_softmax(x[0], -1)
    np.testing.assert_allclose(softjit.softmax_jacobian(x[0], from_logits=True),
                               np.diag(y) - np.outer(y, y), rtol=1e-14, atol=1e-17)


def test_lazy_submodules_and_a_light_import():
    code = (
        "import sys, softjit\n"
        "heavy = [m for m in ('dask', 'xarray', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert softjit.gufuncs.softmax is not None\n"
        "assert softjit.xarray.softmax is not None\n"
        "assert 'xarray' in dir(softjit)\n"
        "try:\n"
        "    softjit.nonexistent\n"
        "except AttributeError as exc:\n"
        "    assert 'nonexistent' in str(exc)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_xarray_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['xarray'] = None\n"  # as if not installed
        "import softjit\n"
        "try:\n"
        "    softjit.xarray\n"
        "except ImportError as exc:\n"
        "    assert 'softjit[xarray]' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_package_ships_type_information():
    from importlib import resources

    assert resources.files("softjit").joinpath("py.typed").is_file()


def test_losses_give_labelled_per_example_losses(frame, array):
    target = pd.Series([2, 0], index=frame.index)
    loss = softjit.cross_entropy(frame, target, reduction="none")
    assert isinstance(loss, pd.Series) and loss.index.equals(frame.index)
    np.testing.assert_allclose(loss.to_numpy(), softjit.cross_entropy(
        frame.to_numpy(), target.to_numpy(), reduction="none"), rtol=1e-15)
    loss, grad = softjit.multi_margin_loss_with_grad(frame, target, reduction="none")
    assert isinstance(loss, pd.Series) and isinstance(grad, pd.DataFrame)
    assert grad.columns.equals(frame.columns)
    scalar = softjit.cross_entropy(frame, target)
    assert np.ndim(scalar) == 0
    per_sample = softjit.margin_ranking_loss(array, reduction="none")
    assert isinstance(per_sample, xr.DataArray) and per_sample.dims == ("sample",)
    assert list(per_sample["sample"].values) == [10, 20, 30]
    masked = np.ma.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], mask=[[0, 0, 1], [0, 0, 0]])
    got = softjit.cross_entropy(masked, [0, 1], reduction="none")
    np.testing.assert_allclose(got, softjit.cross_entropy(
        masked.data, [0, 1], where=~masked.mask, reduction="none"), rtol=1e-15)
