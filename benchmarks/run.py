"""softjit's benchmark suite.

Times softjit, numpy, scipy (and torch / jax when installed) against a
plain copy of the same bytes, for a grid of shapes and dtypes, and prints
a table of times and ratios.  Run from the repository root:

    python benchmarks/run.py [--quick | --grid {full,quick,short,tiny}]
                             [--json FILE] [--plot FILE.png]
                             [--only softjit,torch] [--filter TEXT] [--repeats N]

``python -m softjit bench`` runs the same engine (softjit.cli.bench) with the
same options, with a progress bar instead of the rows printed as they
finish.  Ratios ``softjit/copy`` (softjit time over copy time) and
``NAME/softjit`` (other implementation over softjit: above 1 means softjit
is faster) are taken within one run.  Close other work first: the
machine's load shows up in the figures.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from softjit.cli import bench, bench_options


class PrintRows(bench.Progress):
    """Print the environment first, then each case's row as it finishes."""

    def begin(self, environment: dict[str, Any], cases: Any) -> None:
        print("\n".join(bench.describe(environment)), flush=True)

    def finish(self, index: int, record: dict[str, Any]) -> None:
        row = bench.BenchResult({}, [record]).table().splitlines()[-1]
        print(row, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_options.add_arguments(parser)
    args = parser.parse_args(argv)
    problem = bench_options.argument_problem(args)
    if problem:
        parser.error(problem)
    result = bench.run(bench_options.selected(args), bench_options.only_names(args), args.repeats,
                        PrintRows())
    print()
    print(result.table())
    bench_options.save_outputs(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
