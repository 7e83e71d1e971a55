"""cross_entropy, margin_ranking_loss, multi_margin_loss and their gradient
forms: against plain-numpy references, central finite differences and
torch; special values, masks, layouts, dtypes, gufuncs and bad input."""

import itertools
import warnings

import numpy as np
import pytest
import reference_grad as refg

import softjit
from softjit import gufuncs

inf, nan = np.inf, np.nan
REDUCTIONS = ["none", "mean", "sum"]
TORCH_WARNINGS = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch internals


@pytest.fixture(autouse=True)
def no_runtime_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


def import_torch():
    """torch, or skip the test when it is not installed (``pip install .[compare]``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("torch")


def tol(dtype):
    return {"rtol": 2e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12,
                                                                      "atol": 1e-14}


# Cases: (logits shape, class axis).  The target has the shape without it.
LAYOUTS = [((5,), -1), ((6, 4), -1), ((4, 6), 0), ((3, 5, 2), 1), ((2, 3, 4), -1)]
OPTIONS = [
    {},
    {"label_smoothing": 0.2},
    {"weight": "w"},
    {"weight": "w", "label_smoothing": 0.35},
    {"ignore_index": -100},
    {"ignore_index": 1, "weight": "w", "label_smoothing": 0.1},
]


def make_case(rng, shape, axis, kind, options, dtype=np.float64):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    c = shape[axis]
    reduced = tuple(np.delete(shape, axis % len(shape)))
    if kind == "index":
        t = rng.integers(0, c, size=reduced)
        if "ignore_index" in options and t.size:
            t.reshape(-1)[1::3] = options["ignore_index"]
    else:
        t = np.moveaxis(softjit.softmax(rng.standard_normal((*reduced, c)) * 2), -1, axis)
    kw = dict(options)
    if kw.get("weight") == "w":
        kw["weight"] = rng.uniform(0.2, 2.0, c)
    if kind == "prob":
        kw.pop("ignore_index", None)
    return x, t, kw


# --- cross-entropy: values --------------------------------------------------


@pytest.mark.parametrize(("shape", "axis"), LAYOUTS, ids=str)
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_against_reference(shape, axis, kind, options, reduction, rng):
    x, t, kw = make_case(rng, shape, axis, kind, options)
    got = softjit.cross_entropy(x, t, axis, reduction=reduction, **kw)
    want = refg.cross_entropy(x, t, axis, reduction=reduction, **kw)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    loss, grad = softjit.cross_entropy_with_grad(x, t, axis, reduction=reduction, **kw)
    np.testing.assert_array_equal(loss, got)
    assert grad.shape == x.shape and grad.dtype == x.dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_minus_sum_target_log_softmax(dtype, rng):
    x = (rng.standard_normal((7, 5)) * 4).astype(dtype)
    p = softjit.softmax(rng.standard_normal((7, 5))).astype(dtype)
    want = -(p.astype(np.float64) * softjit.log_softmax(x.astype(np.float64))).sum(-1)
    got = softjit.cross_entropy(x, p, reduction="none")
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **tol(dtype))
    y = rng.integers(0, 5, 7)
    onehot = np.eye(5, dtype=dtype)[y]
    np.testing.assert_allclose(softjit.cross_entropy(x, y, reduction="none"),
                               softjit.cross_entropy(x, onehot, reduction="none"), **tol(dtype))
    np.testing.assert_allclose(
        softjit.cross_entropy(x, y, reduction="none"),
        -np.take_along_axis(softjit.log_softmax(x.astype(np.float64)), y[:, None], 1)[:, 0],
        **tol(dtype))


# --- cross-entropy: gradients -----------------------------------------------


@pytest.mark.parametrize(("shape", "axis"), [((5,), -1), ((4, 3), -1), ((3, 4, 2), 1)], ids=str)
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_grad_against_finite_differences(shape, axis, kind, options, reduction,
                                                       rng):
    x, t, kw = make_case(rng, shape, axis, kind, options)
    _, grad = softjit.cross_entropy_with_grad(x, t, axis, reduction=reduction, **kw)
    fd = refg.finite_difference(
        lambda v: np.sum(softjit.cross_entropy(v, t, axis, reduction=reduction, **kw)), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_cross_entropy_grad_with_mask_against_finite_differences(rng):
    x = rng.standard_normal((4, 5)) * 2
    mask = np.array([[1, 1, 0, 1, 1], [1, 0, 0, 0, 1], [0] * 5, [1] * 5], bool)
    y = np.array([0, 4, 2, 3])
    for kw in ({}, {"label_smoothing": 0.3, "weight": np.arange(1.0, 6.0)}):
        _, grad = softjit.cross_entropy_with_grad(x, y, where=mask, **kw)
        fd = refg.finite_difference(
            lambda v, kw=kw: softjit.cross_entropy(v, y, where=mask, **kw), x)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
        np.testing.assert_array_equal(grad[~mask], 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_grad_plain_case(dtype, rng):
    x = rng.standard_normal((6, 4)).astype(dtype)
    y = rng.integers(0, 4, 6)
    loss, grad = softjit.cross_entropy_with_grad(x, y, reduction="sum")
    want = softjit.softmax(x.astype(np.float64)) - np.eye(4)[y]
    assert grad.dtype == dtype and loss.dtype == dtype
    np.testing.assert_allclose(grad, want, **tol(dtype))
    np.testing.assert_allclose(grad.sum(axis=-1), 0.0, atol=1e-6 if dtype == np.float32 else 1e-15)


# --- cross-entropy: torch ---------------------------------------------------


@TORCH_WARNINGS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 2), (5,)], ids=str)
def test_cross_entropy_against_torch(shape, kind, options, reduction, dtype, rng):
    torch = import_torch()
    axis = 0 if len(shape) == 1 else 1  # torch's class dimension
    x, t, kw = make_case(rng, shape, axis, kind, options, dtype)
    t = t.astype(dtype) if kind == "prob" else t
    xt = torch.tensor(x, requires_grad=True)
    tkw = dict(kw)
    if "weight" in tkw:
        tkw["weight"] = torch.tensor(tkw["weight"].astype(dtype))
    want = torch.nn.functional.cross_entropy(xt, torch.tensor(t), reduction=reduction, **tkw)
    want.sum().backward()
    loss, grad = softjit.cross_entropy_with_grad(x, t, axis, reduction=reduction, **kw)
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(loss, want.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(grad, xt.grad.numpy(), **tol(dtype))


# --- cross-entropy: special values ------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_huge_logits_are_exact(dtype):
    x = np.array([1000.0, 0.0], dtype) if dtype != np.float16 else np.array([1000, 0], dtype)
    loss = softjit.cross_entropy(x, 1)
    assert loss == 1000.0 and loss.dtype == dtype
    loss, grad = softjit.cross_entropy_with_grad(x, 1)
    assert loss == 1000.0
    np.testing.assert_array_equal(grad, [1.0, -1.0])
    assert softjit.cross_entropy(x, 0) == 0.0
    big = float(np.finfo(dtype).max)
    x = np.array([[big, -big, 0.0], [-big, -big, 0.0]], dtype)
    np.testing.assert_array_equal(softjit.cross_entropy(x, [0, 2], reduction="none"), [0.0, 0.0])
    got = softjit.cross_entropy(x, [2, 0], reduction="none")
    np.testing.assert_array_equal(got, np.array([big, big], dtype))


def test_minus_inf_logits():
    # no target mass on the -inf class: finite loss and gradient, no NaN
    x = np.array([[-inf, 1.0, 1.0], [0.0, -inf, -inf]])
    loss, grad = softjit.cross_entropy_with_grad(x, [2, 0], reduction="none")
    np.testing.assert_allclose(loss, [np.log(2), 0.0], rtol=1e-15)
    np.testing.assert_allclose(grad, [[0, 0.5, -0.5], [0, 0, 0]], atol=1e-16)
    p = np.array([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]])
    loss, grad = softjit.cross_entropy_with_grad(x, p, reduction="none")
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    # class weight 0 on the -inf class removes it from the smoothing too
    loss = softjit.cross_entropy(x, [2, 0], weight=[0.0, 1.0, 1.0], label_smoothing=0.1,
                                 reduction="none")
    assert np.isfinite(loss[0]) and loss[1] == inf
    # mass on a -inf logit: infinite loss, finite gradient
    loss, grad = softjit.cross_entropy_with_grad(x, [0, 1], reduction="none")
    np.testing.assert_array_equal(loss, [inf, inf])
    np.testing.assert_allclose(grad, [[-1, 0.5, 0.5], [1, -1, 0]])
    # with smoothing every class has mass
    assert softjit.cross_entropy(x, [2, 0], label_smoothing=0.1) == inf


def test_special_rows():
    x = np.array([
        [1.0, nan, 2.0],        # NaN -> NaN
        [-inf, -inf, -inf],     # no finite logit -> NaN
        [inf, 0.0, 1.0],        # one +inf: probability 1 there
        [inf, inf, 0.0],        # several +inf -> NaN
        [0.0, 1.0, 2.0],
    ])
    y = np.array([0, 1, 0, 0, 2])
    loss, grad = softjit.cross_entropy_with_grad(x, y, reduction="none")
    assert np.isnan(loss[[0, 1, 3]]).all() and np.isnan(grad[[0, 1, 3]]).all()
    assert loss[2] == 0.0
    np.testing.assert_array_equal(grad[2], [0.0, 0.0, 0.0])
    assert np.isfinite(loss[4]) and np.isfinite(grad[4]).all()
    assert softjit.cross_entropy(x[2], 1) == inf
    np.testing.assert_array_equal(softjit.cross_entropy_with_grad(x[2], 1)[1], [1.0, -1.0, 0.0])
    for reduction in ("mean", "sum"):
        assert np.isnan(softjit.cross_entropy(x, y, reduction=reduction))
    # a NaN target probability
    p = np.array([[0.5, nan, 0.5], [0.2, 0.3, 0.5]])
    loss = softjit.cross_entropy(x[[4, 4]], p, reduction="none")
    assert np.isnan(loss[0]) and np.isfinite(loss[1])


def test_ignore_index_and_empty():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    loss, grad = softjit.cross_entropy_with_grad(x, [-1, 1], ignore_index=-1, reduction="none")
    assert loss[0] == 0.0
    np.testing.assert_array_equal(grad[0], 0.0)
    # every target ignored: the mean is NaN (torch), the sum 0, the gradient 0
    loss, grad = softjit.cross_entropy_with_grad(x, [7, 7], ignore_index=7)
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, 0.0)
    assert softjit.cross_entropy(x, [7, 7], ignore_index=7, reduction="sum") == 0.0
    assert np.isnan(softjit.cross_entropy(np.empty((0, 3)), np.empty(0, int)))
    assert softjit.cross_entropy(np.empty((0, 3)), np.empty(0, int), reduction="sum") == 0.0
    assert softjit.cross_entropy(np.empty((0, 3)), np.empty(0, int),
                                 reduction="none").shape == (0,)
    assert softjit.cross_entropy(np.empty((2, 0)), np.empty((2, 0)), reduction="sum") == 0.0


# --- cross-entropy: where ---------------------------------------------------


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.3},
                                     {"weight": [1.0, 2.0, 3.0, 0.5, 1.5]}], ids=str)
def test_where_is_absent_classes(kind, options, rng):
    """Masking a class equals deleting it (smoothing over the remaining ones)."""
    x = rng.standard_normal((6, 5)) * 2
    keep = np.array([True, False, True, True, False])
    sub = x[:, keep]
    if kind == "index":
        t_sub = rng.integers(0, 3, 6)
        t = np.flatnonzero(keep)[t_sub]
    else:
        t_sub = softjit.softmax(rng.standard_normal((6, 3)))
        t = np.zeros((6, 5))
        t[:, keep] = t_sub
    kw_sub = dict(options)
    if "weight" in options:
        kw_sub["weight"] = np.asarray(options["weight"])[keep]
    for reduction in REDUCTIONS:
        loss, grad = softjit.cross_entropy_with_grad(x, t, where=keep, reduction=reduction,
                                                     **options)
        want, want_grad = softjit.cross_entropy_with_grad(sub, t_sub, reduction=reduction,
                                                          **kw_sub)
        np.testing.assert_allclose(loss, want, rtol=1e-14)
        np.testing.assert_allclose(grad[:, keep], want_grad, rtol=1e-14, atol=1e-16)
        np.testing.assert_array_equal(grad[:, ~keep], 0.0)
        np.testing.assert_allclose(
            loss, refg.cross_entropy(x, t, where=keep, reduction=reduction, **options),
            rtol=1e-13)


def test_where_skips_fully_masked_samples(rng):
    x = rng.standard_normal((5, 4))
    y = np.array([0, 1, 2, 3, 0])
    keep = np.array([True, False, True, True, False])
    loss, grad = softjit.cross_entropy_with_grad(x, y, where=keep[:, None],
                                                 weight=[1.0, 2.0, 3.0, 4.0])
    want, want_grad = softjit.cross_entropy_with_grad(x[keep], y[keep],
                                                      weight=[1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(loss, want, rtol=1e-15)
    np.testing.assert_allclose(grad[keep], want_grad, rtol=1e-15)
    np.testing.assert_array_equal(grad[~keep], 0.0)
    # nothing valid at all: mean NaN, sum 0, gradient 0, and no warning
    loss, grad = softjit.cross_entropy_with_grad(x, y, where=np.zeros(4, bool))
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, 0.0)
    # NaN logits in masked entries take no part
    xn = x.copy()
    xn[:, 1] = nan
    mask = np.array([True, False, True, True])
    np.testing.assert_allclose(softjit.cross_entropy(xn, [0, 2, 3, 0, 2], where=mask),
                               softjit.cross_entropy(x, [0, 2, 3, 0, 2], where=mask))


def test_where_target_on_masked_class_is_infinite():
    x = np.array([[1.0, 2.0, 3.0]])
    mask = np.array([True, False, True])
    loss, grad = softjit.cross_entropy_with_grad(x, [1], where=mask, reduction="none")
    assert loss[0] == inf
    assert np.isfinite(grad).all() and grad[0, 1] == 0.0
    assert softjit.cross_entropy(x, [[0.5, 0.5, 0.0]], where=mask) == inf
    assert np.isfinite(softjit.cross_entropy(x, [[0.5, 0.0, 0.5]], where=mask))


# --- cross-entropy: layouts, dtypes, parallel --------------------------------


def test_layouts(rng):
    base = rng.standard_normal((8, 6)) * 3
    y = rng.integers(0, 8, 6)
    want_loss, want_grad = softjit.cross_entropy_with_grad(base.T.copy(), y, reduction="none")
    for view in (base, np.asfortranarray(base), base.astype(">f8"), base.T.copy().T):
        loss, grad = softjit.cross_entropy_with_grad(view, y, axis=0, reduction="none")
        np.testing.assert_array_equal(loss, want_loss)
        np.testing.assert_array_equal(grad, want_grad.T)
    wide = np.zeros((8, 12))
    wide[:, ::2] = base
    loss, grad = softjit.cross_entropy_with_grad(wide[:, ::2], y, axis=0, reduction="none")
    np.testing.assert_array_equal(loss, want_loss)
    np.testing.assert_array_equal(grad, want_grad.T)
    # a target given as a list, in a transposed array, of another integer dtype
    x3 = rng.standard_normal((2, 4, 3))
    t3 = rng.integers(0, 4, (3, 2)).T
    want = refg.cross_entropy(x3, t3, axis=1, reduction="none")
    for t in (t3, t3.astype(np.uint8), t3.astype(np.int32), t3.tolist()):
        np.testing.assert_allclose(softjit.cross_entropy(x3, t, axis=1, reduction="none"), want,
                                   rtol=1e-13)


def test_dtypes(rng):
    x = rng.standard_normal((3, 4))
    y = np.array([0, 3, 1])
    for dt in (np.float16, np.float32, np.float64):
        loss, grad = softjit.cross_entropy_with_grad(x.astype(dt), y)
        assert loss.dtype == dt and grad.dtype == dt
        np.testing.assert_allclose(loss, refg.cross_entropy(x.astype(dt), y),
                                   rtol=1e-3 if dt == np.float16 else 1e-6)
    loss, grad = softjit.cross_entropy_with_grad(np.array([[3, 1], [0, 2]]), [0, 1])
    assert loss.dtype == np.float64 and grad.dtype == np.float64
    assert softjit.cross_entropy(np.array([[True, False]]), [0]).dtype == np.float64
    # probability targets of another float dtype than the logits
    p = softjit.softmax(x).astype(np.float32)
    assert softjit.cross_entropy(x, p).dtype == np.float64
    assert softjit.cross_entropy(x.astype(np.float32), p.astype(np.float64)).dtype == np.float32


def test_parallel_path_matches_serial(rng):
    x = (rng.standard_normal((400, 200)) * 3).astype(np.float32)
    y = rng.integers(0, 200, 400)
    mask = rng.random((400, 200)) > 0.1
    mask[np.arange(400), y] = True
    for kw in ({}, {"where": mask, "label_smoothing": 0.1}):
        loss, grad = softjit.cross_entropy_with_grad(x, y, reduction="none", **kw)
        parts = [softjit.cross_entropy_with_grad(x[i:i + 100], y[i:i + 100], reduction="none",
                                                 **({"where": mask[i:i + 100],
                                                     "label_smoothing": 0.1} if kw else {}))
                 for i in range(0, 400, 100)]
        np.testing.assert_array_equal(loss, np.concatenate([p[0] for p in parts]))
        np.testing.assert_array_equal(grad, np.concatenate([p[1] for p in parts]))


# --- cross-entropy: bad input -------------------------------------------------


@pytest.mark.parametrize("fn", [softjit.cross_entropy, softjit.cross_entropy_with_grad])
@pytest.mark.parametrize(
    ("target", "kwargs", "exc", "match"),
    [
        ([0, 3], {}, IndexError, r"target 3 at index \(1,\) is out of range for 3 classes"),
        ([-1, 0], {}, IndexError, "target -1 at index"),
        ([-100, 5], {"ignore_index": -100}, IndexError, "is not ignore_index=-100"),
        ([0.0, 1.0], {}, TypeError, "must be an integer array"),
        ([True, False], {}, TypeError, "must be an integer array"),
        (np.ones((2, 3), int), {}, TypeError, "must be floating point"),
        ([0, 1, 2], {}, ValueError, r"target must have shape \(2,\)"),
        (np.ones((2, 3, 1)), {}, ValueError, "target must have shape"),
        ([0, 1], {"weight": [1.0, 2.0]}, ValueError, "weight must be a 1-D array of length 3"),
        ([0, 1], {"weight": np.ones((1, 3))}, ValueError, "weight must be"),
        ([0, 1], {"weight": ["a", "b", "c"]}, TypeError, "weight must be a numeric"),
        ([0, 1], {"reduction": "avg"}, ValueError, "reduction must be"),
        ([0, 1], {"reduction": None}, ValueError, "reduction must be"),
        ([0, 1], {"label_smoothing": 1.5}, ValueError, r"label_smoothing must be in \[0, 1\]"),
        ([0, 1], {"label_smoothing": nan}, ValueError, "label_smoothing must be"),
        ([0, 1], {"label_smoothing": "0.1"}, TypeError, "label_smoothing must be a real"),
        ([0, 1], {"ignore_index": 1.0}, TypeError, "ignore_index must be an int"),
        (np.full((2, 3), 1 / 3), {"ignore_index": -100}, ValueError, "ignore_index applies"),
        ([0, 1], {"axis": (0, 1)}, TypeError, "axis must be an int"),
        ([0, 1], {"axis": None}, TypeError, "axis must be an int"),
        ([0, 1], {"axis": 2}, np.exceptions.AxisError, "axis=2 is out of range"),
        ([0, 1], {"where": np.ones(4, bool)}, ValueError, "where with shape"),
        ([0, 1], {"where": np.ones(3)}, TypeError, "where must be a boolean"),
        ([0, 1j], {}, TypeError, "does not support complex"),
    ],
)
def test_cross_entropy_bad_input(fn, target, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(np.zeros((2, 3)), target, **kwargs)


def test_cross_entropy_bad_logits():
    with pytest.raises(ValueError, match="at least one dimension"):
        softjit.cross_entropy(1.0, 0)
    with pytest.raises(TypeError, match="does not support complex"):
        softjit.cross_entropy(np.ones((2, 3), complex), [0, 1])
    with pytest.raises(TypeError, match="logits must be a numeric array"):
        softjit.cross_entropy(np.array([["a", "b"]]), [0])
    with pytest.raises(IndexError, match="out of range for 0 classes"):
        softjit.cross_entropy(np.empty((2, 0)), [0, 0])


# --- margin ranking loss ----------------------------------------------------


def test_margin_ranking_seed_example():
    scores = np.array([0.5, 0.2, -0.1, 1.0, -0.5, 0.3]).reshape(2, 3)
    want = sum(max(0.0, 1.0 - s[0] + s[j]) for s in scores for j in (1, 2))
    assert softjit.margin_ranking_loss(scores, reduction="sum") == pytest.approx(want, rel=1e-15)
    np.testing.assert_allclose(softjit.margin_ranking_loss(scores, reduction="none"),
                               [1.1, 0.3], rtol=1e-15)
    assert softjit.margin_ranking_loss(scores, reduction="mean") == pytest.approx(0.7)


@pytest.mark.parametrize(("shape", "axis"), [((5,), -1), ((4, 6), -1), ((6, 4), 0),
                                             ((2, 5, 3), 1)], ids=str)
@pytest.mark.parametrize("positive", [0, 2, -1])
@pytest.mark.parametrize("margin", [1.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_against_reference_and_fd(shape, axis, positive, margin, reduction, rng):
    s = rng.standard_normal(shape)
    got = softjit.margin_ranking_loss(s, axis, margin=margin, positive=positive,
                                      reduction=reduction)
    want = refg.margin_ranking(s, margin, positive, axis, reduction)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    loss, grad = softjit.margin_ranking_loss_with_grad(
        s, axis, margin=margin, positive=positive, reduction=reduction)
    np.testing.assert_array_equal(loss, got)
    fd = refg.finite_difference(
        lambda v: np.sum(softjit.margin_ranking_loss(v, axis, margin=margin, positive=positive,
                                                     reduction=reduction)), s)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@TORCH_WARNINGS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_margin_ranking_against_torch(dtype, reduction, rng):
    torch = import_torch()
    s = rng.standard_normal((5, 4)).astype(dtype)
    st = torch.tensor(s, requires_grad=True)
    pos, neg = st[:, :1].expand(5, 3), st[:, 1:]
    want = torch.nn.functional.margin_ranking_loss(
        pos, neg, torch.ones(5, 3, dtype=st.dtype), margin=0.5, reduction="none")
    want = want.sum(dim=1) if reduction == "none" else want.sum()
    want.sum().backward()
    loss, grad = softjit.margin_ranking_loss_with_grad(s, margin=0.5, reduction=reduction)
    assert grad.dtype == dtype
    np.testing.assert_allclose(loss, want.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(grad, st.grad.numpy(), **tol(dtype))


def test_margin_ranking_special_values():
    s = np.array([[0.0, nan, -5.0], [1.0, 0.5, 0.2], [inf, 3.0, 1.0], [0.0, inf, 1.0]])
    loss, grad = softjit.margin_ranking_loss_with_grad(s, reduction="none")
    assert np.isnan(loss[0]) and np.isnan(grad[0]).all()
    np.testing.assert_allclose(loss[1:], [0.5 + 0.2, 0.0, inf])
    assert np.isfinite(grad[1:]).all()
    assert np.isnan(softjit.margin_ranking_loss(s))
    assert softjit.margin_ranking_loss(np.zeros((3, 1))) == 0.0  # no negatives
    assert softjit.margin_ranking_loss(np.zeros((0, 3)), reduction="sum") == 0.0
    assert np.isnan(softjit.margin_ranking_loss(np.zeros((0, 3))))  # mean of no examples
    x32 = np.array([[0.5, 0.2, -0.1]], np.float32)
    loss, grad = softjit.margin_ranking_loss_with_grad(x32)
    assert loss.dtype == np.float32 and grad.dtype == np.float32


def test_margin_ranking_bad_input():
    s = np.zeros((2, 3))
    with pytest.raises(IndexError, match="positive=3 is out of range for rows of 3 scores"):
        softjit.margin_ranking_loss(s, positive=3)
    with pytest.raises(IndexError, match="positive=-4"):
        softjit.margin_ranking_loss(s, positive=-4)
    with pytest.raises(TypeError, match="positive must be an int"):
        softjit.margin_ranking_loss(s, positive=1.0)
    with pytest.raises(TypeError, match="margin must be a real number"):
        softjit.margin_ranking_loss(s, margin="1")
    with pytest.raises(ValueError, match="reduction must be"):
        softjit.margin_ranking_loss(s, reduction="max")
    with pytest.raises(TypeError, match="axis must be an int"):
        softjit.margin_ranking_loss(s, axis=None)
    with pytest.raises(ValueError, match="at least one dimension"):
        softjit.margin_ranking_loss(1.0)


# --- multi-margin loss ------------------------------------------------------


MM_CASES = list(itertools.product([1, 2], [1.0, 0.4], [None, "w"], REDUCTIONS))


@pytest.mark.parametrize(("p", "margin", "weight", "reduction"), MM_CASES, ids=str)
@pytest.mark.parametrize(("shape", "axis"), [((5,), -1), ((4, 6), -1), ((6, 4), 0),
                                             ((2, 5, 3), 1)], ids=str)
def test_multi_margin_against_reference_and_fd(p, margin, weight, reduction, shape, axis, rng):
    x = rng.standard_normal(shape)
    c = shape[axis]
    y = rng.integers(0, c, tuple(np.delete(shape, axis % len(shape))))
    w = rng.uniform(0.5, 2.0, c) if weight else None
    got = softjit.multi_margin_loss(x, y, axis, p=p, margin=margin, weight=w,
                                    reduction=reduction)
    want = refg.multi_margin(x, y, p, margin, w, reduction, axis)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    loss, grad = softjit.multi_margin_loss_with_grad(x, y, axis, p=p, margin=margin,
                                                      weight=w, reduction=reduction)
    np.testing.assert_array_equal(loss, got)
    fd = refg.finite_difference(
        lambda v: np.sum(softjit.multi_margin_loss(v, y, axis, p=p, margin=margin, weight=w,
                                                   reduction=reduction)), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@TORCH_WARNINGS
@pytest.mark.parametrize(("p", "margin", "weight", "reduction"), MM_CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multi_margin_against_torch(p, margin, weight, reduction, dtype, rng):
    torch = import_torch()
    x = rng.standard_normal((6, 5)).astype(dtype)
    y = rng.integers(0, 5, 6)
    w = rng.uniform(0.5, 2.0, 5).astype(dtype) if weight else None
    xt = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.multi_margin_loss(
        xt, torch.tensor(y), p=p, margin=margin,
        weight=None if w is None else torch.tensor(w), reduction=reduction)
    want.sum().backward()
    loss, grad = softjit.multi_margin_loss_with_grad(x, y, p=p, margin=margin, weight=w,
                                                      reduction=reduction)
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(loss, want.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(grad, xt.grad.numpy(), **tol(dtype))


def test_multi_margin_special_values():
    x = np.array([[0.1, nan, 0.3], [0.1, 0.2, 0.3], [inf, 0.0, 1.0]])
    loss, grad = softjit.multi_margin_loss_with_grad(x, [0, 0, 0], reduction="none")
    assert np.isnan(loss[0]) and np.isnan(grad[0]).all()
    assert np.isfinite(loss[1:]).all() and np.isfinite(grad[1:]).all()
    assert loss[2] == 0.0
    assert np.isnan(softjit.multi_margin_loss(x, [0, 0, 0]))


def test_multi_margin_bad_input():
    x = np.zeros((2, 3))
    with pytest.raises(IndexError, match=r"target 3 at index \(0,\)"):
        softjit.multi_margin_loss(x, [3, 0])
    with pytest.raises(IndexError, match="target -1"):
        softjit.multi_margin_loss(x, [0, -1])
    with pytest.raises(TypeError, match="integer array of class indices"):
        softjit.multi_margin_loss(x, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        softjit.multi_margin_loss(x, [0, 1, 2])
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        softjit.multi_margin_loss(x, [0, 1], p=3)
    with pytest.raises(TypeError, match="p must be an int"):
        softjit.multi_margin_loss(x, [0, 1], p=1.0)
    with pytest.raises(ValueError, match="weight must be a 1-D array of length 3"):
        softjit.multi_margin_loss(x, [0, 1], weight=[1.0])
    with pytest.raises(ValueError, match="reduction must be"):
        softjit.multi_margin_loss(x, [0, 1], reduction="avg")


def test_margin_losses_parallel_path(rng):
    x = rng.standard_normal((500, 150)).astype(np.float32)
    y = rng.integers(0, 150, 500)
    loss, grad = softjit.multi_margin_loss_with_grad(x, y, reduction="none")
    l2, g2 = softjit.multi_margin_loss_with_grad(x[:50], y[:50], reduction="none")
    np.testing.assert_array_equal(loss[:50], l2)
    np.testing.assert_array_equal(grad[:50], g2)
    loss, grad = softjit.margin_ranking_loss_with_grad(x, reduction="none")
    l2, g2 = softjit.margin_ranking_loss_with_grad(x[:50], reduction="none")
    np.testing.assert_array_equal(loss[:50], l2)
    np.testing.assert_array_equal(grad[:50], g2)


# --- gufuncs ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_gufuncs(dtype, rng):
    x = rng.standard_normal((2, 3, 5)).astype(dtype)
    y = rng.integers(0, 5, (2, 3))
    assert gufuncs.cross_entropy.signature == "(n),()->()"
    assert gufuncs.cross_entropy_with_grad.signature == "(n),()->(),(n)"
    got = gufuncs.cross_entropy(x, y)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, softjit.cross_entropy(x, y, reduction="none"))
    loss, grad = gufuncs.cross_entropy_with_grad(x, y)
    want_loss, want_grad = softjit.cross_entropy_with_grad(x, y, reduction="none")
    np.testing.assert_array_equal(loss, want_loss)
    np.testing.assert_array_equal(grad, want_grad)
    # the label broadcasts; out-of-range labels give NaN
    np.testing.assert_array_equal(gufuncs.cross_entropy(x, 2),
                                  softjit.cross_entropy(x, np.full((2, 3), 2), reduction="none"))
    assert np.isnan(gufuncs.cross_entropy(x[0, 0], 5)) and np.isnan(gufuncs.cross_entropy(x[0, 0],
                                                                                          -1))
    np.testing.assert_array_equal(gufuncs.margin_ranking_loss(x, 1, 0.5),
                                  softjit.margin_ranking_loss(x, margin=0.5, positive=1,
                                                              reduction="none"))
    np.testing.assert_array_equal(gufuncs.multi_margin_loss(x, y, 0.5),
                                  softjit.multi_margin_loss(x, y, margin=0.5, reduction="none"))
    assert np.isnan(gufuncs.margin_ranking_loss(x[0, 0], 5, 1.0))
    assert np.isnan(gufuncs.multi_margin_loss(x[0, 0], 7, 1.0))
    # numpy's axes= puts the class axis elsewhere
    xt = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    np.testing.assert_allclose(gufuncs.cross_entropy(xt, y, axes=[1, (), ()]),
                               softjit.cross_entropy(xt, y, axis=1, reduction="none"),
                               **tol(dtype))
    with pytest.raises(TypeError):
        gufuncs.cross_entropy(x, y.astype(np.float64))


# --- one convention, where=, dask --------------------------------------------


def test_losses_share_one_convention():
    """Data arguments, then axis (positional), then keyword-only options;
    every loss returns a numpy scalar for 'mean'/'sum' and an array for 'none'."""
    import inspect

    for fn in (softjit.cross_entropy, softjit.margin_ranking_loss, softjit.multi_margin_loss,
               softjit.cross_entropy_with_grad, softjit.margin_ranking_loss_with_grad,
               softjit.multi_margin_loss_with_grad):
        params = list(inspect.signature(fn).parameters.values())
        names = [p.name for p in params]
        i = names.index("axis")
        assert params[i].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[i + 1:]), fn
        assert {"reduction", "where"} <= set(names[i + 1:])
        assert inspect.signature(fn).parameters["reduction"].default == "mean"
        assert "Any" not in str(inspect.signature(fn).return_annotation)


def test_margin_ranking_where_leaves_entries_out(rng):
    s = rng.standard_normal((6, 5))
    keep = rng.random((6, 5)) < 0.7
    keep[2, 0] = False  # a positive left out: the example does not count
    keep[3, 0] = True
    loss, grad = softjit.margin_ranking_loss_with_grad(s, where=keep, reduction="none")
    for r in range(6):
        if not keep[r, 0]:
            assert loss[r] == 0 and (grad[r] == 0).all()
            continue
        sub = s[r][keep[r]]  # the positive stays first
        want = refg.margin_ranking(sub, reduction="none")
        np.testing.assert_allclose(loss[r], want, rtol=1e-14)
        assert (grad[r][~keep[r]] == 0).all()
    mean = softjit.margin_ranking_loss(s, where=keep)
    np.testing.assert_allclose(mean, loss.sum() / keep[:, 0].sum(), rtol=1e-14)
    fd = refg.finite_difference(lambda v: softjit.margin_ranking_loss(v, where=keep), s)
    np.testing.assert_allclose(softjit.margin_ranking_loss_with_grad(s, where=keep)[1], fd,
                               rtol=1e-6, atol=1e-8)


def test_multi_margin_where_is_the_loss_over_the_kept_classes(rng):
    x = rng.standard_normal((5, 6))
    y = rng.integers(0, 6, 5)
    keep = rng.random((5, 6)) < 0.7
    keep[np.arange(5), y] = True
    keep[4, y[4]] = False  # a target left out: the sample does not count
    loss = softjit.multi_margin_loss(x, y, where=keep, reduction="none")
    for r in range(4):
        cols = np.flatnonzero(keep[r])
        want = refg.multi_margin(x[r][cols], int(np.searchsorted(cols, y[r])), reduction="none")
        np.testing.assert_allclose(loss[r], want, rtol=1e-14)
    assert loss[4] == 0
    np.testing.assert_allclose(softjit.multi_margin_loss(x, y, where=keep), loss.sum() / 4,
                               rtol=1e-14)
    fd = refg.finite_difference(lambda v: softjit.multi_margin_loss(v, y, where=keep), x)
    np.testing.assert_allclose(softjit.multi_margin_loss_with_grad(x, y, where=keep)[1], fd,
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_losses_of_dask_arrays_are_lazy_and_equal(reduction, rng):
    da = pytest.importorskip("dask.array")
    s = rng.standard_normal((40, 7))
    y = rng.integers(0, 7, 40)
    keep = rng.random((40, 7)) < 0.8
    sd = da.from_array(s, chunks=(15, 3))
    for fn, args in ((softjit.margin_ranking_loss_with_grad, ()),
                     (softjit.multi_margin_loss_with_grad, (y,))):
        for where in (None, keep):
            lazy_loss, lazy_grad = fn(sd, *args, reduction=reduction, where=where)
            assert isinstance(lazy_loss, da.Array) and isinstance(lazy_grad, da.Array)
            loss, grad = fn(s, *args, reduction=reduction, where=where)
            np.testing.assert_allclose(lazy_loss.compute(), loss, rtol=1e-13)
            np.testing.assert_allclose(lazy_grad.compute(), grad, rtol=1e-13, atol=1e-16)
    with pytest.raises(IndexError):
        softjit.multi_margin_loss(sd, np.full(40, 9))
