"""Markdown tables of a benchmark run saved with ``--json``, for the
documentation's performance page:

    python benchmarks/tables.py docs/benchmark.json > docs/benchmark-tables.md
"""

from __future__ import annotations

import sys

from softjit.cli import bench


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(bench.BenchResult.from_json(args[0]).markdown(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
