"""Command-line options of the benchmark, shared by ``python -m softjit
bench`` and ``benchmarks/run.py``: the grid, the implementations, repeats
and output files, checked before anything runs."""

from __future__ import annotations

import argparse
import os

from softjit.cli.bench import (
    GRIDS,
    IMPLEMENTATIONS,
    BenchResult,
    Case,
    default_grid,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark options to ``parser``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--quick", "--only", "softjit,numpy"])
    >>> args.grid, sorted(only_names(args)), args.repeats
    ('quick', ['numpy', 'softjit'], 5)
    >>> argument_problem(args) is None
    True
    >>> argument_problem(parser.parse_args(["--filter", "no such case"]))
    "argument --filter: no case of the full grid matches 'no such case'"
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", dest="grid", action="store_const", const="quick",
                       help="a few shapes only (the same as --grid quick)")
    group.add_argument("--grid", choices=GRIDS,
                       help="the cases to run: full (the default; minutes), quick, short "
                       "(about half a minute) or tiny (softmax only, seconds)")
    parser.set_defaults(grid="full")
    parser.add_argument("--json", metavar="FILE", help="write the results to FILE as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="plot time per element against size to FILE (needs matplotlib)")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated implementations to time, of "
                        f"{','.join(n for n in IMPLEMENTATIONS if n != 'copy')} "
                        "(the copy always runs)")
    parser.add_argument("--filter", metavar="TEXT", default="",
                        help="run only the cases whose label (e.g. 'softmax 14 float64') "
                        "contains TEXT")
    parser.add_argument("--repeats", metavar="N", type=_positive_int, default=5,
                        help="timed loops per figure; the median is reported (default 5)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def selected(args: argparse.Namespace) -> list[Case]:
    """The cases of ``args.grid`` that ``args.filter`` selects."""
    return [c for c in default_grid(args.grid) if args.filter in c.label]


def only_names(args: argparse.Namespace) -> set[str] | None:
    """The implementations ``args.only`` names (None: all)."""
    return None if args.only is None else set(args.only.split(","))


def argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the benchmark options, in one line (None: nothing)."""
    unknown = (only_names(args) or set()) - set(IMPLEMENTATIONS)
    if unknown:
        return (f"argument --only: unknown implementation {', '.join(sorted(unknown))} "
                f"(choose from {', '.join(IMPLEMENTATIONS)})")
    if not selected(args):
        return f"argument --filter: no case of the {args.grid} grid matches {args.filter!r}"
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        problem = path and _unwritable(path)
        if problem:
            return f"argument {flag}: cannot write {path!r}: {problem}"
    return _plot_problem(args.plot) if args.plot else None


def _unwritable(path: str) -> str | None:
    """Why ``path`` cannot be written (None if it can), without creating it."""
    if os.path.isdir(path):
        return "it is a directory"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"no directory {parent!r}"
    target = path if os.path.exists(path) else parent
    return None if os.access(target, os.W_OK) else "permission denied"


def _plot_problem(path: str) -> str | None:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return "argument --plot: needs matplotlib, which is not installed " \
            "(python -m pip install matplotlib)"
    formats = Figure().canvas.get_supported_filetypes()
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    if suffix not in formats:
        return f"argument --plot: unknown image format {suffix!r} " \
            f"(use one of .{', .'.join(sorted(formats))})"
    return None


def save_outputs(result: BenchResult, args: argparse.Namespace) -> None:
    """Write the JSON file and the plot that ``args`` asks for."""
    if args.json:
        result.to_json(args.json)
    if args.plot:
        result.plot(args.plot)
