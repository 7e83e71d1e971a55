"""Benchmark engine: time softjit against numpy, scipy, torch and jax and
against a plain memory copy of the same bytes, in one process and one run.

Used by ``benchmarks/run.py`` (the benchmark suite).  Each case times every
available implementation on the same input; figures are the median of
several repeats (each repeat loops long enough to be timed reliably), and
ratios are taken within the run, so they hold on a noisy machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

import softjit

OPS = ("softmax", "softmax_inplace", "log_softmax", "logsumexp")


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark input: an operation on a ``shape`` array of ``dtype``
    along the last axis."""

    op: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def label(self) -> str:
        return f"{self.op} {'x'.join(map(str, self.shape))} {self.dtype}"


def time_call(fn: Callable[[], Any], repeats: int = 5, min_time: float = 0.02) -> float:
    """Median seconds per call over ``repeats`` timed loops of >= ``min_time``."""
    fn()  # warm up (compilation, caches)
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_time / once))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return float(np.median(times))


def _numpy_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _numpy_log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - np.max(x, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def _numpy_logsumexp(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))[..., 0]


def implementations(case: Case, x: np.ndarray) -> Iterator[tuple[str, Callable[[], Any]]]:
    """``(name, zero-argument callable)`` for every available implementation
    of ``case`` on ``x``, plus the ``copy`` floor (np.copyto of x's bytes)."""
    out = np.empty_like(x)
    yield "copy", lambda: np.copyto(out, x)
    scratch = x.copy()
    if case.op == "softmax":
        yield "softjit", lambda: softjit.softmax(x)
        yield "numpy", lambda: _numpy_softmax(x)
    elif case.op == "softmax_inplace":
        yield "softjit", lambda: softjit.softmax(scratch, out=scratch)
        yield "numpy", lambda: _numpy_softmax(x)
    elif case.op == "log_softmax":
        yield "softjit", lambda: softjit.log_softmax(x)
        yield "numpy", lambda: _numpy_log_softmax(x)
    else:
        yield "softjit", lambda: softjit.logsumexp(x)
        yield "numpy", lambda: _numpy_logsumexp(x)
    yield from _optional_implementations(case, x)


def _optional_implementations(case: Case, x: np.ndarray) -> Iterator[tuple[str, Callable]]:
    try:
        from scipy import special
    except ImportError:
        special = None
    if special is not None:
        fn = {"softmax": special.softmax, "softmax_inplace": special.softmax,
              "log_softmax": special.log_softmax, "logsumexp": special.logsumexp}[case.op]
        yield "scipy", lambda: fn(x, axis=-1)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        tx = torch.from_numpy(x)
        fn = {"softmax": lambda: torch.softmax(tx, -1),
              "softmax_inplace": lambda: torch.softmax(tx, -1),
              "log_softmax": lambda: torch.log_softmax(tx, -1),
              "logsumexp": lambda: torch.logsumexp(tx, -1)}[case.op]
        yield "torch", fn
    try:
        import jax
    except ImportError:
        jax = None
    if jax is not None:
        jx = jax.device_put(x)
        jfn = jax.jit({"softmax": jax.nn.softmax, "softmax_inplace": jax.nn.softmax,
                       "log_softmax": jax.nn.log_softmax,
                       "logsumexp": lambda a: jax.scipy.special.logsumexp(a, axis=-1)}[case.op])
        yield "jax", lambda: jfn(jx).block_until_ready()


def run_case(case: Case, only: Iterable[str] | None = None, repeats: int = 5) -> dict[str, Any]:
    """Time every implementation on one case; return a JSON-ready record."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(case.shape) * 4).astype(case.dtype)
    times = {}
    for name, fn in implementations(case, x):
        if only is not None and name not in only and name != "copy":
            continue
        times[name] = time_call(fn, repeats=repeats)
    return {"op": case.op, "shape": list(case.shape), "dtype": case.dtype, "size": case.size,
            "seconds": times}


def default_grid(quick: bool = False) -> list[Case]:
    """Shapes from a 14-element vector to 2**24 elements: short, square and
    long rows, float32 and float64."""
    shapes = [(14,), (64, 10), (1000, 100), (256, 1024), (1_000_000, 10), (4096, 4096),
              (8, 2_000_000), (1, 1 << 24)]
    sweep = [((1 << k) // 1024, 1024) if k >= 10 else (1, 1 << k) for k in range(4, 25, 2)]
    if quick:
        shapes = [(14,), (1000, 100), (4096, 4096), (1_000_000, 10)]
        sweep = []
    cases = []
    for dtype in ("float32", "float64"):
        for shape in dict.fromkeys(shapes + sweep):
            cases.append(Case("softmax", shape, dtype))
        for shape in [(4096, 4096)] + ([] if quick else [(1_000_000, 10)]):
            for op in OPS[1:]:
                cases.append(Case(op, shape, dtype))
    return cases


def environment() -> dict[str, Any]:
    import numba

    info = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
            "machine": platform.machine(), "cpu": _cpu_name(), "cores": os.cpu_count(),
            "numpy": np.__version__, "numba": numba.__version__,
            "softjit": softjit.__version__, "threads": numba.get_num_threads()}
    for mod in ("scipy", "torch", "jax"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def table(records: list[dict[str, Any]]) -> str:
    """Times (ms) per implementation and ratios to softjit and to the copy."""
    names = ["softjit", "copy", "numpy", "scipy", "torch", "jax"]
    present = [n for n in names if any(n in r["seconds"] for r in records)]
    head = f"{'case':<34}" + "".join(f"{n:>10}" for n in present)
    head += f"{'sj/copy':>9}" + "".join(f"{n + '/sj':>10}" for n in present[2:])
    lines = [head, "-" * len(head)]
    for r in records:
        s = r["seconds"]
        label = f"{r['op']} {'x'.join(map(str, r['shape']))} {r['dtype']}"
        row = f"{label:<34}" + "".join(
            f"{s[n] * 1e3:>9.3f}m" if n in s else f"{'-':>10}" for n in present)
        row += f"{s['softjit'] / s['copy']:>9.2f}" if "softjit" in s else f"{'-':>9}"
        row += "".join(f"{s[n] / s['softjit']:>10.2f}" if n in s and "softjit" in s
                       else f"{'-':>10}" for n in present[2:])
        lines.append(row)
    return "\n".join(lines)


def save_json(path: str, env: dict[str, Any], records: list[dict[str, Any]]) -> None:
    with open(path, "w") as f:
        json.dump({"environment": env, "results": records}, f, indent=1)


def plot(path: str, records: list[dict[str, Any]]) -> None:
    """Time per element against size for the softmax cases (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, dtype in zip(axes, ("float32", "float64"), strict=True):
        rows = sorted((r for r in records if r["op"] == "softmax" and r["dtype"] == dtype),
                      key=lambda r: r["size"])
        for name in ("softjit", "numpy", "scipy", "torch", "jax", "copy"):
            pts = [(r["size"], r["seconds"][name] / r["size"] * 1e9) for r in rows
                   if name in r["seconds"]]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=name,
                        ls="--" if name == "copy" else "-")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("elements")
        ax.set_title(f"softmax along the last axis, {dtype}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ns per element")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
