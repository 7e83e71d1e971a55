"""Benchmark engine: time softjit against numpy, scipy, torch and jax and
against a plain memory copy of the same bytes, in one process and one run.

Used by ``python -m softjit bench``, ``benchmarks/run.py`` and
``notebooks/02-performance.ipynb``.  Each case times every available
implementation on the same input; figures are the median of several
repeats (each repeat loops long enough to be timed reliably), and ratios
are taken within the run, so they hold on a noisy machine.

:func:`run` returns a :class:`BenchResult`: it prints as a text table,
shows as an HTML table in Jupyter, saves to JSON and plots (with
matplotlib, which softjit does not require).

Examples
--------
>>> from softjit.cli import bench
>>> cases = [c for c in bench.default_grid("tiny") if c.label == "softmax 1x16 float64"]
>>> result = bench.run(cases, only={"softjit", "numpy"}, repeats=1)
>>> [sorted(r["seconds"]) for r in result.records]
[['copy', 'numpy', 'softjit']]
"""

from __future__ import annotations

import dataclasses
import functools
import html
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

import numpy as np

import softjit
from softjit.cli import reference as ref

OPS = ("softmax", "softmax_inplace", "log_softmax", "logsumexp", "cross_entropy_with_grad")

#: Every implementation a case may time, in the order of the table's columns.
IMPLEMENTATIONS = ("softjit", "copy", "numpy", "scipy", "torch", "jax", "softjit.softmax")

#: The grids of :func:`default_grid`.
GRIDS = ("full", "quick", "short", "tiny")

Record = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark input: an operation on a ``shape`` array of ``dtype``
    along ``axis`` (the last by default).

    Examples
    --------
    >>> Case("softmax", (4096, 4096), "float32").label
    'softmax 4096x4096 float32'
    >>> Case("softmax", (8, 21, 256, 256), "float32", axis=1).label
    'softmax 8x21x256x256 float32 axis=1'
    """

    op: str
    shape: tuple[int, ...]
    dtype: str
    axis: int = -1

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def label(self) -> str:
        where = "" if self.axis == -1 else f" axis={self.axis}"
        return f"{self.op} {'x'.join(map(str, self.shape))} {self.dtype}{where}"


def time_call(fn: Callable[[], Any], repeats: int = 5, min_time: float = 0.02) -> float:
    """Median seconds per call over ``repeats`` timed loops of >= ``min_time``.

    Examples
    --------
    >>> t = time_call(lambda: sum(range(100)), repeats=2, min_time=0.001)
    >>> 0 < t < 0.01
    True
    """
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


# ---------------------------------------------------------------------------
# Implementations
# ---------------------------------------------------------------------------


def implementations(
    case: Case, x: np.ndarray, only: Iterable[str] | None = None
) -> Iterator[tuple[str, Callable[[], Any]]]:
    """``(name, zero-argument callable)`` for every available implementation
    of ``case`` on ``x`` named in ``only`` (default: all), after the
    ``copy`` floor (np.copyto of x's bytes).  Optional libraries are
    imported only when wanted."""
    out = np.empty_like(x)
    yield "copy", lambda: np.copyto(out, x)
    makers = _CROSS_ENTROPY if case.op == "cross_entropy_with_grad" else _MAKERS
    for name, make in makers.items():
        fn = make(case.op, x, case.axis) if only is None or name in only else None
        if fn is not None:
            yield name, fn


Maker = Callable[[str, np.ndarray, int], Callable[[], Any] | None]


def _softjit(op: str, x: np.ndarray, axis: int) -> Callable[[], Any]:
    if op == "softmax_inplace":
        scratch = x.copy()
        return lambda: softjit.softmax(scratch, axis=axis, out=scratch)
    fn = getattr(softjit, op)
    return lambda: fn(x, axis=axis)


def _numpy(op: str, x: np.ndarray, axis: int) -> Callable[[], Any]:
    fn = getattr(ref, op.removesuffix("_inplace"))
    return lambda: fn(x, axis)


def _scipy(op: str, x: np.ndarray, axis: int) -> Callable[[], Any] | None:
    try:
        from scipy import special
    except ImportError:
        return None
    fn = getattr(special, op.removesuffix("_inplace"))
    return lambda: fn(x, axis=axis)


def _torch(op: str, x: np.ndarray, axis: int) -> Callable[[], Any] | None:
    try:
        import torch
    except ImportError:
        return None
    tx = torch.from_numpy(x)
    fn = getattr(torch, op.removesuffix("_inplace"))
    return lambda: fn(tx, axis)


def _jax(op: str, x: np.ndarray, axis: int) -> Callable[[], Any] | None:
    try:
        import jax
    except ImportError:
        return None
    # jax computes float64 input in float32 unless 64-bit mode is on.
    jax.config.update("jax_enable_x64", True)
    jx = jax.device_put(x)
    fn = jax.jit(functools.partial(
        {"softmax": jax.nn.softmax, "softmax_inplace": jax.nn.softmax,
         "log_softmax": jax.nn.log_softmax, "logsumexp": jax.scipy.special.logsumexp}[op],
        axis=axis))
    return lambda: fn(jx).block_until_ready()


_MAKERS: dict[str, Maker] = {"softjit": _softjit, "numpy": _numpy, "scipy": _scipy,
                             "torch": _torch, "jax": _jax}


# Mean cross-entropy with integer targets, loss and gradient; the reference
# for the ratio is softjit.softmax on the same array.


def _class_labels(x: np.ndarray) -> np.ndarray:
    return np.random.default_rng(1).integers(0, x.shape[-1], x.shape[:-1])


def _torch_cross_entropy(op: str, x: np.ndarray, axis: int) -> Callable[[], Any] | None:
    try:
        import torch
    except ImportError:
        return None
    ty = torch.from_numpy(_class_labels(x))

    def forward_backward() -> Any:
        tx = torch.from_numpy(x).requires_grad_(True)
        torch.nn.functional.cross_entropy(tx, ty).backward()
        return tx.grad

    return forward_backward


_CROSS_ENTROPY: dict[str, Maker] = {
    "softjit": lambda op, x, axis: functools.partial(softjit.cross_entropy_with_grad, x,
                                                     _class_labels(x)),
    "numpy": lambda op, x, axis: functools.partial(ref.cross_entropy_with_grad, x,
                                                   _class_labels(x)),
    "softjit.softmax": lambda op, x, axis: functools.partial(softjit.softmax, x),
    "torch": _torch_cross_entropy,
}


# ---------------------------------------------------------------------------
# Grids and runs
# ---------------------------------------------------------------------------


def run_case(case: Case, only: Iterable[str] | None = None, repeats: int = 5) -> Record:
    """Time every implementation on one case; return a JSON-ready record."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(case.shape) * 4).astype(case.dtype)
    times = {}
    for name, fn in implementations(case, x, only):
        times[name] = time_call(fn, repeats=repeats)
    return {"op": case.op, "shape": list(case.shape), "dtype": case.dtype, "axis": case.axis,
            "size": case.size, "seconds": times}


def default_grid(grid: str = "full") -> list[Case]:
    """The benchmark cases of ``grid``, float32 and float64.

    ``'full'``: softmax from a 14-element vector to 2**24 elements (short,
    square and long rows, and a sweep of 1024-long rows), the other
    operations on two shapes, softmax along axis 0 and a middle axis (rows
    that lie across memory) and cross-entropy with its gradient (minutes).
    ``'quick'``: a few of those shapes.  ``'short'``: shapes of up to 2**20
    elements (the benchmark of ``python -m softjit``, about half a minute).
    ``'tiny'``: softmax only, on short (16) and long (4096) rows of up to
    2**20 elements (the performance notebook and the tests).

    Examples
    --------
    >>> [c.label for c in default_grid("quick")][:2]
    ['softmax 14 float32', 'softmax 1000x100 float32']
    >>> len(default_grid("tiny"))
    14
    """
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}; got {grid!r}")
    if grid == "tiny":
        rows = [(1, 16), (64, 16), (4096, 16), (65536, 16), (1, 4096), (16, 4096), (256, 4096)]
        return _grid(rows, [], None)
    if grid == "short":
        rows = [(14,), (1000, 100), (100_000, 10), (1000, 1000), (1, 1 << 20)]
        across = [((1000, 1000), 0), ((16, 21, 32, 32), 1)]
        return _grid(rows, [(1000, 1000)], (4096, 1000), across)
    if grid == "quick":
        rows = [(14,), (1000, 100), (4096, 4096), (1_000_000, 10)]
        return _grid(rows, [(4096, 4096)], (65536, 1000), [((4096, 4096), 0)])
    shapes = [(14,), (64, 10), (1000, 100), (256, 1024), (1_000_000, 10), (4096, 4096),
              (8, 2_000_000), (1, 1 << 24)]
    sweep = [((1 << k) // 1024, 1024) if k >= 10 else (1, 1 << k) for k in range(4, 25, 2)]
    across = [((4096, 4096), 0), ((10, 1_000_000), 0), ((8, 21, 256, 256), 1)]
    return _grid(list(dict.fromkeys(shapes + sweep)), [(4096, 4096), (1_000_000, 10)],
                 (65536, 1000), across)


def _grid(
    softmax_shapes: list[tuple[int, ...]],
    op_shapes: list[tuple[int, ...]],
    cross_entropy_shape: tuple[int, ...] | None,
    across: list[tuple[tuple[int, ...], int]] = (),
) -> list[Case]:
    """softmax on ``softmax_shapes``, the in-place softmax, log_softmax and
    logsumexp on ``op_shapes``, softmax and logsumexp along other axes
    (``(shape, axis)`` pairs of ``across``), float32, then float64; and
    float32 cross-entropy with its gradient on ``cross_entropy_shape``."""
    cases = []
    for dtype in ("float32", "float64"):
        cases += [Case("softmax", shape, dtype) for shape in softmax_shapes]
        cases += [Case(op, shape, dtype) for shape in op_shapes for op in OPS[1:4]]
        cases += [Case(op, shape, dtype, axis) for shape, axis in across
                  for op in ("softmax", "logsumexp")]
    if cross_entropy_shape is not None:
        cases.append(Case("cross_entropy_with_grad", cross_entropy_shape, "float32"))
    return cases


class Progress:
    """Callbacks of a benchmark run (:func:`run`); these do nothing.

    Subclass and override to report progress.
    """

    def begin(self, environment: dict[str, Any], cases: Sequence[Case]) -> None:
        """Called once, before the first case."""

    def start(self, index: int, case: Case) -> None:
        """Called before case number ``index`` (from 0) runs."""

    def finish(self, index: int, record: Record) -> None:
        """Called after case number ``index`` ran, with its record."""


class TextProgress(Progress):
    """A plain-text progress bar written to ``stream`` (default stderr):
    redrawn in place on a terminal, one line per case otherwise.

    Examples
    --------
    >>> import io
    >>> stream = io.StringIO()
    >>> progress = TextProgress(stream, width=4)
    >>> progress.begin({}, [Case("softmax", (14,), "float64")] * 2)
    >>> progress.start(1, Case("softmax", (14,), "float64"))
    >>> stream.getvalue()
    '[##..] 1/2 softmax 14 float64 (0 s)\\n'
    """

    def __init__(self, stream: IO[str] | None = None, width: int = 20) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.total = 0
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.shown = 0  # length of the line on screen (terminal only)

    def begin(self, environment: dict[str, Any], cases: Sequence[Case]) -> None:
        self.total = len(cases)
        self.t0 = time.perf_counter()

    def _show(self, done: int, text: str, last: bool = False) -> None:
        filled = self.width * done // max(self.total, 1)
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {text} "
                f"({time.perf_counter() - self.t0:.0f} s)")
        if self.tty:  # overwrite the previous line, padding over what it had more
            self.stream.write("\r" + line.ljust(self.shown) + ("\n" if last else ""))
            self.shown = 0 if last else len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def start(self, index: int, case: Case) -> None:
        self._show(index, case.label)

    def finish(self, index: int, record: Record) -> None:
        if index + 1 == self.total:
            self._show(self.total, "done", last=True)


def run(
    cases: Iterable[Case],
    only: Iterable[str] | None = None,
    repeats: int = 5,
    progress: Progress | None = None,
) -> BenchResult:
    """Run ``cases``, timing the implementations in ``only`` (default: all
    available; the copy always runs), and return the :class:`BenchResult`."""
    cases = list(cases)
    only = None if only is None else set(only)
    progress = Progress() if progress is None else progress
    env = environment()
    progress.begin(env, cases)
    records = []
    for index, case in enumerate(cases):
        progress.start(index, case)
        records.append(run_case(case, only, repeats))
        progress.finish(index, records[-1])
    return BenchResult(env, records)


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Versions, CPU, numba's threading layer, thread count and cache
    directory (runs one multi-threaded softmax to start numba's threads).

    Examples
    --------
    >>> env = environment()
    >>> env["softjit"] == softjit.__version__, env["threads"] >= 1
    (True, True)
    """
    import numba

    softjit.softmax(np.zeros((64, 2048)))  # large enough for the parallel driver
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised"
    info = {"date": time.strftime("%Y-%m-%d"), "softjit": softjit.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpu": _cpu_name(), "simd": _simd_flags(), "cores": os.cpu_count(),
            "numpy": np.__version__,
            "numba": numba.__version__, "threading_layer": layer,
            "threads": numba.get_num_threads(), "cache_dir": cache_dir()}
    for dist in ("scipy", "torch", "jax"):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return info


def describe(env: dict[str, Any]) -> list[str]:
    """The environment of :func:`environment` as a few lines of text.

    Examples
    --------
    >>> print("\\n".join(describe({"softjit": "0.1.0", "python": "3.12.1", "machine": "x86_64",
    ...                             "numpy": "2.1.0", "numba": "0.60.0", "cpu": "a CPU",
    ...                             "cores": 8, "threading_layer": "omp", "threads": 8,
    ...                             "cache_dir": "/tmp/cache"})))
    softjit 0.1.0, python 3.12.1 (x86_64)
    numpy 2.1.0, numba 0.60.0
    CPU: a CPU, 8 cores
    numba threading layer: omp, threads: 8
    numba cache directory: /tmp/cache
    """
    versions = ", ".join(f"{name} {env[name]}" for name in ("numpy", "numba", "scipy", "torch",
                                                              "jax") if name in env)
    return [f"softjit {env['softjit']}, python {env['python']} ({env['machine']})", versions,
            f"CPU: {env['cpu']}, {env['cores']} cores"
            + (f", {env['simd']}" if env.get("simd") else ""),
            f"numba threading layer: {env['threading_layer']}, threads: {env['threads']}",
            f"numba cache directory: {env['cache_dir']}"]


def _simd_flags() -> str:
    """The CPU's vector extensions that the kernels can use, as LLVM sees
    them (what numba compiles for): e.g. ``avx2 fma`` or ``avx2 avx512f
    avx512vl fma``."""
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    wanted = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "neon")
    return " ".join(name for name in wanted if features.get(name, False)) or "none known"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cache_dir() -> str:
    """Where numba caches softjit's kernels (numba picks it per package)."""
    from softjit import _options
    from softjit.kernels import rows

    if not getattr(_options, "CACHE", True):
        return "none (no writable location: kernels compile in memory)"
    return str(rows.softmax_rows_serial.stats.cache_path)


# ---------------------------------------------------------------------------
# Results: text and HTML tables, JSON, plot
# ---------------------------------------------------------------------------


def format_seconds(seconds: float) -> str:
    """A time with three significant digits and a unit (s, ms, us, ns).

    Examples
    --------
    >>> format_seconds(0.0123), format_seconds(4.5e-6), format_seconds(2.0)
    ('12.3 ms', '4.50 us', '2.00 s')
    >>> format_seconds(0.99996), format_seconds(1.5e-10)
    ('1.00 s', '0.150 ns')
    """
    units = (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))
    unit, scale = next(((u, f) for u, f in units if float(f"{seconds / f:.3g}") >= 1), units[-1])
    value = float(f"{seconds / scale:.3g}")  # rounded to three digits, as tested above
    return f"{value:.0f} {unit}" if value >= 100 else f"{value:#.3g} {unit}"


def _record_label(r: Record) -> str:
    return Case(r["op"], tuple(r["shape"]), r["dtype"], r.get("axis", -1)).label


#: The peers of "best peer / softjit": the faster of the two per case.
PEERS = ("torch", "jax")


def _cells(records: list[Record]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table: the time of each
    implementation, softjit over the copy, each other one over softjit,
    and the faster of torch and jax over softjit ("best peer")."""
    present = [n for n in IMPLEMENTATIONS if any(n in r["seconds"] for r in records)]
    others = [n for n in present if n not in ("softjit", "copy")]
    peers = [n for n in PEERS if n in present]
    header = ["case", *present, "softjit/copy", *(f"{n}/softjit" for n in others)]
    if peers:
        header.append("best peer/softjit")
    rows = []
    for r in records:
        s = r["seconds"]
        row = [_record_label(r), *(format_seconds(s[n]) if n in s else "-" for n in present)]
        row.append(f"{s['softjit'] / s['copy']:.2f}" if "softjit" in s and "copy" in s else "-")
        row += [f"{s[n] / s['softjit']:.2f}" if n in s and "softjit" in s else "-"
                for n in others]
        if peers:
            best = min((s[n] for n in peers if n in s), default=None)
            row.append(f"{best / s['softjit']:.2f}" if best is not None and "softjit" in s
                       else "-")
        rows.append(row)
    return header, rows


def _sections(records: list[Record]) -> list[list[Record]]:
    """The records split into runs of softmax-family cases and of
    cross-entropy cases (timed against other implementations), so that
    each table shows only columns with values."""
    sections: list[list[Record]] = []
    for r in records:
        loss = r["op"] == "cross_entropy_with_grad"
        if sections and (sections[-1][0]["op"] == "cross_entropy_with_grad") == loss:
            sections[-1].append(r)
        else:
            sections.append([r])
    return sections


def _group(records: list[Record]) -> Iterator[tuple[str, list[Record]]]:
    """The softmax records by panel: (dtype, short or long rows)."""
    for dtype in ("float32", "float64"):
        for kind, long_rows in (("rows < 1024", False), ("rows >= 1024", True)):
            rows = sorted((r for r in records if r["op"] == "softmax" and r["dtype"] == dtype
                           and r.get("axis", -1) == -1 and (r["shape"][-1] >= 1024) == long_rows),
                          key=lambda r: r["size"])
            if rows:
                yield f"softmax, {dtype}, {kind}", rows


@dataclasses.dataclass(repr=False)
class BenchResult:
    """The records of a benchmark run and the environment it ran in.

    ``records``: one dict per case (``op``, ``shape``, ``dtype``, ``size``
    and ``seconds``: the median time per call of each implementation).
    Shows as a text table (its ``repr``), and as an HTML table in Jupyter.

    Examples
    --------
    >>> result = BenchResult({"cpu": "example"}, [
    ...     {"op": "softmax", "shape": [1000, 100], "dtype": "float64", "size": 100000,
    ...      "seconds": {"copy": 2e-5, "softjit": 1e-4, "numpy": 8e-4}}])
    >>> print(result)
    case                      softjit     copy    numpy  softjit/copy  numpy/softjit
    softmax 1000x100 float64   100 us  20.0 us   800 us          5.00           8.00
    >>> result.to_json("/dev/null")
    """

    environment: dict[str, Any]
    records: list[Record]

    def table(self) -> str:
        """The results as aligned text: times, then ratios (a ratio
        ``NAME/softjit`` above 1 means softjit is faster)."""
        tables = []
        for section in _sections(self.records):
            header, rows = _cells(section)
            widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
            widths = [max(w, 24 if i == 0 else 8) for i, w in enumerate(widths)]  # steady columns
            tables.append("\n".join(
                "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                          for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
                for line in [header, *rows]))
        return "\n\n".join(tables)

    def __repr__(self) -> str:
        return self.table()

    def markdown(self) -> str:
        """The results as Markdown tables (one per section, as
        :meth:`table`), headed by the environment they were measured in."""
        env = ", ".join(f"{k} {v}" for k, v in self.environment.items() if k != "cache_dir")
        parts = [f"Measured with: {env}."] if env else []
        for section in _sections(self.records):
            header, rows = _cells(section)
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            parts.append("\n".join(lines))
        return "\n\n".join(parts) + "\n"

    def _repr_html_(self) -> str:
        env = ", ".join(f"{k} {v}" for k, v in self.environment.items())
        tables = []
        for section in _sections(self.records):
            header, rows = _cells(section)
            head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                           for row in rows)
            caption = f"<caption>{html.escape(env)}</caption>" if not tables else ""
            tables.append(f"<table>{caption}<thead><tr>{head}</tr></thead>"
                          f"<tbody>{body}</tbody></table>")
        return "".join(tables)

    def to_json(self, path: str | os.PathLike) -> None:
        """Write ``{"environment": ..., "results": records}`` to ``path``."""
        with open(path, "w") as f:
            json.dump({"environment": self.environment, "results": self.records}, f, indent=1)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> BenchResult:
        """Read a result written by :meth:`to_json`."""
        with open(path) as f:
            data = json.load(f)
        return cls(data["environment"], data["results"])

    def plot(self, path: str | os.PathLike | None = None) -> Any:
        """Time per element against size for the softmax cases, one panel
        per dtype and row length (short: < 1024), with the copy floor
        dashed; saved to ``path`` if given.  Needs matplotlib.

        Returns
        -------
        matplotlib.figure.Figure
            The figure, made without pyplot (no global state, no backend
            switch).  Jupyter shows it as an image once matplotlib's inline
            support is on (``%matplotlib inline``, or after a first pyplot
            figure).
        """
        from matplotlib.figure import Figure

        panels = list(_group(self.records))
        ncols = min(len(panels), 2) or 1
        nrows = max(1, -(-len(panels) // ncols))
        fig = Figure(figsize=(5.5 * ncols, 3.8 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
        for ax, (title, rows) in zip(axes, panels, strict=False):
            _plot_panel(ax, title, rows)
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        env = self.environment
        fig.suptitle(f"{env.get('cpu', '')}, {env.get('threads', '?')} threads", fontsize=9)
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def _plot_panel(ax: Any, title: str, rows: list[Record]) -> None:
    for name in IMPLEMENTATIONS[:-1]:
        pts = [(r["size"], r["seconds"][name] / r["size"] * 1e9) for r in rows
               if name in r["seconds"]]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=name,
                    ls="--" if name == "copy" else "-")
    ax.set(xscale="log", yscale="log", xlabel="elements", ylabel="ns per element", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


# ---------------------------------------------------------------------------
# Compile cost and thread scaling (the performance notebook)
# ---------------------------------------------------------------------------

_FIRST_CALL = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import softjit
t1 = time.perf_counter()
x = np.ones(json.loads(sys.argv[2]), sys.argv[3])
fn = getattr(softjit, sys.argv[1])
t2 = time.perf_counter(); fn(x); t3 = time.perf_counter(); fn(x); t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first call": t3 - t2, "second call": t4 - t3}))
"""


def first_call_times(
    op: str = "softmax", shape: tuple[int, ...] = (14,), dtype: str = "float64"
) -> dict[str, dict[str, float]]:
    """Seconds to import softjit and to make the first and the second call
    of ``softjit.<op>`` in a new process: ``'cold'`` with an empty numba
    cache (the first call compiles), ``'warm'`` with the cache that run
    left (the first call loads the machine code).

    Each run is a child process with ``NUMBA_CACHE_DIR`` set to a
    temporary directory, so the package's own cache is not touched; the
    cold run compiles for several seconds.

    Returns
    -------
    dict
        ``{"cold": times, "warm": times}``, each with the seconds of
        ``"import"``, ``"first call"`` and ``"second call"``.
    """
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        argv = [sys.executable, "-c", _FIRST_CALL, op, json.dumps(list(shape)), dtype]
        return {state: json.loads(subprocess.run(argv, env=env, check=True, text=True,
                                                 capture_output=True).stdout)
                for state in ("cold", "warm")}


def thread_scaling(
    shape: tuple[int, ...] = (2048, 2048), dtype: str = "float32", repeats: int = 5
) -> dict[int, float]:
    """Seconds per ``softjit.softmax`` call on a ``shape`` array with 1, 2,
    ... threads, up to numba's thread count (``NUMBA_NUM_THREADS``).

    Examples
    --------
    >>> times = thread_scaling((256, 1024), repeats=1)
    >>> sorted(times)[0]
    1
    """
    import numba

    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    before = numba.get_num_threads()
    times = {}
    try:
        for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(n)
            times[n] = time_call(lambda: softjit.softmax(x), repeats=repeats)
    finally:
        numba.set_num_threads(before)
    return times
