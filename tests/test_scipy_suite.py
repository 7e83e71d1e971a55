"""Run SciPy's own test-suite for softmax / log_softmax / logsumexp against softjit.

SciPy ships ``scipy/special/tests/test_logsumexp.py`` (classes ``TestLogSumExp``,
``TestSoftmax`` and ``TestLogSoftmax``).  Rather than copying that code into this
repository (licensing, staleness), we run the *installed* file in a pytest
subprocess, with a tiny plugin that -- after collection, before any test runs --
rebinds the test module's globals ``softmax``, ``log_softmax`` and ``logsumexp``
to softjit adapters.

The adapters pass ``axis`` explicitly, defaulting to ``None``: softjit's default
is ``axis=-1`` while SciPy's is ``axis=None``, and SciPy's tests rely on the
SciPy default.  Everything else (keyword names, return types, dtypes, special
values, scalar-vs-0d-array conventions) is checked exactly as SciPy checks it.

SciPy's array-API test machinery (``xp`` / ``devices`` fixtures, the
``skip_xp_backends`` markers, ...) lives in ``scipy/conftest.py``; we make pytest
load it via ``--rootdir``/``--confcutdir`` and force the NumPy-only backend by
removing ``SCIPY_ARRAY_API`` from the child's environment.

``test_harness_selfcheck_with_scipy`` runs the identical harness with SciPy's own
functions behind the same adapters; if *that* fails, the harness (or the SciPy
install) is broken, not softjit.
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("scipy")

# Tests of the installed SciPy file that we do not run, keyed by
# "<Class>::<function>" (or "<function>" for module-level tests), with the reason.
# Keep this minimal: only tests that do not exercise softmax/log_softmax/logsumexp
# semantics.  Every entry must match at least one collected test, otherwise the
# run fails (so the list cannot silently go stale).
DESELECT = {
    "test_wrap_radians": (
        "tests scipy.special._logsumexp._wrap_radians, a SciPy-private helper; "
        "it never calls softmax/log_softmax/logsumexp"
    ),
}

# The test classes that must each have run at least one test.
REQUIRED_CLASSES = ("TestLogSumExp", "TestSoftmax", "TestLogSoftmax")
# Lower bound on the number of executed (non-skipped) tests.  SciPy 1.17 has
# ~400 (the logsumexp infinities/dtypes tests are heavily parametrized).
MIN_TESTS_RUN = 100

SUBPROCESS_TIMEOUT = 1800  # seconds

_PLUGIN_NAME = "_softjit_scipy_suite_plugin"
_PLUGIN_SOURCE = textwrap.dedent('''
    """pytest plugin: rebind scipy test-module globals to the adapters under test."""
    import json
    import os

    import pytest

    TARGET = os.environ["SOFTJIT_SCIPY_SUITE_TARGET"]
    DESELECT = json.loads(os.environ["SOFTJIT_SCIPY_SUITE_DESELECT"])
    TEST_FILE = os.path.realpath(os.environ["SOFTJIT_SCIPY_SUITE_FILE"])
    NAMES = ("softmax", "log_softmax", "logsumexp")


    def _load_adapters():
        if TARGET == "softjit":
            import softjit as impl
        elif TARGET == "scipy":
            import scipy.special as impl
        else:
            raise pytest.UsageError(f"unknown target {TARGET!r}")

        # axis is always passed explicitly; the default None is SciPy's default.
        def softmax(x, axis=None, **kw):
            return impl.softmax(x, axis=axis, **kw)

        def log_softmax(x, axis=None, **kw):
            return impl.log_softmax(x, axis=axis, **kw)

        def logsumexp(a, axis=None, **kw):
            return impl.logsumexp(a, axis=axis, **kw)

        adapters = {"softmax": softmax, "log_softmax": log_softmax,
                    "logsumexp": logsumexp}
        for f in adapters.values():
            f.__qualname__ = f"{TARGET}_adapter.{f.__name__}"
        return impl, adapters


    def _key(item):
        name = getattr(item, "originalname", None) or item.name.split("[")[0]
        cls = getattr(item, "cls", None)
        return f"{cls.__name__}::{name}" if cls is not None else name


    def pytest_collection_modifyitems(session, config, items):
        impl, adapters = _load_adapters()
        used = set()
        keep, dropped = [], []
        patched = {}
        for item in items:
            module = getattr(item, "module", None)
            if module is None or os.path.realpath(module.__file__) != TEST_FILE:
                raise pytest.UsageError(f"unexpected test item {item.nodeid}")
            key = _key(item)
            if key in DESELECT:
                used.add(key)
                dropped.append(item)
                continue
            keep.append(item)
            if id(module) not in patched:
                for name in NAMES:
                    if not hasattr(module, name):
                        raise pytest.UsageError(
                            f"{module.__name__} has no global {name!r}; "
                            "SciPy's test module layout changed")
                    setattr(module, name, adapters[name])
                patched[id(module)] = module
        stale = set(DESELECT) - used
        if stale:
            raise pytest.UsageError(
                f"DESELECT entries matched no collected test: {sorted(stale)}")
        if not patched:
            raise pytest.UsageError("no test module was patched")
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        config._softjit_suite_info = (impl.__name__, getattr(impl, "__file__", "?"),
                                      [m.__name__ for m in patched.values()])


    def pytest_runtest_setup(item):
        # Belt and braces: nothing may have re-bound the names after collection.
        for name in NAMES:
            f = getattr(item.module, name)
            if not f.__qualname__.startswith(f"{TARGET}_adapter."):
                raise RuntimeError(f"{item.module.__name__}.{name} is {f!r}, "
                                   f"not the {TARGET} adapter")


    def pytest_terminal_summary(terminalreporter, exitstatus, config):
        info = getattr(config, "_softjit_suite_info", None)
        if info:
            terminalreporter.write_line(
                f"softjit-scipy-suite: target={TARGET} impl={info[0]} "
                f"({info[1]}); patched modules={info[2]}")
''')


def _scipy_test_file():
    spec = importlib.util.find_spec("scipy.special.tests.test_logsumexp")
    if spec is None or spec.origin is None:
        pytest.skip("installed SciPy does not ship scipy/special/tests/test_logsumexp.py")
    return Path(spec.origin).resolve()


def _run_suite(tmp_path, target, extra_pythonpath=()):
    test_file = _scipy_test_file()
    scipy_dir = test_file.parents[2]          # .../site-packages/scipy
    site_dir = scipy_dir.parent               # .../site-packages

    (tmp_path / f"{_PLUGIN_NAME}.py").write_text(_PLUGIN_SOURCE)
    ini = tmp_path / "pytest.ini"             # isolate from any outer config
    ini.write_text("[pytest]\n")
    junit = tmp_path / "junit.xml"

    env = dict(os.environ)
    # NumPy backend only: SciPy's conftest adds other xp backends iff this is set.
    env.pop("SCIPY_ARRAY_API", None)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_PLUGINS", None)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["SOFTJIT_SCIPY_SUITE_TARGET"] = target
    env["SOFTJIT_SCIPY_SUITE_DESELECT"] = json.dumps(sorted(DESELECT))
    env["SOFTJIT_SCIPY_SUITE_FILE"] = str(test_file)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), *map(str, extra_pythonpath)]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))

    cmd = [
        sys.executable, "-m", "pytest", str(test_file),
        "-c", str(ini),
        "--rootdir", str(site_dir),
        # scipy/conftest.py provides the xp/devices fixtures and markers.
        "--confcutdir", str(scipy_dir),
        "-p", _PLUGIN_NAME,
        "-p", "no:cacheprovider",
        "-q", "--tb=short", "-rfE",
        f"--junitxml={junit}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=SUBPROCESS_TIMEOUT)
    elapsed = time.perf_counter() - t0
    output = (f"$ {' '.join(cmd)}\n(exit {proc.returncode}, {elapsed:.1f}s)\n"
              f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    print(output)  # shown by pytest on failure (captured stdout section)
    return proc, junit, output


def _junit_summary(junit):
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    failed, skipped, passed = [], [], []
    for case in cases:
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            node = case.find("failure")
            node = node if node is not None else case.find("error")
            lines = [ln.strip() for ln in (node.get("message") or "").splitlines()]
            msg = " | ".join(ln for ln in lines if ln)
            failed.append(f"{name}: {msg[:300]}")
        elif case.find("skipped") is not None:
            skipped.append(name)
        else:
            passed.append(name)
    return passed, failed, skipped


def _check(tmp_path, target, extra_pythonpath=()):
    proc, junit, output = _run_suite(tmp_path, target, extra_pythonpath)
    assert junit.exists(), f"pytest subprocess produced no junit report\n{output}"
    passed, failed, _skipped = _junit_summary(junit)
    failed_list = "\n".join(failed)
    assert proc.returncode == 0, (
        f"SciPy's test suite failed against {target} "
        f"({len(failed)} failed, {len(passed)} passed):\n{failed_list}\n\n{output}")
    assert not failed
    ran = len(passed)
    assert ran >= MIN_TESTS_RUN, (
        f"only {ran} SciPy tests ran (expected >= {MIN_TESTS_RUN})\n{output}")
    for cls in REQUIRED_CLASSES:
        assert any(f".{cls}::" in p for p in passed), (
            f"no test of {cls} ran\n{output}")


def test_scipy_suite_against_softjit(tmp_path):
    import softjit

    src = Path(softjit.__file__).resolve()
    # package (softjit/__init__.py) or single module (softjit.py)
    pkg_parent = src.parents[1] if src.name == "__init__.py" else src.parent
    _check(tmp_path, "softjit", extra_pythonpath=[pkg_parent])


def test_harness_selfcheck_with_scipy(tmp_path):
    # Same harness, SciPy's own functions behind the same adapters: must pass.
    _check(tmp_path, "scipy")
