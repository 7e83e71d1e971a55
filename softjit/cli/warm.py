"""``python -m softjit warm``: compile every kernel into numba's cache.

numba compiles a kernel on its first call and stores the machine code in
its on-disk cache (``NUMBA_CACHE_DIR``, else beside the package or in the
user's cache directory); later processes load it in milliseconds.  A
container image, a cluster's shared install or a CI cache can be prepared
once with ``python -m softjit warm``: it calls every public function on
small inputs chosen so that each kernel route runs once in each dtype it
serves (rows short, medium and long; along and across memory; serial and
multi-threaded; masked, weighted, in place), and builds every gufunc.
Afterwards a fresh process's first call of any public function loads its
kernels instead of compiling them.

numba compiles in one thread per process (its compiler lock), so warm
splits the steps over worker processes, one per core (at most
:data:`MAX_JOBS`): each compiles its own dtype's kernels, and numba's cache
writes are serialized by softjit's file locks.

Examples
--------
>>> [step.label for step in steps()][:3]
['softmax family float32: small arrays', 'softmax family float32: rows along memory', \
'softmax family float32: rows across memory']
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, NamedTuple

import numpy as np

import softjit
from softjit import _first, _run
from softjit.cli import bench
from softjit.kernels.kinds import Kind

DTYPES = ("float32", "float64")
#: Worker processes of :func:`warm` at most (the steps fall in two groups
#: of about the same compile time, one per dtype).
MAX_JOBS = 2


class Step(NamedTuple):
    """One group of calls, shown as one line of the progress bar."""

    label: str
    run: Callable[[], None]


def _data(dtype: str, *shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)


def _family(x: np.ndarray, axis: int = -1) -> None:
    """softmax, log_softmax and logsumexp of ``x`` with each option that
    selects its own kernel: plain, masked, weighted, signed, in place."""
    mask = x > -1.0
    for fn in (softjit.softmax, softjit.log_softmax):
        fn(x, axis)
        fn(x, axis, temperature=2.0)
        fn(x, axis, where=mask)
        y = x.copy()
        fn(y, axis, out=y)
    softjit.logsumexp(x, axis)
    softjit.logsumexp(x, axis, where=mask)
    softjit.logsumexp(x, axis, b=np.abs(x), return_sign=True)
    softjit.logsumexp(x, axis, b=x, return_sign=True)


def engine_calls(kind: Kind, dtype: str) -> list[Callable[[], None]]:
    """Calls that compile the full row engine of one operation on one
    dtype, for the row classes that the first route serves (one row, short
    and medium rows, along memory, strided and across it, small arrays and
    large): the background build of :mod:`softjit._first`."""
    fn = {Kind.SOFTMAX: softjit.softmax, Kind.LOG_SOFTMAX: softjit.log_softmax,
          Kind.LOGSUMEXP: softjit.logsumexp}[kind]
    shapes = [(14,), (3, 10), (3, 200), (20000, 12), (400, 200), (3, 2, 50)]
    calls: list[Callable[[], None]] = []
    for shape in shapes:
        x = _data(dtype, *shape)
        calls.append(lambda x=x: fn(x))
        if len(shape) == 2:  # strided rows, rows across memory
            calls.append(lambda x=x: fn(x[:, ::2]))
            calls.append(lambda x=x: fn(x, 0))
            calls.append(lambda x=x: fn(np.asfortranarray(x)))
    return calls


def _small(dtype: str) -> None:
    for n in (2, 10, 64, 200, 2000):
        x = _data(dtype, 3, n)
        _family(x)
        _family(x[0])
        _family(x[:, ::2])
        _family(x, 0)


def _along(dtype: str) -> None:
    for rows, n in ((20000, 10), (2000, 64), (400, 200), (40, 3000), (2, 40000), (1, 70000)):
        _family(_data(dtype, rows, n))
    x = _data(dtype, 1000, 60)
    _family(x[:, ::2])
    _special_rows(dtype)


def _special_rows(dtype: str) -> None:
    """Rows that the vectorized kernels hand on: special values (to the
    exact kernels) and logsumexp results near 0 (to the double-double
    refinement), for one row, short, medium and long rows, small and large
    arrays."""
    for shape in ((14,), (3, 10), (3, 200), (3000, 17), (400, 200), (3, 40000)):
        x = _data(dtype, *shape)
        x.flat[0] = np.inf
        x.flat[-1] = np.nan
        for fn in (softjit.softmax, softjit.log_softmax, softjit.logsumexp):
            fn(x)
        softjit.logsumexp(softjit.log_softmax(_data(dtype, *shape)))


def _across(dtype: str) -> None:
    for rows, n in ((300, 10), (300, 200), (4, 40000)):
        x = _data(dtype, n, rows)
        _family(x, 0)
        _family(np.asfortranarray(x.T))
    _family(_data(dtype, 4, 50, 300), 1)
    _family(_data(dtype, 100, 30, 40), (1, 2))


def _along_and_across(dtype: str) -> None:
    _along(dtype)
    _across(dtype)


def _layouts(x: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
    """``x`` in the layouts that type the kernels' arrays differently:
    C-ordered, Fortran-ordered, strided, and its rows across memory."""
    yield x, -1
    yield np.asfortranarray(x), -1
    yield x[:, ::2], -1
    yield np.ascontiguousarray(x.T), 0


def _derivatives(dtype: str) -> None:
    for shape in ((3, 10), (3, 200), (2000, 64), (300, 300)):
        for x, axis in _layouts(_data(dtype, *shape)):
            y = softjit.softmax(x, axis)
            g = np.ones_like(x)
            mask = x > -1.0
            y_masked = softjit.softmax(x, axis, where=mask)  # the forward outputs they take
            for fn in (softjit.softmax_vjp, softjit.softmax_jvp):
                fn(y, g, axis)
                fn(y_masked, g, axis, where=mask)
            logp = softjit.log_softmax(x, axis)
            softjit.log_softmax_vjp(logp, g, axis)
            softjit.log_softmax_vjp(softjit.log_softmax(x, axis, where=mask), g, axis,
                                    where=mask)
            part = x[:4, :32] if axis == -1 else x[:32, :4]
            softjit.softmax_jacobian(softjit.softmax(part, axis), axis)


def _losses(dtype: str) -> None:
    for rows, n in ((3, 10), (3, 200), (4000, 10), (300, 300)):
        labels = np.arange(rows) % n
        for x, axis in _layouts(_data(dtype, rows, n)):
            labels_here = labels if x.shape[axis] == n else labels[: x.shape[0]] % x.shape[1]
            probs = softjit.softmax(x * 0.5, axis)
            for fn in (softjit.cross_entropy, softjit.cross_entropy_with_grad):
                fn(x, labels_here, axis)
                fn(x, labels_here, axis, label_smoothing=0.1, ignore_index=1,
                   weight=np.linspace(0.5, 1.5, x.shape[axis]))
                fn(x, probs, axis)
                fn(x, labels_here, axis, where=x > -1.0)
            for fn in (softjit.margin_ranking_loss, softjit.margin_ranking_loss_with_grad):
                fn(x, axis)
                fn(x, axis, margin=0.5, positive=1, reduction="none")
                fn(x, axis, where=x > -1.0)
            for fn in (softjit.multi_margin_loss, softjit.multi_margin_loss_with_grad):
                fn(x, labels_here, axis)
                fn(x, labels_here, axis, p=2, margin=0.5,
                   weight=np.linspace(0.5, 1.5, x.shape[axis]))
                fn(x, labels_here, axis, where=x > -1.0)


def _self_check() -> None:
    from softjit.cli import check

    check.run_all()


def _conversions() -> None:
    for x in (np.arange(12).reshape(3, 4), np.linspace(-1, 1, 12, dtype=np.float16),
              np.linspace(-1, 1, 12).astype(">f8")):
        softjit.softmax(x)
        softjit.log_softmax(x)
        softjit.logsumexp(x)


def _serially(work: Callable[[], None]) -> Callable[[], None]:
    """``work`` with the parallel lock held, so that every call runs the
    serial drivers (as callers do while another thread is inside a
    parallel kernel, e.g. under dask's threaded scheduler)."""

    def run() -> None:
        with _run.PARALLEL_LOCK:
            work()

    return run


def _gufuncs() -> None:
    from softjit import gufuncs

    for name in gufuncs.__all__:
        getattr(gufuncs, name)


def steps() -> list[Step]:
    """The warm-up steps, in order."""
    out = []
    for dt in DTYPES:
        out += [
            Step(f"softmax family {dt}: small arrays", lambda dt=dt: _small(dt)),
            Step(f"softmax family {dt}: rows along memory", lambda dt=dt: _along(dt)),
            Step(f"softmax family {dt}: rows across memory", lambda dt=dt: _across(dt)),
            Step(f"softmax family {dt}: serial drivers",
                 _serially(lambda dt=dt: _along_and_across(dt))),
            Step(f"derivatives {dt}", lambda dt=dt: _derivatives(dt)),
            Step(f"derivatives {dt}: serial drivers", _serially(lambda dt=dt: _derivatives(dt))),
            Step(f"losses {dt}", lambda dt=dt: _losses(dt)),
            Step(f"losses {dt}: serial drivers", _serially(lambda dt=dt: _losses(dt))),
        ]
    out += [Step("other input dtypes", _conversions), Step("gufuncs", _gufuncs),
            Step("the self-check's inputs", _self_check),
            Step("the self-check's inputs: serial drivers", _serially(_self_check))]
    return out


def parts(count: int, jobs: int) -> list[list[int]]:
    """The indices of ``count`` steps (:func:`steps`' order) split into at
    most ``jobs`` lists: each dtype's steps stay together (they share
    kernels), the steps of neither dtype are dealt out in turn.

    Examples
    --------
    >>> parts(len(steps()), 2)[0][:3]
    [0, 1, 2]
    >>> sorted(sum(parts(len(steps()), 2), [])) == list(range(len(steps())))
    True
    """
    jobs = max(1, min(jobs, len(DTYPES)))
    todo = steps()[:count]
    out: list[list[int]] = [[] for _ in range(jobs)]
    rest = []
    for i, step in enumerate(todo):
        group = next((k for k, dt in enumerate(DTYPES) if f" {dt}" in step.label), None)
        if group is None:
            rest.append(i)
        else:
            out[group % jobs].append(i)
    for j, i in enumerate(rest):
        out[j % jobs].append(i)
    return [p for p in out if p]


def run_steps(indices: Sequence[int], stream: IO[str]) -> None:
    """Run the steps ``indices`` in this process, writing ``start i`` and
    ``done i`` lines on ``stream`` (a worker of :func:`warm`)."""
    todo = steps()
    with _first.full_engine():
        for i in indices:
            print(f"start {i}", file=stream, flush=True)
            todo[i].run()
            print(f"done {i}", file=stream, flush=True)


_WORKER = "import sys; from softjit.cli import warm; warm.run_steps([{}], sys.stdout)"


def warm(stream: IO[str] | None = None, only: Iterator[Step] | None = None,
         jobs: int | None = None) -> float:
    """Run every warm-up step (or those of ``only``, in this process),
    drawing the benchmark's progress bar on ``stream`` (default stderr);
    return the elapsed seconds.  ``jobs``: worker processes (default: one
    per core, at most :data:`MAX_JOBS`); a worker that fails raises
    ``RuntimeError`` with its error output."""
    progress = bench.TextProgress(stream)
    t0 = time.perf_counter()
    if only is not None or (jobs or min(os.cpu_count() or 1, MAX_JOBS)) < 2:
        todo = steps() if only is None else list(only)
        progress.begin({}, todo)
        with _first.full_engine():
            for i, step in enumerate(todo):
                progress.start(i, step)
                step.run()
                progress.finish(i, {})
        if only is None:
            _mark_all()
        return time.perf_counter() - t0
    todo = steps()
    progress.begin({}, todo)
    _in_workers(todo, parts(len(todo), jobs or MAX_JOBS), progress)
    _mark_all()
    return time.perf_counter() - t0


def _mark_all() -> None:
    """Every full engine is in the cache now: the markers that let later
    processes run it from their first call (:mod:`softjit._first`)."""
    for kind in Kind:
        for dt in DTYPES:
            _first.mark_ready(kind, np.dtype(dt))


def _in_workers(todo: list[Step], split: list[list[int]], progress: bench.TextProgress) -> None:
    """Run the steps of each list of ``split`` in a worker process of its
    own, drawing one progress bar for all."""
    lock = threading.Lock()
    done = [0]
    # the workers import this softjit, wherever it was imported from
    here = os.path.dirname(os.path.dirname(os.path.abspath(softjit.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH")) if p), **{_first.ENV: "0"})
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in split]
        workers = [subprocess.Popen([sys.executable, "-c",
                                     _WORKER.format(",".join(map(str, idx)))],
                                    stdout=subprocess.PIPE, stderr=log, text=True, env=env)
                   for idx, log in zip(split, logs, strict=True)]

        def follow(proc: subprocess.Popen[str]) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                what, _, index = line.strip().partition(" ")
                if what != "done" or not index.isdigit():
                    continue
                with lock:
                    done[0] += 1
                    if done[0] == len(todo):
                        progress.finish(len(todo) - 1, {})
                    else:
                        step = todo[int(index)]
                        progress.start(done[0], step._replace(label=step.label + ": compiled"))

        readers = [threading.Thread(target=follow, args=(w,), daemon=True) for w in workers]
        for r in readers:
            r.start()
        errors = []
        for w, r, log in zip(workers, readers, logs, strict=True):
            r.join()
            if w.wait() != 0:
                log.seek(0)
                errors.append(log.read().strip())
    if errors:
        raise RuntimeError("a warm-up worker failed:\n" + "\n".join(errors))
