"""Numba compilation options and run-time switches, in one place.

Every kernel in softjit is compiled with the options defined here, so a
change of policy (caching, floating-point flags, error model) is made once.

* ``cache=True``: compiled code is stored in numba's cache directory and
  reused by later processes; when numba finds no writable cache location,
  softjit compiles in memory instead (:func:`cache_available`).
* ``error_model="numpy"``: no Python-style division-by-zero checks inside
  loops (they block vectorization); IEEE results (inf, nan) instead.
* ``fastmath``: an explicit flag set.  ``nnan``/``ninf`` are never set,
  because the kernels rely on ``-inf`` (masked or underflowing entries) and
  NaN propagation.
"""

from __future__ import annotations

from numba import njit

#: LLVM fast-math flags that are safe for softjit's kernels (see module doc).
FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract"})



def _probe() -> None:  # pragma: no cover - never called, only decorated
    pass


def cache_available() -> bool:
    """Whether numba can cache functions of this package.

    numba looks for a writable cache location (``NUMBA_CACHE_DIR``, the
    package's ``__pycache__``, then the user-wide cache) when a function is
    decorated, and raises if there is none.  softjit then compiles in
    memory instead, so a read-only install with no writable cache location
    still imports and runs.
    """
    try:
        njit(cache=True)(_probe)
    except RuntimeError:
        return False
    return True


#: Cache compiled kernels on disk when a cache location is writable.
CACHE = cache_available()

#: Options for serial kernels (row functions and single-threaded drivers).
SERIAL = {
    "cache": CACHE,
    "nogil": True,
    "error_model": "numpy",
    "fastmath": set(FASTMATH_FLAGS),
}

#: :data:`SERIAL` for the per-row steps of the row drivers, inlined at
#: numba's level (the same flags): each level of calls between a driver
#: and the leaf steps makes LLVM optimize and compile the tree below it
#: once more.
SERIAL_INLINE = dict(SERIAL, inline="always")

#: Options for the entry points of small arrays (fewer than
#: ``PARALLEL_MIN_ELEMENTS`` elements): they keep the GIL, whose release
#: and reacquisition cost about 60 ns, a third of a 14-element softmax's
#: kernel time, while the work holds it for microseconds at most.
SMALL = dict(SERIAL, nogil=False)

#: Options for the multi-threaded drivers.
PARALLEL = dict(SERIAL, parallel={"prange": True, "comprehension": False, "reduction": False,
                                  "inplace_binop": False, "setitem": False, "numpy": False,
                                  "stencil": False, "fusion": False})

#: Options for loops that accumulate a sum: ``reassoc`` lets LLVM keep
#: several partial sums in vector registers.  The ``exp`` primitives called
#: from such loops are compiled separately (without ``reassoc``); LLVM keeps
#: each instruction's own flags when it inlines them.
REDUCE = dict(SERIAL, fastmath=set(FASTMATH_FLAGS | {"reassoc"}))

#: Options for primitives whose bits must not depend on where they are
#: inlined (a loop across rows, vectorized, or one row's scalar code): no
#: fast-math flags, so LLVM cannot contract or rewrite their operations
#: differently in the two.
STRICT = dict(SERIAL, fastmath=False)

#: :data:`STRICT` for the double-double helpers, inlined at numba's level:
#: LLVM leaves functions of their size uninlined, and a call in a loop
#: keeps the loop scalar (~185 ns per ``exp`` term against ~25 inlined).
STRICT_INLINE = dict(STRICT, inline="always")

#: Options for the gufunc layer (``numba.guvectorize``).
GUFUNC = {
    "cache": CACHE,
    "nopython": True,
    "fastmath": set(FASTMATH_FLAGS),
}

#: Arrays with fewer elements than this run the serial driver: opening a
#: parallel region costs about 2 us (numba's omp layer, two threads, the
#: workers awake), more than the work on a small array saves.  Measured on
#: float32 rows of 1024 elements: 16 rows 9.4 us serially against 6.7 us
#: on two threads, 8 rows 4.9 against 4.3, 4 rows 2.8 against 3.2.  Must
#: stay at most ``LONG_ROW``, so that small arrays have short rows.
PARALLEL_MIN_ELEMENTS = 1 << 14

#: Sums are accumulated in blocks of this many terms (vectorized partial
#: sums of a few terms each), the block sums with a compensated (Neumaier)
#: sum: the sum's error stays near one rounding at any row length.
SUM_BLOCK = 256

#: Rows at least this long use the long-row kernels: two passes over the
#: row in chunks of ``LONG_ROW_CHUNK`` elements (an online max/sum, then
#: exp and scale), split across threads, instead of a per-row scratch
#: buffer that no longer fits in the core's cache.
LONG_ROW = 1 << 15

#: Rows of at most this many elements (of C-contiguous arrays) are processed
#: in blocks of ``SHORT_BLOCK_ROWS`` rows, transposed into a scratch block,
#: so that the maxima, ``exp`` and sums are loops across rows.
SHORT_ROW = 64
#: Rows per block of short rows.  Against the earlier flat blocks (one
#: ``exp`` loop, per-row sums), measured with float32 on one thread: 1.1 to
#: 2.2 times faster for rows of 2 to 16 elements, about even from 32 to 64
#: (softmax of 64-element rows 0.8x, log_softmax and logsumexp faster).
#: The float64 scratch blocks (at most 2 x 64 KiB) stay in the L2 cache.
SHORT_BLOCK_ROWS = 128
LONG_ROW_CHUNK = 1 << 13

#: Rows that lie across memory (softjit.kernels.columns) are processed in blocks
#: of at most this many rows ...
COLUMN_WIDTH = 32
#: ... and softmax blocks keep their float64 terms, rows of ``n`` elements
#: by the block's width, in at most this many bytes of scratch.
COLUMN_SCRATCH = 1 << 20

#: float32 logsumexp of rows across memory streams over spans of this many
#: rows (columns of memory) ...
STREAM_WIDTH = 512
#: ... in tiles of this many lines (64 KiB of float32 input at full width:
#: the tile's second read comes from the core's cache).
STREAM_TILE = 32

#: Results of at least this many bytes (larger than the caches) are
#: written with streaming stores (softmax and log_softmax, not in place).
STREAM_MIN_BYTES = 1 << 24
