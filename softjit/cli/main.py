"""``python -m softjit``: softjit's main job, from the command line.

Sub-commands:

``info``
    Versions, CPU, numba's threading layer and thread count, and where
    numba caches the compiled kernels.
``check``
    Every public function of softjit and every gufunc against a plain numpy
    float64 reference (:mod:`softjit.cli.check`); one PASS/FAIL line per
    function; exit status 1 if any fails.
``warm``
    Compile every kernel into numba's cache (:mod:`softjit.cli.warm`), for
    container images, clusters and shared installs; a progress bar on
    stderr, then the elapsed time and the cache directory.
``bench``
    The benchmark grid against numpy, scipy, torch, jax (those installed)
    and a plain copy, with a progress bar on stderr and the table on
    stdout; ``--json FILE`` and ``--plot FILE.png`` save the results.

Without a sub-command: ``info``, ``check`` and a benchmark of the short
grid (about half a minute); ``--no-bench`` skips the benchmark.

Exit status: 0 on success, 1 when a check fails, 2 on a usage error (an
unknown option or value, an output file that cannot be written) with one
line on stderr, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from softjit import _first
from softjit.cli import bench as benchmark
from softjit.cli import bench_options
from softjit.cli import check as selfcheck
from softjit.cli import warm as warmup

PROG = "python -m softjit"

EPILOG = """\
Without a sub-command: info, check and a benchmark of the short grid (about
half a minute; --no-bench skips it).  Each sub-command has its own --help.

exit status: 0 success, 1 a check failed, 2 usage error (bad option, output
file that cannot be written), 130 interrupted.
"""

BENCH_EPILOG = """\
Figures are medians of --repeats timed loops; NAME/softjit above 1 means
softjit is faster, softjit/copy is softjit's time over a plain copy of the
same bytes.  Other work on the machine shows up in the figures.
"""


def usage_error(prog: str, message: str) -> int:
    """Print ``message`` as one line on stderr; return exit status 2.

    Examples
    --------
    >>> usage_error(PROG, "argument --json: cannot write 'out.json'")
    2
    """
    message = " ".join(message.split())
    print(f"{prog}: error: {message} (see '{prog} --help')", file=sys.stderr)
    return 2


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        sys.exit(usage_error(self.prog, message))


def build_parser() -> Parser:
    """The parser of ``python -m softjit`` and its sub-commands.

    Examples
    --------
    >>> args = build_parser().parse_args(["bench", "--quick", "--json", "out.json"])
    >>> args.command, args.grid, args.json
    ('bench', 'quick', 'out.json')
    >>> build_parser().parse_args([]).command is None  # the main job
    True
    """
    parser = Parser(prog=PROG, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="softjit's main job: report the environment, check every "
                    "function\nagainst a numpy float64 reference, and time it.")
    parser.add_argument("--no-bench", "--no-timing", action="store_true",
                        help="without a sub-command: run info and check only")
    sub = parser.add_subparsers(dest="command", title="sub-commands",
                                metavar="{info,check,warm,bench}")
    sub.add_parser("info", help="versions, CPU, threading layer, threads, cache directory",
                   description="Report versions, the CPU, numba's threading layer and "
                   "thread count, and numba's cache directory.")
    sub.add_parser("check", help="check every function against a numpy float64 reference",
                   description="Compare each public array function of softjit and each gufunc "
                   "with a plain numpy float64 reference, print PASS or FAIL per function; "
                   "exit status 1 if any fails.")
    sub.add_parser("warm", help="compile every kernel into numba's cache",
                   description="Compile every kernel of softjit into numba's on-disk cache "
                   "(NUMBA_CACHE_DIR if set), so that later processes load the kernels "
                   "instead of compiling them: for container images, clusters and shared "
                   "installs.")
    bench = sub.add_parser("bench", help="time softjit against numpy and others",
                           epilog=BENCH_EPILOG,
                           description="Time softjit, numpy, scipy, torch and jax (those "
                           "installed) and a plain copy on the benchmark grid; a progress "
                           "bar goes to stderr, the table to stdout.")
    bench_options.add_arguments(bench)
    return parser


def info() -> int:
    """Print the environment; return 0."""
    print("\n".join(benchmark.describe(benchmark.environment())))
    return 0


def check() -> int:
    """Print one line per checked function; return 0 if all pass, else 1."""
    print(f"self-check against a plain numpy float64 reference "
          f"(errors in machine epsilons of the input dtype, limit {selfcheck.TOLERANCE_EPS:g})")
    results = selfcheck.run_all()
    for result in results:
        print(result.line(), flush=True)
    failed = [r.name for r in results if not r.passed]
    print(f"self-check: {len(results) - len(failed)} of {len(results)} passed"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def bench(args: argparse.Namespace) -> int:
    """Run the benchmark that ``args`` selects, print it and save it."""
    problem = bench_options.argument_problem(args)
    if problem:
        return usage_error(f"{PROG} bench", problem)
    with _first.full_engine():  # time the engine, not the first route
        result = benchmark.run(bench_options.selected(args), bench_options.only_names(args),
                               args.repeats, benchmark.TextProgress())
    print("\n".join(benchmark.describe(result.environment)))
    print()
    print(result.table())
    try:
        bench_options.save_outputs(result, args)
    except OSError as exc:
        return usage_error(f"{PROG} bench", f"cannot write the results: {exc}")
    for flag, path in (("results", args.json), ("plot", args.plot)):
        if path:
            print(f"{PROG} bench: {flag} written to {path}", file=sys.stderr)
    return 0


def warm() -> int:
    """Compile every kernel into numba's cache; print the elapsed time and
    where the cache is; return 0."""
    from softjit import _options

    if not _options.CACHE:
        print(f"{PROG} warm: numba has no writable cache location here; set "
              "NUMBA_CACHE_DIR to a writable directory", file=sys.stderr)
        return 1
    elapsed = warmup.warm()
    print(f"compiled softjit's kernels into numba's cache in {elapsed:.1f} s "
          f"(cache: {benchmark.cache_dir()})")
    return 0


def main_job(no_bench: bool) -> int:
    """``info``, ``check`` and the short benchmark; the status of the selfcheck."""
    info()
    print()
    status = check()
    if not no_bench:
        print("\ntimes per call (median); NAME/softjit above 1: softjit is faster")
        with _first.full_engine():  # time the engine, not the first route
            result = benchmark.run(benchmark.default_grid("short"),
                                   progress=benchmark.TextProgress())
        print(result.table())
    return status


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m softjit`` with ``argv``; return the exit status.

    Examples
    --------
    >>> main(["info"])  # doctest: +ELLIPSIS
    softjit ...
    numba threading layer: ...
    0
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "info":
            return info()
        if args.command == "check":
            return check()
        if args.command == "warm":
            return warm()
        if args.command == "bench":
            return bench(args)
        return main_job(args.no_bench)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130

