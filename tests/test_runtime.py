"""Run-time behaviour of softjit, each scenario in a fresh child process.

Every test runs its checks in a subprocess (``sys.executable`` on a script
written to ``tmp_path``), so an abort (numba's ``workqueue`` layer calls
``abort()`` on concurrent parallel entry), a crash or a hang cannot take
pytest down with it.  Each child has a timeout, must exit with status 0 and
must print ``CHILD_OK``.

Covered:

1. Lazy import: ``import softjit`` / ``import softjit.gufuncs`` compile no
   kernel and build no gufunc, and take <= 1 s beyond numpy's and numba's
   own import.
2. Unwritable caches:

   a. ``NUMBA_CACHE_DIR`` points at a directory that cannot be written;
   b. softjit is imported from a read-only copy of its source tree, with
      ``NUMBA_CACHE_DIR`` unusable and bytecode writing off (numba then
      falls back to its user-wide cache, redirected here to ``tmp_path``);
   c. as (b), but with no writable cache location at all (user-wide cache
      unusable too): ``softjit._options`` documents that "a read-only
      install still works".

   Each child calls softmax, log_softmax and logsumexp on small and large
   (serial and parallel driver) inputs and the three gufuncs, and compares
   against plain numpy float64 references.

   Root ignores permission bits, so "read-only" is made real for root too:
   a directory is first tried with ``chmod 0o555`` and a probe write; if the
   probe succeeds (root), an uncreatable path under a regular *file*
   (``tmp_path/"afile"/"cache"``) is used instead, and in the read-only
   package copy a regular file named ``__pycache__`` blocks numba's in-tree
   cache directory.
2b. Concurrent builds: two children build the same gufuncs at one moment
   into an empty cache (numba issue #10128 left a cache that crashed every
   later process); a child's gufunc build and a child's kernel cache write
   wait while another child holds softjit's lock.
3. Threads: 8 threads x 30 rounds calling every public function and gufunc
   concurrently on mixed sizes, compared bit-for-bit with single-threaded
   results, under each numba threading layer that can be loaded
   (``workqueue`` is mandatory; ``omp`` and ``tbb`` are skipped if absent).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import softjit

pytestmark = pytest.mark.slow

CHILD_TIMEOUT = 300  # seconds, per child process
MARKER = "CHILD_OK"
PACKAGE_DIR = Path(softjit.__file__).resolve().parent

# numba settings from the caller's environment that would change what a child tests.
_SCRUBBED_ENV = (
    "NUMBA_CACHE_DIR",
    "NUMBA_DISABLE_JIT",
    "NUMBA_THREADING_LAYER",
    "NUMBA_THREADING_LAYER_PRIORITY",
    "NUMBA_CACHE_LOCATOR_CLASSES",
    "PYTHONDONTWRITEBYTECODE",
)


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment, scrubbed, importing the same softjit as the
    tests (the source tree or the install) unless ``extra`` sets PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    inherited = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_DIR.parent), inherited) if p)
    env.update(extra or {})
    return env


def _run_child(
    tmp_path: Path,
    script: str,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    name: str = "child.py",
    timeout: float = CHILD_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter; by default require success + marker."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(script))
    try:
        proc = subprocess.run(
            [sys.executable, str(path)],
            env=_child_env(env),
            cwd=str(cwd or tmp_path),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"child {name} did not finish within {timeout} s (deadlock?)\n"
            f"--- stdout ---\n{exc.stdout}\n--- stderr ---\n{exc.stderr}"
        )
    if check:
        detail = f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        assert proc.returncode == 0, f"child {name} exited with {proc.returncode}\n{detail}"
        assert MARKER in proc.stdout.splitlines(), f"child {name} printed no {MARKER}\n{detail}"
    return proc


def _can_write(directory: Path) -> bool:
    probe = directory / ".write-probe"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


def _uncreatable_path(tmp_path: Path, name: str) -> Path:
    """A path that nobody, root included, can create: it lies under a regular file."""
    afile = tmp_path / "afile"
    afile.touch()
    return afile / name


def _unwritable_cache_dir(tmp_path: Path) -> tuple[Path, str]:
    """An unusable cache directory and how it was made unusable.

    First choice: an existing directory with mode 0o555.  When a probe write
    still succeeds (running as root), fall back to a path under a regular
    file, which cannot be created.
    """
    ro = tmp_path / "ro-cache"
    ro.mkdir()
    ro.chmod(0o555)
    if not _can_write(ro):
        return ro, "chmod 0o555 directory"
    ro.chmod(0o755)
    return _uncreatable_path(tmp_path, "cache"), "path under a regular file (root ignores 0o555)"


def _make_read_only(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for f in filenames:
            (Path(dirpath) / f).chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    for dirpath, _dirnames, _filenames in os.walk(root, topdown=False):
        Path(dirpath).chmod(0o555)


def _make_writable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        Path(dirpath).chmod(0o755)
        for f in filenames:
            (Path(dirpath) / f).chmod(0o644)


def _tree_listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --------------------------------------------------------------------------- 1. lazy import

_LAZY_IMPORT_SCRIPT = """
import time

import numba  # noqa: F401  (timed separately: not softjit's cost)
import numpy as np
from numba.core.dispatcher import Dispatcher

t0 = time.perf_counter()
import softjit
import softjit.gufuncs
elapsed = time.perf_counter() - t0
print(f"import softjit, softjit.gufuncs: {elapsed:.3f} s")

from softjit.kernels import _cache

dispatchers = {
    f"{d.py_func.__module__}.{d.py_func.__name__}": d
    for d in _cache.compiled_functions("softjit.kernels")
}
assert all(isinstance(d, Dispatcher) for d in dispatchers.values())
assert len(dispatchers) >= 40, sorted(dispatchers)
compiled = {k: d.signatures for k, d in dispatchers.items() if d.signatures != []}
assert not compiled, f"compiled at import: {compiled}"
info = softjit.gufuncs._build.cache_info()
assert info.currsize == 0, f"gufuncs built at import: {info}"
assert elapsed <= 1.0, f"import took {elapsed:.3f} s (> 1 s)"

# The probes above can see compilation: a call compiles, an access builds.
softjit.softmax(np.array([1.0, 2.0]))
assert softjit.kernels.rows.small_softmax_row.signatures != []
softjit.gufuncs.logsumexp
assert softjit.gufuncs._build.cache_info().currsize == 1
print("CHILD_OK")
"""


def test_import_is_lazy_and_fast(tmp_path):
    _run_child(tmp_path, _LAZY_IMPORT_SCRIPT, name="lazy_import.py")


# --------------------------------------------------------------------------- 2. unwritable caches

_CORRECTNESS_SCRIPT = """
import os
from pathlib import Path

import numpy as np

import softjit
from softjit import gufuncs

expected_dir = Path(os.environ["SOFTJIT_EXPECTED_DIR"]).resolve()
actual_dir = Path(softjit.__file__).resolve().parent
assert actual_dir == expected_dir, f"imported {actual_dir}, expected {expected_dir}"
print("softjit imported from", actual_dir)


def ref_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_log_softmax(x):
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def ref_logsumexp(x):
    m = x.max(axis=-1)
    return m + np.log(np.exp(x - m[..., None]).sum(axis=-1))


def ref_jacobian(y):
    return y[..., :, None] * np.eye(y.shape[-1]) - y[..., :, None] * y[..., None, :]


# (name, reference); a gufunc is built (compiled) on first access, so the
# functions are looked up after the selection below.
CASES = [
    ("softmax", ref_softmax),
    ("log_softmax", ref_log_softmax),
    ("logsumexp", ref_logsumexp),
    ("gufuncs.softmax", ref_softmax),
    ("gufuncs.log_softmax", ref_log_softmax),
    ("gufuncs.logsumexp", ref_logsumexp),
    # a gufunc that builds in about a second, for the children that compile afresh
    ("gufuncs.softmax_jacobian", ref_jacobian),
]
# Children that compile everything afresh (read-only copies) check a subset:
# cold compilation dominates their run time.
if os.environ.get("SOFTJIT_CASES"):
    CASES = [c for c in CASES if c[0] in os.environ["SOFTJIT_CASES"].split(",")]
CASES = [(name, getattr(gufuncs, name[8:]) if name.startswith("gufuncs.")
          else getattr(softjit, name), ref) for name, ref in CASES]
# Small (serial driver) and >= 16384-element multi-row (parallel driver) inputs.
SHAPES = [(7,), (5, 13), (3, 100), (4, 20000), (300, 300)]
if os.environ.get("SOFTJIT_CASES"):
    SHAPES = [(7,), (300, 300)][: int(os.environ.get("SOFTJIT_N_SHAPES", "2"))]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-6)}
# Cold compilation dominates a child's run time: children that compile everything
# afresh (read-only copies) check float64 only.
TOL = {dt: TOL[dt] for dt in (np.float64, np.float32)[: int(os.environ["SOFTJIT_N_DTYPES"])]}

rng = np.random.default_rng(12345)
for shape in SHAPES:
    x64 = rng.standard_normal(shape) * 10.0
    for dt, tol in TOL.items():
        x = x64.astype(dt)
        for name, fn, ref in CASES:
            # the jacobian's result is (rows, n, n): a corner of x is enough
            xin = x.reshape(-1, x.shape[-1])[:3, :40] if name.endswith("jacobian") else x
            got = fn(xin)
            want = ref(xin.astype(np.float64))
            assert got.dtype == dt, (name, shape, got.dtype)
            np.testing.assert_allclose(got, want, err_msg=f"{name} {shape} {dt}", **tol)

# Both paths really ran: the small-call kernels and the parallel drivers.
names = {name for name, _, _ in CASES}
if names & {"softmax", "log_softmax"}:
    rows = softjit.kernels.rows
    small = (rows.small_softmax_row, rows.small_softmax_rows, rows.small_log_softmax_row,
             rows.small_log_softmax_rows)
    assert any(f.signatures for f in small), "the small-call kernels never ran"
if "logsumexp" in names:
    rows = softjit.kernels.rows
    assert rows.small_logsumexp_row.signatures or rows.small_logsumexp_rows.signatures, \
        "the small logsumexp kernels never ran"
if names & {"softmax", "log_softmax", "logsumexp"} and (300, 300) in SHAPES:
    rows = softjit.kernels.rows
    entries = (rows.softmax_rows_parallel, rows.log_softmax_rows_parallel,
               rows.logsumexp_rows_parallel)
    assert any(f.signatures for f in entries), "the parallel row drivers never ran"
print("CHILD_OK")
"""


def test_unwritable_numba_cache_dir(tmp_path):
    """(a) NUMBA_CACHE_DIR cannot be written (see _unwritable_cache_dir for how)."""
    cache_dir, how = _unwritable_cache_dir(tmp_path)
    try:
        proc = _run_child(
            tmp_path,
            _CORRECTNESS_SCRIPT,
            name="unwritable_cache.py",
            env={
                "NUMBA_CACHE_DIR": str(cache_dir),
                # numba may fall back to its user-wide cache: keep it out of ~.
                "XDG_CACHE_HOME": str(tmp_path / "user-cache"),
                "SOFTJIT_EXPECTED_DIR": str(PACKAGE_DIR),
                "SOFTJIT_N_DTYPES": "2",
            },
        )
    finally:
        if cache_dir.is_dir():
            cache_dir.chmod(0o755)
    assert not cache_dir.exists() or not any(cache_dir.iterdir()), (how, proc.stdout)


@pytest.mark.parametrize(
    "user_cache",
    [
        "writable",
        pytest.param("none", id="no-writable-cache-anywhere"),
    ],
)
def test_read_only_package_copy(tmp_path, user_cache):
    """(b) softjit imported from a read-only copy of its source tree.

    ``user_cache="writable"``: numba's user-wide cache (XDG_CACHE_HOME) is a
    writable directory in tmp_path, the usual situation for a read-only
    site-packages.  ``user_cache="none"``: no cache location is writable at
    all (read-only file system, HOME not writable); softjit documents that a
    read-only install still works, compiling in memory.
    """
    ro_root = tmp_path / "ro"
    pkg = ro_root / "softjit"
    shutil.copytree(PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    _make_read_only(ro_root)
    if _can_write(pkg):
        # Root ignores the mode bits: block numba's in-tree caches (the
        # __pycache__ of the package and of each subpackage) with regular
        # files of that name, so they cannot be created either.
        for package in [pkg, *(d for d in pkg.rglob("*") if (d / "__init__.py").is_file())]:
            package.chmod(0o755)
            (package / "__pycache__").touch()
        _make_read_only(ro_root)
    before = _tree_listing(ro_root)

    env = {
        "PYTHONPATH": str(ro_root),
        "PYTHONDONTWRITEBYTECODE": "1",
        "NUMBA_CACHE_DIR": str(_uncreatable_path(tmp_path, "numba-cache")),
        "SOFTJIT_EXPECTED_DIR": str(pkg),
        "SOFTJIT_N_DTYPES": "1",  # everything compiles afresh here: float64 only
        # the small-call path only where a cache is written; the multi-threaded
        # driver too where nothing can be cached
        "SOFTJIT_N_SHAPES": "1" if user_cache == "writable" else "2",
        # Building a gufunc compiles both dtypes' kernels: the harder case
        # (no cache anywhere) checks one that builds quickly.
        "SOFTJIT_CASES": ("softmax" if user_cache == "writable"
                          else "softmax,gufuncs.softmax_jacobian"),
    }
    if user_cache == "writable":
        env["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")
    else:
        env["XDG_CACHE_HOME"] = str(_uncreatable_path(tmp_path, "xdg-cache"))
        env["HOME"] = str(_uncreatable_path(tmp_path, "home"))
    try:
        _run_child(tmp_path, _CORRECTNESS_SCRIPT, name="read_only_copy.py", env=env, cwd=tmp_path)
        assert _tree_listing(ro_root) == before, "the read-only copy was written to"
    finally:
        _make_writable(ro_root)


# --------------------------------------------------------------------------- 2b. concurrent builds

# Builds three gufuncs once SOFTJIT_GO exists, after compiling SOFTJIT_SHIFT
# throw-away functions (which shifts numba's per-process function numbers,
# the condition under which two concurrent builds can write a cache that
# crashes every later process: numba issue #10128), then checks them.
_BUILD_SCRIPT = """
import os
import time

import numba
import numpy as np

from softjit import gufuncs

for k in range(int(os.environ["SOFTJIT_SHIFT"])):
    numba.njit(lambda v: v + 1)(k)
go = os.environ.get("SOFTJIT_GO")
if go:
    open(f"{go}.ready{os.environ['SOFTJIT_SHIFT']}", "w").close()
while go and not os.path.exists(go):
    time.sleep(0.001)
for name in ("softmax_jacobian", "softmax_jvp", "margin_ranking_loss"):
    getattr(gufuncs, name)
print("BUILT", time.time())
y = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
v = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 2.0]])
jac = y[:, :, None] * np.eye(3) - y[:, :, None] * y[:, None, :]
np.testing.assert_allclose(gufuncs.softmax_jacobian(y), jac, rtol=1e-15, atol=1e-16)
jvp = y * (v - (y * v).sum(-1, keepdims=True))
np.testing.assert_allclose(gufuncs.softmax_jvp(y, v), jvp, rtol=1e-15, atol=1e-16)
loss = gufuncs.margin_ranking_loss(v, 1, 1.0)
np.testing.assert_allclose(loss, np.maximum(0.0, 1.0 - v[:, 1:2] + v).sum(-1) - 1.0)
print("CHILD_OK")
"""

# Holds softjit's gufunc build lock (SOFTJIT_LOCK=build) or its cache-write
# lock (save) for a moment, as a process building or compiling would.
_HOLD_SCRIPT = """
import os
import time
from pathlib import Path

from softjit import gufuncs
from softjit.kernels import _cache, primitives

if os.environ["SOFTJIT_LOCK"] == "build":
    lock = _cache.build_lock(gufuncs._BUILDERS["softmax"][0])
else:
    lock = _cache.file_lock(
        _cache.lock_path(primitives.exp_neg_f64_2.py_func, _cache.SAVE_LOCK_NAME))
with lock:
    Path(os.environ["SOFTJIT_HELD"]).touch()
    time.sleep(2.0)
    print("RELEASED", time.time())
print("CHILD_OK")
"""

# Compiles one small kernel (into an empty cache) and says when it is done.
_COMPILE_SCRIPT = """
import math
import time

from softjit.kernels import primitives

assert abs(primitives.exp_neg_f64_2(-1.0, 0.0) - 1.0 / math.e) <= 1.2e-16
print("BUILT", time.time())
print("CHILD_OK")
"""


def _start_child(tmp_path: Path, script: str, name: str, env: dict[str, str]) -> subprocess.Popen:
    path = tmp_path / name
    path.write_text(textwrap.dedent(script))
    return subprocess.Popen([sys.executable, str(path)], env=_child_env(env), cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, name: str) -> str:
    try:
        out, err = proc.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"child {name} did not finish within {CHILD_TIMEOUT} s")
    detail = f"--- stdout ---\n{out}\n--- stderr ---\n{err}"
    assert proc.returncode == 0, f"child {name} exited with {proc.returncode}\n{detail}"
    assert MARKER in out.splitlines(), f"child {name} printed no {MARKER}\n{detail}"
    return out


def _stamp(out: str, word: str) -> float:
    return next(float(line.split()[1]) for line in out.splitlines() if line.startswith(word))


def test_concurrent_gufunc_builds_leave_a_sound_cache(tmp_path):
    """Two processes build the same gufuncs at the same moment into an empty
    cache, with different function numbering; both, and a third process
    loading their cache afterwards, must get correct results (without the
    build lock, about every other run crashed one of them).  The third
    process starts while a fourth holds the build lock: it must wait."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "SOFTJIT_GO": str(tmp_path / "go")}
    racers = [_start_child(tmp_path, _BUILD_SCRIPT, f"racer{shift}.py",
                           dict(env, SOFTJIT_SHIFT=str(shift))) for shift in (0, 3)]
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not all((tmp_path / f"go.ready{shift}").exists() for shift in (0, 3)):
        for shift, proc in zip((0, 3), racers, strict=True):
            assert proc.poll() is None, _finish(proc, f"racer{shift}.py")
        assert time.monotonic() < deadline, "the racers never got ready"
        time.sleep(0.01)
    (tmp_path / "go").touch()  # both imported and compiled their throw-aways: go
    for shift, proc in zip((0, 3), racers, strict=True):
        _finish(proc, f"racer{shift}.py")

    env = {"NUMBA_CACHE_DIR": env["NUMBA_CACHE_DIR"], "SOFTJIT_SHIFT": "0"}
    _waits_for_holder(tmp_path, "build", _BUILD_SCRIPT, env)


def _waits_for_holder(tmp_path: Path, lock: str, script: str, env: dict[str, str]) -> None:
    """Run ``script`` while another child holds ``lock``: it must finish
    after the holder released it."""
    held = tmp_path / f"held-{lock}"
    env = dict(env, SOFTJIT_HELD=str(held), SOFTJIT_LOCK=lock)
    holder = _start_child(tmp_path, _HOLD_SCRIPT, f"holder_{lock}.py", env)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not held.exists():
        assert holder.poll() is None, _finish(holder, f"holder_{lock}.py")
        assert time.monotonic() < deadline, f"holder_{lock}.py never took the lock"
        time.sleep(0.01)
    waiter = _run_child(tmp_path, script, name=f"waiter_{lock}.py", env=env)
    released = _finish(holder, f"holder_{lock}.py")
    assert _stamp(waiter.stdout, "BUILT") >= _stamp(released, "RELEASED")


def test_cache_writes_wait_for_another_process(tmp_path):
    """numba writes a compiled kernel to its cache under softjit's
    cache-write lock: while another process holds it, the write waits."""
    _waits_for_holder(tmp_path, "save", _COMPILE_SCRIPT,
                      {"NUMBA_CACHE_DIR": str(tmp_path / "cache")})


# --------------------------------------------------------------------------- 3. threads

_LAYER_PROBE_SCRIPT = """
import numba
import numpy as np


@numba.njit(parallel=True)
def total(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += x[i]
    return s


assert total(np.ones(1000)) == 1000.0
print("LAYER", numba.threading_layer())
print("CHILD_OK")
"""

_THREADS_SCRIPT = """
import faulthandler
import os
import sys
import threading

import numba
import numpy as np

import softjit
import softjit._run
from softjit import gufuncs

# On a hang, dump every thread's stack before the parent's timeout kills us.
faulthandler.dump_traceback_later(float(os.environ["CHILD_HANG_DUMP"]), exit=True)

N_THREADS, N_ROUNDS = 8, 30


class CountingLock:
    # Wraps softjit's PARALLEL_LOCK to count how often a caller found it taken.
    def __init__(self, lock):
        self._lock = lock
        self._count_lock = threading.Lock()
        self.acquired = 0
        self.refused = 0

    def acquire(self, blocking=True, timeout=-1):
        ok = self._lock.acquire(blocking, timeout)
        with self._count_lock:
            if ok:
                self.acquired += 1
            else:
                self.refused += 1
        return ok

    def release(self):
        self._lock.release()


FUNCS = [
    ("softmax", softjit.softmax),
    ("log_softmax", softjit.log_softmax),
    ("logsumexp", softjit.logsumexp),
    ("gufuncs.softmax", gufuncs.softmax),
    ("gufuncs.log_softmax", gufuncs.log_softmax),
    ("gufuncs.logsumexp", gufuncs.logsumexp),
]
rng = np.random.default_rng(2024)
INPUTS = [rng.standard_normal(s) * 5.0 for s in [(14,), (64, 10), (300, 300), (2, 50000)]]

# Single-threaded results, computed before any thread starts.
EXPECTED = {(name, i): fn(x) for name, fn in FUNCS for i, x in enumerate(INPUTS)}
layer = numba.threading_layer()
assert layer == os.environ["NUMBA_THREADING_LAYER"], layer
print("threading layer:", layer, "threads:", numba.get_num_threads())

counting = CountingLock(softjit._run.PARALLEL_LOCK)
softjit._run.PARALLEL_LOCK = counting

barrier = threading.Barrier(N_THREADS)
errors = []


def worker(tid):
    try:
        barrier.wait(timeout=60)
        for r in range(N_ROUNDS):
            i = (tid + r) % len(INPUTS)
            # Vary the order of the functions between threads and rounds.
            k0 = (tid * 5 + r) % len(FUNCS)
            for name, fn in FUNCS[k0:] + FUNCS[:k0]:
                got = fn(INPUTS[i])
                if not np.array_equal(got, EXPECTED[name, i]):
                    diff = np.max(np.abs(got - EXPECTED[name, i]))
                    errors.append(f"thread {tid} round {r}: {name} on input {i}, max diff {diff}")
    except BaseException as exc:
        errors.append(f"thread {tid}: {exc!r}")


threads = [threading.Thread(target=worker, args=(t,)) for t in range(N_THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
faulthandler.cancel_dump_traceback_later()
print(f"parallel lock: acquired {counting.acquired}, refused {counting.refused}")
assert not errors, "\\n".join(errors[:20]) + f"\\n({len(errors)} mismatches)"
# The guard was exercised: some callers found a parallel driver running.
assert counting.refused > 0, "no contention on the parallel lock; test did not exercise it"
print("CHILD_OK")
"""


def require_layer(tmp_path: Path, layer: str) -> dict[str, str]:
    """Skip unless numba's threading ``layer`` loads here (``workqueue``, built
    into numba, must); return the environment that selects it in a child."""
    env = {"NUMBA_THREADING_LAYER": layer, "CHILD_HANG_DUMP": str(CHILD_TIMEOUT - 30)}
    probe = _run_child(
        tmp_path, _LAYER_PROBE_SCRIPT, name="layer_probe.py", env=env, timeout=120, check=False
    )
    loaded = f"LAYER {layer}" in probe.stdout.splitlines()
    if not (probe.returncode == 0 and loaded):
        tail = probe.stderr.strip().splitlines()[-4:] or [f"exit status {probe.returncode}"]
        reason = " | ".join(line.strip() for line in tail)
        if layer == "workqueue":
            pytest.fail(f"numba's built-in workqueue threading layer failed to load: {reason}")
        pytest.skip(f"numba threading layer {layer!r} cannot be loaded here: {reason}")
    return env


#: numba's threading layers; tests skip the ones that cannot be loaded.
THREADING_LAYERS = ["workqueue", "omp", "tbb"]


@pytest.mark.parametrize("layer", THREADING_LAYERS)
def test_threads_concurrent_calls(tmp_path, layer):
    env = require_layer(tmp_path, layer)
    _run_child(tmp_path, _THREADS_SCRIPT, name=f"threads_{layer}.py", env=env)
