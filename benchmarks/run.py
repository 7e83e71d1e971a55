"""softjit's benchmark suite.

Times softjit, numpy, scipy (and torch / jax when installed) against a
plain copy of the same bytes, for a grid of shapes and dtypes, and prints
a table of times and ratios.  Run from the repository root:

    python benchmarks/run.py [--quick] [--json FILE] [--plot FILE.png]
                             [--only softjit,torch] [--filter TEXT]

Ratios ``sj/copy`` (softjit time over copy time) and ``NAME/sj`` (other
implementation over softjit: above 1 means softjit is faster) are taken
within one run.  Close other work first: the machine's load shows up in
the figures.
"""

from __future__ import annotations

import argparse
import sys

from softjit import _bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few shapes only")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--plot", metavar="FILE", help="plot ns/element vs size (matplotlib)")
    parser.add_argument("--only", help="comma-separated implementations (copy always runs)")
    parser.add_argument("--filter", default="", help="run the cases whose label contains TEXT")
    parser.add_argument("--repeats", type=int, default=5, help="timed loops per figure")
    args = parser.parse_args(argv)
    only = None if args.only is None else set(args.only.split(","))
    env = _bench.environment()
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    records = []
    for case in _bench.default_grid(args.quick):
        if args.filter not in case.label:
            continue
        records.append(_bench.run_case(case, only, args.repeats))
        print(_bench.table(records[-1:]).splitlines()[-1], flush=True)
    print()
    print(_bench.table(records))
    if args.json:
        _bench.save_json(args.json, env, records)
    if args.plot:
        _bench.plot(args.plot, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
