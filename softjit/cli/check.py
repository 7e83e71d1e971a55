"""The self-check of ``python -m softjit check``: every public array
function of softjit and every gufunc against the plain numpy reference of
:mod:`softjit.cli.reference`, computed in float64 on the same inputs.

Each function runs on a few inputs (float32 and float64, short and long
slices, the class axis first, in the middle and last, one slice shifted by
+1000 so that a formula without the maximum subtracted would overflow, and
arrays large enough for the multi-threaded drivers).  The error of each
result is measured in units of the input dtype's machine epsilon and must
stay below :data:`TOLERANCE_EPS`; a result of the wrong shape or dtype, or
an exception, fails the check.

Examples
--------
>>> from softjit.cli import check
>>> result = check.run_check(check.CHECKS[0])
>>> result.name, result.passed
('softmax', True)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

import softjit
from softjit import gufuncs
from softjit.cli import reference as ref

#: A result passes when its error is below this many machine epsilons.
TOLERANCE_EPS = 64.0

#: The inputs every function is checked on: (dtype, shape, class axis).
CONFIGS: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("float64", (14,), -1),
    ("float32", (300, 257), -1),  # above the multi-threaded threshold
    ("float64", (40, 30, 20), 1),
    ("float32", (500, 300), 0),
)

#: Largest input for the functions whose result is n times larger.
SMALL_SIZE = 30_000


@dataclasses.dataclass(frozen=True)
class Inputs:
    """One input of the check and the arguments derived from it.

    ``x``: logits or scores; ``y``/``logp``: softmax and log_softmax of
    ``x`` (from the reference); ``g``: a cotangent; ``labels``: one class
    index per slice; ``probs``: class probabilities; ``weight``: one weight
    per class.  Float arrays have the checked dtype.
    """

    x: np.ndarray
    axis: int
    y: np.ndarray
    logp: np.ndarray
    g: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    weight: np.ndarray

    @classmethod
    def make(cls, dtype: str, shape: tuple[int, ...], axis: int, seed: int = 0) -> Inputs:
        """Random inputs of ``shape`` and ``dtype`` with classes along ``axis``."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(shape) * 10
        np.moveaxis(x, axis, -1)[(0,) * (x.ndim - 1)] += 1000.0
        n = shape[axis]
        batch = np.delete(shape, axis % len(shape))
        return cls(
            x=x.astype(dtype),
            axis=axis,
            y=ref.softmax(x, axis).astype(dtype),
            logp=ref.log_softmax(x, axis).astype(dtype),
            g=rng.standard_normal(shape).astype(dtype),
            labels=rng.integers(0, n, tuple(batch)),
            probs=ref.softmax(rng.standard_normal(shape), axis).astype(dtype),
            weight=rng.uniform(0.5, 2.0, n),
        )

    def astype(self, dtype: str) -> Inputs:
        """The same inputs with the float arrays converted to ``dtype``."""
        return dataclasses.replace(
            self, **{f: getattr(self, f).astype(dtype) for f in ("x", "y", "logp", "g", "probs")}
        )

    def last_axis(self) -> Inputs:
        """The same inputs with the class axis moved last (for the gufuncs)."""
        moved = {f: np.moveaxis(getattr(self, f), self.axis, -1)
                 for f in ("x", "y", "logp", "g", "probs")}
        return dataclasses.replace(self, axis=-1, **moved)


@dataclasses.dataclass(frozen=True)
class Check:
    """One function under check.

    ``ours`` runs softjit on the inputs of the checked dtype, ``theirs``
    the reference on the float64 inputs; each returns a result or a tuple
    of results.  ``scale`` says what an error is relative to: ``'rel'``
    each value (elementwise relative error), ``'log'`` ``max(|value|, 1)``
    (for logarithms, whose values cross 0), ``'norm'`` the largest
    ``|value|`` of the result.  ``small`` restricts the check to the small
    inputs; ``last_axis`` moves the class axis last first.
    """

    name: str
    ours: Callable[[Inputs], Any]
    theirs: Callable[[Inputs], Any]
    scale: str = "norm"
    small: bool = False
    last_axis: bool = False


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one :class:`Check`: the worst error over its inputs
    in machine epsilons, and a note on what failed (empty if it passed)."""

    name: str
    worst_eps: float
    n_inputs: int
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.note and self.worst_eps < TOLERANCE_EPS

    def line(self) -> str:
        """One line of the report: name, PASS/FAIL and the error."""
        verdict = "PASS" if self.passed else "FAIL"
        detail = self.note or (f"max error {self.worst_eps:.1f} eps over {self.n_inputs} "
                               f"inputs (limit {TOLERANCE_EPS:g})")
        return f"{self.name:<36}{verdict}  {detail}"


def _parts(result: Any) -> list[np.ndarray]:
    return [np.asarray(r) for r in (result if isinstance(result, tuple) else (result,))]


def error_eps(got: np.ndarray, want: np.ndarray, dtype: np.dtype, scale: str) -> float:
    """Error of ``got`` against ``want`` in units of ``dtype``'s epsilon.

    Examples
    --------
    >>> import numpy as np
    >>> error_eps(np.array([1.0 + 2**-51]), np.array([1.0]), np.dtype("float64"), "rel")
    2.0
    """
    finfo = np.finfo(dtype)
    magnitude = np.abs(want.astype(np.float64))
    if scale == "rel":
        denom = magnitude + finfo.tiny
    elif scale == "log":
        denom = np.maximum(magnitude, 1.0)
    else:
        denom = max(float(magnitude.max(initial=0.0)), float(finfo.tiny))
    diff = np.abs(got.astype(np.float64) - want)
    return float(np.max(diff / denom, initial=0.0)) / float(finfo.eps)


def _compare(got: Any, want: Any, dtype: np.dtype, scale: str) -> tuple[float, str]:
    """(worst error in eps, note) of one call; the note names a wrong
    number of results, shape or dtype."""
    got_parts, want_parts = _parts(got), _parts(want)
    if len(got_parts) != len(want_parts):
        return np.inf, f"{len(got_parts)} results, expected {len(want_parts)}"
    worst = 0.0
    for g, w in zip(got_parts, want_parts, strict=True):
        if g.shape != w.shape:
            return np.inf, f"shape {g.shape}, expected {w.shape}"
        if g.dtype != dtype:
            return np.inf, f"dtype {g.dtype}, expected {dtype}"
        err = error_eps(g, w, dtype, scale)
        worst = err if np.isnan(err) else max(worst, err)
    return worst, ""


@functools.cache
def _inputs(dtype: str, shape: tuple[int, ...], axis: int, seed: int) -> Inputs:
    return Inputs.make(dtype, shape, axis, seed)


def run_check(check: Check, seed: int = 0) -> CheckResult:
    """Run one check on every input in :data:`CONFIGS` that applies to it."""
    configs = [c for c in CONFIGS if not check.small or np.prod(c[1]) <= SMALL_SIZE]
    worst = 0.0
    for dtype, shape, axis in configs:
        inputs = _inputs(dtype, shape, axis, seed)
        if check.last_axis:
            inputs = inputs.last_axis()
        try:
            got = check.ours(inputs)
        except Exception as exc:  # a broken function is reported, not raised
            return CheckResult(check.name, np.inf, len(configs),
                               f"{type(exc).__name__}: {exc} ({dtype} {shape})")
        err, note = _compare(got, check.theirs(inputs.astype("float64")),
                             np.dtype(dtype), check.scale)
        if note or not err < TOLERANCE_EPS:
            return CheckResult(check.name, err, len(configs),
                               note and f"{note} ({dtype} {shape})")
        worst = max(worst, err)
    return CheckResult(check.name, worst, len(configs))


def run_all(checks: Iterable[Check] | None = None, seed: int = 0) -> list[CheckResult]:
    """Run ``checks`` (default: :data:`CHECKS`) and return their results.

    Examples
    --------
    >>> [r.line().split()[:2] for r in run_all(CHECKS[1:3])]
    [['log_softmax', 'PASS'], ['logsumexp', 'PASS']]
    """
    return [run_check(c, seed) for c in (CHECKS if checks is None else checks)]


# ---------------------------------------------------------------------------
# The checks: softjit's public functions, then the gufuncs
# ---------------------------------------------------------------------------


def _cross_entropy(i: Inputs) -> tuple[Any, Any]:
    return (softjit.cross_entropy(i.x, i.labels, i.axis),
            softjit.cross_entropy(i.x, i.probs, i.axis, reduction="none"))


def _cross_entropy_with_grad(i: Inputs) -> tuple[Any, ...]:
    return (*softjit.cross_entropy_with_grad(i.x, i.labels, i.axis),
            *softjit.cross_entropy_with_grad(i.x, i.probs, i.axis, reduction="none"))


def _ref_cross_entropy_with_grad(i: Inputs) -> tuple[Any, ...]:
    return (*ref.cross_entropy_with_grad(i.x, i.labels, i.axis),
            *ref.cross_entropy_with_grad(i.x, i.probs, i.axis, reduction="none"))


def _margin_ranking_with_grad(i: Inputs) -> tuple[Any, ...]:
    return (*softjit.margin_ranking_loss_with_grad(i.x, axis=i.axis),
            *softjit.margin_ranking_loss_with_grad(i.x, i.axis, margin=0.5, positive=1,
                                                       reduction="none"))


def _ref_margin_ranking_with_grad(i: Inputs) -> tuple[Any, ...]:
    return (*ref.margin_ranking_loss_with_grad(i.x, axis=i.axis),
            *ref.margin_ranking_loss_with_grad(i.x, i.axis, margin=0.5, positive=1,
                                                       reduction="none"))


def _multi_margin_with_grad(i: Inputs) -> tuple[Any, ...]:
    return (*softjit.multi_margin_loss_with_grad(i.x, i.labels, axis=i.axis),
            *softjit.multi_margin_loss_with_grad(i.x, i.labels, i.axis, p=2, margin=0.5,
                                                 weight=i.weight, reduction="sum"))


def _ref_multi_margin_with_grad(i: Inputs) -> tuple[Any, ...]:
    return (*ref.multi_margin_loss_with_grad(i.x, i.labels, axis=i.axis),
            *ref.multi_margin_loss_with_grad(i.x, i.labels, i.axis, p=2, margin=0.5,
                                             weight=i.weight, reduction="sum"))


def _losses_only(fn: Callable[[Inputs], tuple[Any, ...]]) -> Callable[[Inputs], tuple[Any, ...]]:
    """The losses of a ``(loss, grad, loss, grad, ...)`` function."""
    return lambda i: fn(i)[::2]


CHECKS: tuple[Check, ...] = (
    Check("softmax", lambda i: softjit.softmax(i.x, i.axis),
          lambda i: ref.softmax(i.x, i.axis), "rel"),
    Check("log_softmax", lambda i: softjit.log_softmax(i.x, i.axis),
          lambda i: ref.log_softmax(i.x, i.axis), "log"),
    Check("logsumexp", lambda i: softjit.logsumexp(i.x, i.axis),
          lambda i: ref.logsumexp(i.x, i.axis), "log"),
    Check("softmax_vjp", lambda i: softjit.softmax_vjp(i.y, i.g, i.axis),
          lambda i: ref.softmax_vjp(i.y, i.g, i.axis)),
    Check("softmax_jvp", lambda i: softjit.softmax_jvp(i.y, i.g, i.axis),
          lambda i: ref.softmax_jvp(i.y, i.g, i.axis)),
    Check("log_softmax_vjp", lambda i: softjit.log_softmax_vjp(i.logp, i.g, i.axis),
          lambda i: ref.log_softmax_vjp(i.logp, i.g, i.axis)),
    Check("softmax_jacobian", lambda i: softjit.softmax_jacobian(i.y, i.axis),
          lambda i: ref.softmax_jacobian(i.y, i.axis), small=True),
    Check("cross_entropy", _cross_entropy, _losses_only(_ref_cross_entropy_with_grad), "log"),
    Check("cross_entropy_with_grad", _cross_entropy_with_grad, _ref_cross_entropy_with_grad),
    Check("margin_ranking_loss",
          lambda i: (softjit.margin_ranking_loss(i.x, axis=i.axis),
                     softjit.margin_ranking_loss(i.x, i.axis, margin=0.5, positive=1,
                                                 reduction="none")),
          _losses_only(_ref_margin_ranking_with_grad)),
    Check("margin_ranking_loss_with_grad", _margin_ranking_with_grad,
          _ref_margin_ranking_with_grad),
    Check("multi_margin_loss",
          lambda i: (softjit.multi_margin_loss(i.x, i.labels, axis=i.axis),
                     softjit.multi_margin_loss(i.x, i.labels, i.axis, p=2, margin=0.5,
                                               weight=i.weight, reduction="sum")),
          _losses_only(_ref_multi_margin_with_grad)),
    Check("multi_margin_loss_with_grad", _multi_margin_with_grad, _ref_multi_margin_with_grad),
    # the gufunc layer, on the same inputs with the class axis last
    Check("gufuncs.softmax", lambda i: gufuncs.softmax(i.x),
          lambda i: ref.softmax(i.x), "rel", last_axis=True),
    Check("gufuncs.log_softmax", lambda i: gufuncs.log_softmax(i.x),
          lambda i: ref.log_softmax(i.x), "log", last_axis=True),
    Check("gufuncs.logsumexp", lambda i: gufuncs.logsumexp(i.x),
          lambda i: ref.logsumexp(i.x), "log", last_axis=True),
    Check("gufuncs.softmax_vjp", lambda i: gufuncs.softmax_vjp(i.y, i.g),
          lambda i: ref.softmax_vjp(i.y, i.g), last_axis=True),
    Check("gufuncs.softmax_jvp", lambda i: gufuncs.softmax_jvp(i.y, i.g),
          lambda i: ref.softmax_jvp(i.y, i.g), last_axis=True),
    Check("gufuncs.log_softmax_vjp", lambda i: gufuncs.log_softmax_vjp(i.logp, i.g),
          lambda i: ref.log_softmax_vjp(i.logp, i.g), last_axis=True),
    Check("gufuncs.softmax_jacobian", lambda i: gufuncs.softmax_jacobian(i.y),
          lambda i: ref.softmax_jacobian(i.y), small=True, last_axis=True),
    Check("gufuncs.cross_entropy", lambda i: gufuncs.cross_entropy(i.x, i.labels),
          lambda i: ref.cross_entropy_with_grad(i.x, i.labels, reduction="none")[0],
          "log", last_axis=True),
    Check("gufuncs.cross_entropy_with_grad",
          lambda i: gufuncs.cross_entropy_with_grad(i.x, i.labels),
          lambda i: ref.cross_entropy_with_grad(i.x, i.labels, reduction="none"),
          last_axis=True),
    Check("gufuncs.margin_ranking_loss", lambda i: gufuncs.margin_ranking_loss(i.x, 0, 1.0),
          lambda i: ref.margin_ranking_loss_with_grad(i.x, reduction="none")[0],
          last_axis=True),
    Check("gufuncs.multi_margin_loss", lambda i: gufuncs.multi_margin_loss(i.x, i.labels, 1.0),
          lambda i: ref.multi_margin_loss_with_grad(i.x, i.labels, reduction="none")[0],
          last_axis=True),
)
