"""Collection rules for the whole repository (tests, doctests, README).

The modules for the optional extras import their dependency at the top, so
their doctests are not collected when the extra is not installed (the tests
in ``tests/`` skip on their own with ``pytest.importorskip``).
"""

import os
from importlib.util import find_spec

# The suite tests the full engine; the first route (softjit._first) and its
# background builds are tested where the tests turn them on.
os.environ.setdefault("SOFTJIT_FIRST_ROUTE", "0")


def _missing(module: str) -> bool:
    try:
        return find_spec(module) is None
    except (ImportError, ValueError):  # e.g. sys.modules[module] is None
        return True


collect_ignore = []
if _missing("dask"):
    collect_ignore.append("softjit/_dask.py")
if _missing("xarray"):
    collect_ignore.append("softjit/xarray.py")
