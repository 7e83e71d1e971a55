"""Time softjit's first calls: each in a fresh process with an empty numba
cache (what a new user's first call costs), and once with a warm cache.

    python benchmarks/compile_time.py            # every case (a few minutes)
    python benchmarks/compile_time.py --quick    # two first softmaxes and the warm cache only

Each child process reports how long importing numpy and numba took, then
importing softjit, then the first call; the table shows the time over
importing numpy and numba (softjit's import plus the call), the figure the
targets speak of.  Children run one at a time, from a temporary directory,
importing the softjit that this Python imports (set PYTHONPATH to time
another checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import numba
t1 = time.perf_counter()
import softjit
t2 = time.perf_counter()
op, dtype, axis = sys.argv[1], sys.argv[3], int(sys.argv[4])
shape = tuple(int(s) for s in sys.argv[2].split("x"))
x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
fn = getattr(softjit, op)
if op == "softmax_vjp":  # the derivative alone: numpy computes the forward output
    e = np.exp(x - x.max(axis, keepdims=True))
    args = (e / e.sum(axis, keepdims=True), np.ones_like(x), axis)
elif op.startswith("cross_entropy"):
    args = (x, np.arange(x.shape[0]) % x.shape[-1], axis)
else:
    args = (x, axis)
t3 = time.perf_counter()
fn(*args)
t4 = time.perf_counter()
print(json.dumps({"numpy_numba": t1 - t0, "softjit": t2 - t1, "call": t4 - t3,
                  "file": softjit.__file__}))
"""

#: (function, shape, dtype, axis): the first calls the README's table lists.
FIRST = ("softmax", "1000x100", "float32", -1)
CASES = [
    FIRST,
    ("log_softmax", "300x700", "float64", -1),
    ("logsumexp", "20000x12", "float32", -1),
    ("softmax", "3x150000", "float64", -1),
    ("softmax", "800x60", "float32", 0),
    ("softmax", "14", "float64", -1),  # the seeds' 14-element vector
    ("softmax_vjp", "500x40", "float32", -1),
    ("cross_entropy_with_grad", "256x10", "float32", -1),
]
#: More row classes for the full run: one row, short, medium and long rows.
SHAPES = {10: "10000x10", 1000: "100x1000", 100000: "2x100000"}


def run_child(op: str, shape: str, dtype: str, axis: int, cache: str) -> dict[str, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run([sys.executable, "-c", CHILD, op, shape, dtype, str(axis)],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                              check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def cases(quick: bool) -> list[tuple[str, str, str, int]]:
    if quick:
        return [FIRST, CASES[5]]
    return CASES + [(op, SHAPES[n], dt, -1) for op in ("softmax", "log_softmax", "logsumexp")
                    for dt in ("float32", "float64") for n in SHAPES]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first softmax and warm cache")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    print("| first call (fresh process) | cache | numpy+numba import | over that: "
          "softjit import + call |")
    print("|---|---|---|---|")
    location = None
    for op, shape, dtype, axis in cases(args.quick):
        with tempfile.TemporaryDirectory() as cache:
            t = run_child(op, shape, dtype, axis, cache)
        location = t["file"]
        where = "" if axis == -1 else f", axis={axis}"
        print(f"| {op} {shape} {dtype}{where} | empty | {t['numpy_numba']:.2f} s | "
              f"**{t['softjit'] + t['call']:.2f} s** |", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        run_child(*FIRST, cache)  # fills the cache
        t = run_child(*FIRST, cache)
    print(f"| {' '.join(FIRST[:3])} | warm | {t['numpy_numba']:.2f} s | "
          f"**{t['softjit'] + t['call']:.2f} s** |")
    print(f"(softjit from {location})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
