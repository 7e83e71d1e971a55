"""Blocked copies between 2-D arrays of any strides.

A row kernel that needs rows which lie across memory (float64 rows the
column kernels cannot sum in the row kernels' order) gets them copied into
a C-ordered buffer first.  Copied element by element along a row, every
element is a cache miss a row-length away; copied tile by tile (64 x 64
elements, 32 KiB of float64, in the core's first-level cache), every cache
line read or written is used whole.
"""

from __future__ import annotations

from numba import njit, prange

from .._options import PARALLEL, SERIAL

#: Tile edge in elements.
TILE = 64


@njit(**SERIAL)
def copy_tile_rows(src, dst, bi):
    """Copy the ``bi``-th row of tiles of ``src`` into ``dst``."""
    rows, cols = src.shape
    i0 = bi * TILE
    i1 = min(i0 + TILE, rows)
    for j0 in range(0, cols, TILE):
        j1 = min(j0 + TILE, cols)
        for i in range(i0, i1):
            for j in range(j0, j1):
                dst[i, j] = src[i, j]


# One serial and one parallel driver (numba's cache does not tell compile
# options apart); both ``dst[i, j] = src[i, j]`` for 2-D arrays of one
# shape and any strides.


@njit(**SERIAL)
def tiled_copy_serial(src, dst):
    for bi in range((src.shape[0] + TILE - 1) // TILE):
        copy_tile_rows(src, dst, bi)


@njit(**PARALLEL)
def tiled_copy_parallel(src, dst):
    for bi in prange((src.shape[0] + TILE - 1) // TILE):
        copy_tile_rows(src, dst, bi)
