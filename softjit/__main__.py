"""``python -m softjit``: environment report, self-check and a short timing
table against numpy.

The self-check compares every public function (and the gufunc layer)
with a plain numpy computation in float64; the exit status is 1 when any
check fails.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable

import numpy as np


def numpy_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The textbook numpy softmax, used as the reference and the baseline."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def numpy_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def numpy_logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)), axis)


def info() -> list[str]:
    """Versions, threading layer and thread count (runs one parallel call)."""
    import numba

    import softjit

    softjit.softmax(np.zeros((64, 2048)))  # large enough for the parallel driver
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised"
    return [
        f"softjit {softjit.__version__}",
        f"python {platform.python_version()} ({platform.machine()})",
        f"numpy {np.__version__}, numba {numba.__version__}",
        f"numba threading layer: {layer}, threads: {numba.get_num_threads()}",
        f"cache directory: {numba.config.CACHE_DIR or '__pycache__ beside the package'}",
    ]


def check(seed: int = 0) -> tuple[bool, list[str]]:
    """Compare softjit with the numpy reference; return (all passed, lines)."""
    import softjit
    from softjit import gufuncs

    rng = np.random.default_rng(seed)
    lines = []
    ok_all = True
    cases: list[tuple[str, Callable[[np.ndarray, int], np.ndarray],
                      Callable[[np.ndarray, int], np.ndarray]]] = [
        ("softmax", softjit.softmax, numpy_softmax),
        ("log_softmax", softjit.log_softmax, numpy_log_softmax),
        ("logsumexp", softjit.logsumexp, numpy_logsumexp),
        ("gufuncs.softmax", lambda x, axis: gufuncs.softmax(x, axis=axis), numpy_softmax),
        ("gufuncs.log_softmax", lambda x, axis: gufuncs.log_softmax(x, axis=axis),
         numpy_log_softmax),
        ("gufuncs.logsumexp", lambda x, axis: gufuncs.logsumexp(x, axis=axis), numpy_logsumexp),
    ]
    for name, ours, theirs in cases:
        worst = 0.0
        for dtype, shape, axis in [(np.float64, (14,), -1), (np.float32, (300, 257), -1),
                                   (np.float64, (40, 30, 20), 1), (np.float32, (500, 300), 0)]:
            x = (rng.standard_normal(shape) * 10).astype(dtype)
            want = theirs(x.astype(np.float64), axis)
            got = ours(x, axis).astype(np.float64)
            # relative error; for log outputs relative to max(|value|, 1), as
            # the numpy reference itself has an absolute error of ~eps near 0
            scale = np.abs(want) + np.finfo(dtype).tiny
            if "softmax" not in name or "log" in name:
                scale = np.maximum(scale, 1.0)
            err = np.max(np.abs(got - want) / scale)
            worst = max(worst, float(err) / np.finfo(dtype).eps)
        ok = worst < 64
        ok_all &= ok
        lines.append(f"{name:<22}{'PASS' if ok else 'FAIL'}  (max error {worst:.1f} eps)")
    return ok_all, lines


def best_time(fn: Callable[[], object], budget: float = 0.2) -> float:
    """Best time of one call, repeating for about ``budget`` seconds."""
    fn()
    best = float("inf")
    deadline = time.perf_counter() + budget
    while True:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() > deadline:
            return best


def timing() -> list[str]:
    """softjit vs numpy and a plain copy of the same bytes."""
    import softjit

    rng = np.random.default_rng(1)
    header = ("shape", "dtype", "softjit", "numpy", "copy", "numpy/softjit")
    lines = ["{:<14}{:<9}{:>10}{:>10}{:>10}{:>15}".format(*header)]
    for shape, dtype in [((14,), np.float64), ((1000, 100), np.float32),
                         ((2048, 2048), np.float32), ((2048, 2048), np.float64)]:
        x = rng.standard_normal(shape).astype(dtype)
        out = np.empty_like(x)
        t_ours = best_time(lambda x=x: softjit.softmax(x))
        t_np = best_time(lambda x=x: numpy_softmax(x))
        t_copy = best_time(lambda x=x, out=out: np.copyto(out, x))
        lines.append(f"{shape!s:<14}{np.dtype(dtype).name:<9}{t_ours * 1e3:>8.3f}ms"
                     f"{t_np * 1e3:>8.3f}ms{t_copy * 1e3:>8.3f}ms{t_np / t_ours:>14.1f}x")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m softjit",
        description="Report the environment, self-check softjit against numpy, time it.",
    )
    parser.add_argument("--no-timing", action="store_true", help="skip the timing table")
    args = parser.parse_args(argv)
    print("\n".join(info()))
    print("\nself-check against the numpy float64 reference")
    ok, lines = check()
    print("\n".join(lines))
    if not args.no_timing:
        print("\nsoftmax along the last axis, best time per call")
        print("\n".join(timing()))
    print("\nself-check " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
