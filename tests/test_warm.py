"""``python -m softjit warm`` fills numba's cache with every kernel: a later
process's calls of every public function (the self-check's inputs, other
shapes than warm's) load their kernels and compile nothing.

The test warms the cache the rest of the suite uses (numba's default
location for the package, or ``NUMBA_CACHE_DIR``): whatever the other test
processes compiled already is loaded, and what warm compiles they load in
turn, so the suite compiles each kernel once (an empty cache of its own
would compile all of them a second time, about 8 minutes on a 2-core
machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import softjit
from softjit.cli import bench, warm

PACKAGE_PARENT = Path(softjit.__file__).resolve().parent.parent

#: Runs the self-check (every public function and gufunc, with its own
#: inputs), then more calls in other layouts and sizes, counting numba's
#: compilations (loading from the cache is not one).
_CALLS = """
import numpy as np
from numba.core import event

import softjit
from softjit.cli import warm
from softjit.cli import check

with event.install_recorder("numba:compile") as recorder:
    results = check.run_all()
    assert all(r.passed for r in results)
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        for shape in [(5,), (7, 33), (123, 45), (3000, 17), (5, 50000), (2, 3, 400)]:
            x = rng.standard_normal(shape).astype(dt)
            for fn in (softjit.softmax, softjit.log_softmax, softjit.logsumexp):
                fn(x)
                fn(x, 0)
                fn(x, where=x > 0)
            softjit.softmax_vjp(softjit.softmax(x), x)
compiled = sorted({str(e.data["dispatcher"].py_func.__qualname__) for _, e in recorder.buffer
                   if e.data.get("dispatcher") is not None})
print("COMPILED", compiled)
"""


def _python(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=900, check=False)


def test_warm_compiles_every_kernel_a_later_process_uses() -> None:
    proc = _python(["-m", "softjit", "warm"])
    assert proc.returncode == 0, proc.stderr
    assert "compiled softjit's kernels into numba's cache in" in proc.stdout
    assert bench.cache_dir() in proc.stdout
    steps = len(warm.steps())
    assert f"{steps}/{steps} done" in proc.stderr  # the progress bar, a line per step
    proc = _python(["-c", _CALLS])
    assert proc.returncode == 0, proc.stderr
    assert "COMPILED []" in proc.stdout, proc.stdout
