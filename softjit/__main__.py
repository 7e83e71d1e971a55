"""``python -m softjit``: see :mod:`softjit.cli.main`."""

import sys

from softjit.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
