"""The same row gives the same bits whichever route computes it: alone or
in a batch of any size, serial or parallel, along memory or across it
(Fortran order, axis 0, a middle axis), strided, reversed, in place, and
on the first route that serves calls while the full engine compiles."""

from __future__ import annotations

import numpy as np
import pytest

import softjit
from softjit import _first, _run
from softjit._options import LONG_ROW

LENGTHS = [2, 3, 7, 10, 33, 64, 65, 100, 255, 256, 257, 1000, 4097, 32767, 32768, 40000,
           70000]
FUNCS = {"softmax": softjit.softmax, "log_softmax": softjit.log_softmax,
         "logsumexp": softjit.logsumexp}


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _batch(row: np.ndarray, rows: int, at: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` rows of ``row``'s length and dtype, ``row`` itself at ``at``."""
    b = (rng.standard_normal((rows, row.size)) * 5).astype(row.dtype)
    b[at] = row
    return b


def _routes(fn, row: np.ndarray, rng: np.random.Generator):
    """``(name, result for row)`` for each route."""
    n = row.size
    many = max(3, min(300, 1_500_000 // n))  # large enough for the parallel drivers
    for rows in (1, 2, many):
        b = _batch(row, rows, rows // 2, rng)
        yield f"C batch of {rows}", fn(b)[rows // 2]
        yield f"Fortran batch of {rows}", fn(np.asfortranarray(b))[rows // 2]
        yield f"axis 0 of {rows}", fn(np.ascontiguousarray(b.T), 0)[..., rows // 2]
    b = _batch(row, many, 1, rng)
    with _run.PARALLEL_LOCK:  # another thread inside a parallel kernel: serial drivers
        yield f"serial batch of {many}", fn(b)[1]
        yield f"serial axis 0 of {many}", fn(np.ascontiguousarray(b.T), 0)[..., 1]
    mid = (rng.standard_normal((2, n, 3)) * 5).astype(row.dtype)
    mid[1, :, 2] = row
    yield "middle axis", fn(mid, 1)[1, ..., 2]
    wide = np.zeros((4, 2 * n), row.dtype)
    wide[:, ::2] = _batch(row, 4, 2, rng)
    yield "strided", fn(wide[:, ::2])[2]
    rev = np.ascontiguousarray(row[::-1])
    yield "negative strides", fn(rev[::-1])
    if fn is not softjit.logsumexp:
        y = _batch(row, 3, 1, rng)
        fn(y, out=y)
        yield "in place", y[1]
    if n < LONG_ROW:  # the first route (softjit._first) serves these rows
        with _first.first_route_only():
            yield "first route, alone", fn(row)
            b = _batch(row, many, many // 2, rng)
            yield f"first route, C batch of {many}", fn(b)[many // 2]
            yield "first route, strided", fn(wide[:, ::2])[2]
            yield "first route, Fortran", fn(np.asfortranarray(b))[many // 2]
            yield "first route, axis 0", fn(np.ascontiguousarray(b.T), 0)[..., many // 2]
            yield "first route, middle axis", fn(mid, 1)[1, ..., 2]
            if fn is not softjit.logsumexp:
                y = _batch(row, 3, 1, rng)
                fn(y, out=y)
                yield "first route, in place", y[1]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FUNCS))
def test_same_row_same_bits_on_every_route(name, dtype, n):
    rng = np.random.default_rng(n)
    fn = FUNCS[name]
    row = (rng.standard_normal(n) * 5).astype(dtype)
    alone = fn(row)
    differ = [route for route, got in _routes(fn, row, rng)
              if not np.array_equal(_bits(got), _bits(alone))]
    assert differ == []
