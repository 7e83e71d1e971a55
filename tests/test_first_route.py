"""The first route (softjit._first): light kernels that serve calls while
the full engine compiles in a background process.  They give the full
engine's bits for every row class, dtype and special value; the background
build switches a process to the full engine and lets later processes start
with it; the switch can be turned off; nothing is left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import reference as ref

import softjit
from softjit import _first

PACKAGE_PARENT = Path(softjit.__file__).resolve().parent.parent
FUNCS = {"softmax": softjit.softmax, "log_softmax": softjit.log_softmax,
         "logsumexp": softjit.logsumexp}
REFS = {"softmax": ref.softmax, "log_softmax": ref.log_softmax, "logsumexp": ref.logsumexp}


def _inputs(dtype: type, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One array per row class and special case the first route serves."""
    special = (rng.standard_normal((9, 40)) * 5).astype(dtype)
    special[1, 3] = np.inf
    special[2, :2] = np.inf
    special[3, 5] = np.nan
    special[4] = -np.inf
    special[5, ::2] = -np.inf
    near_zero = rng.standard_normal((50, 30)).astype(dtype)
    near_zero -= softjit.logsumexp(near_zero)[:, None].astype(dtype)  # results near 0: refined
    return {
        "one row": (rng.standard_normal(14) * 5).astype(dtype),
        "short rows": (rng.standard_normal((500, 12)) * 5).astype(dtype),
        "64 wide": (rng.standard_normal((30, 64)) * 5).astype(dtype),
        "medium rows": (rng.standard_normal((300, 300)) * 5).astype(dtype),
        "3-d": (rng.standard_normal((2, 3, 500)) * 5).astype(dtype),
        "strided": (rng.standard_normal((40, 200)) * 5).astype(dtype)[:, ::2],
        "special values": special,
        "log-probabilities": near_zero,
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FUNCS))
def test_first_route_gives_the_full_engines_bits(name, dtype):
    fn = FUNCS[name]
    rng = np.random.default_rng(7)
    differ = []
    for label, x in _inputs(dtype, rng).items():
        full = fn(x)
        with _first.first_route_only():
            first = fn(x)
            tempered = None if name == "logsumexp" else fn(x, temperature=0.7)
        if np.asarray(first).tobytes() != np.asarray(full).tobytes():
            differ.append(label)
        if tempered is not None and tempered.tobytes() != fn(x, temperature=0.7).tobytes():
            differ.append(label + ", temperature")
        np.testing.assert_allclose(first, REFS[name](x.astype(np.float64)).astype(dtype),
                                   rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-6 if dtype == np.float32 else 1e-13)
    assert differ == []


def test_first_route_in_place_and_out():
    x = np.random.default_rng(1).standard_normal((20, 50))
    want = softjit.softmax(x)
    with _first.first_route_only():
        y = x.copy()
        softjit.softmax(y, out=y)
        out = np.empty((50, 20)).T  # out= not C-ordered
        softjit.softmax(x, out=out)
    assert y.tobytes() == want.tobytes()
    assert np.ascontiguousarray(out).tobytes() == want.tobytes()


def test_off_switch_and_no_cache(monkeypatch):
    monkeypatch.setenv(_first.ENV, "off")
    assert not _first.enabled()
    monkeypatch.setenv(_first.ENV, "1")
    monkeypatch.setattr(_first, "CACHE", False)  # numba has no writable cache
    assert not _first.enabled()
    monkeypatch.setattr(_first, "CACHE", True)
    assert _first.enabled()


# ------------------------------------------------------------ fresh processes

_CHILD = """
import json, os, sys, time
import numpy as np
from numba.core import event
import softjit
from softjit import _first

what, path = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(3)
cases = {}
for dt in ("float32", "float64"):
    for shape in [(14,), (300, 12), (200, 100), (2, 3, 400), (50, 30)]:
        cases[f"{dt} {shape}"] = (rng.standard_normal(shape) * 5).astype(dt)
names = ["softmax"]  # the other operations: the in-process tests

def results():
    return {f"{name} {key}": getattr(softjit, name)(x) for name in names
            for key, x in cases.items()}

report = {}
if what == "first":
    got = results()
    report["status"] = _first.status()
    report["workers"] = [w.pid for w in _first._WORKERS]
    np.savez(path, **{k: np.asarray(v) for k, v in got.items()})
elif what == "later":
    with event.install_recorder("numba:compile") as rec:
        got = results()
    report["status"] = _first.status()
    report["compiled"] = sorted({e.data["dispatcher"].py_func.__qualname__
                                 for _, e in rec.buffer if e.data.get("dispatcher")})
    saved = np.load(path)
    report["differ"] = [k for k in got if np.asarray(got[k]).tobytes() != saved[k].tobytes()]
elif what == "exit":
    softjit.softmax(cases["float32 (200, 100)"])
    report["workers"] = [w.pid for w in _first._WORKERS]
print("REPORT", json.dumps(report))
"""


def _child(what: str, cache: Path, path: Path, **env: str) -> dict:
    full_env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), **env)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", _CHILD, what, str(path)], env=full_env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    line = next(s for s in proc.stdout.splitlines() if s.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not reaped by its parent, already gone) is not running
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _build(cache: Path, dtype: str) -> subprocess.Popen[str]:
    """The background build of softmax on ``dtype``, run directly (not at
    low priority: the test suite keeps both cores busy)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), SOFTJIT_FIRST_ROUTE="0")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")) if p)
    code = f"from softjit import _first; raise SystemExit(_first.build(0, {dtype!r}, nice=False))"
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stderr=subprocess.PIPE)


@pytest.mark.slow
def test_fresh_processes_first_route_then_full_engine(tmp_path):
    """An empty cache: the first calls take the first route and start a
    background build.  Once the builds are done (run here directly), a
    later process starts on the full engine (the markers), compiles nothing
    for these calls and gets the same bits as the first route gave."""
    cache = tmp_path / "cache"
    saved = tmp_path / "first.npz"
    first = _child("first", cache, saved, SOFTJIT_FIRST_ROUTE="1")
    assert first["status"] == {"first route": "on", "softmax float32": "building",
                               "softmax float64": "building"}
    assert len(first["workers"]) == 1  # one build at a time
    builds = [_build(cache, dt) for dt in ("float32", "float64")]
    for b in builds:
        _, err = b.communicate(timeout=900)
        assert b.returncode == 0, err
    later = _child("later", cache, saved, SOFTJIT_FIRST_ROUTE="1")
    assert later["status"] == {"first route": "on", "softmax float32": "ready",
                               "softmax float64": "ready"}
    assert later["compiled"] == []
    assert later["differ"] == []


def test_switch_when_the_build_is_done(monkeypatch, tmp_path):
    """The state of one group in a process: the first route while its
    background build runs, the full engine once the build has left its
    marker (a stand-in for the build process)."""

    class Build:
        done = False

        def poll(self):
            return 0 if self.done else None

    build = Build()
    key = (int(_first.Kind.SOFTMAX), np.dtype(np.float32))
    monkeypatch.setattr(_first, "_ENABLED", True)
    monkeypatch.setattr(_first, "_cache_dir", lambda: tmp_path)
    monkeypatch.setattr(_first, "_start", lambda kind, dtype: build)
    monkeypatch.setattr(_first, "READY", set())
    monkeypatch.setattr(_first, "_PENDING", {})
    monkeypatch.setattr(_first, "_QUEUE", [])
    monkeypatch.setattr(_first, "_BUILDING", [])
    assert _first.use_first(*key)
    assert _first.status()["softmax float32"] == "building"
    assert _first.use_first(*key)  # still building
    _first.mark_ready(*key)
    build.done = True
    assert not _first.use_first(*key)
    assert _first.status()["softmax float32"] == "ready"


@pytest.mark.slow
def test_background_build_ends_with_its_process(tmp_path):
    report = _child("exit", tmp_path / "cache", tmp_path / "x.npz", SOFTJIT_FIRST_ROUTE="1")
    assert len(report["workers"]) == 1
    deadline = time.monotonic() + 30
    while _alive(report["workers"][0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(report["workers"][0])


def test_switched_off_starts_no_background_build(tmp_path):
    report = _child("exit", tmp_path / "cache", tmp_path / "x.npz", SOFTJIT_FIRST_ROUTE="0")
    assert report["workers"] == []
