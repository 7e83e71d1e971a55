"""numba's cache writes are serialized between processes for every compiled
function of softjit (softjit.kernels._cache), found by walking the package."""

import importlib
import pkgutil

import pytest
from numba.core.registry import CPUDispatcher

import softjit
from softjit import _options
from softjit.kernels import _cache

#: Modules that need an optional extra to import; they define no kernels.
OPTIONAL = {"softjit.xarray", "softjit.integrations.dask", "softjit.integrations.dask_losses"}


def _every_dispatcher():
    for info in pkgutil.walk_packages(softjit.__path__, "softjit."):
        if info.name in OPTIONAL or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == info.name:
                yield f"{info.name}.{name}", obj


def test_kernels_live_in_the_kernels_package():
    outside = [name for name, _ in _every_dispatcher() if not name.startswith("softjit.kernels.")]
    assert outside == []


def test_every_compiled_function_is_found_and_guarded():
    found = dict(_every_dispatcher())
    assert len(found) >= 80
    walked = {f"{d.py_func.__module__}.{d.py_func.__name__}"
              for d in _cache.compiled_functions("softjit.kernels")}
    assert set(found) == walked
    if not (_options.CACHE and _cache.fcntl is not None):
        pytest.skip("nothing is cached to disk here: no cache write to guard")
    unguarded = sorted(name for name, d in found.items() if not _cache.is_guarded(d))
    assert unguarded == []


def test_a_cache_write_holds_the_save_lock(monkeypatch):
    """The wrapper takes the file lock named SAVE_LOCK_NAME before numba's
    own save runs (which then fails here on the stand-in data: nothing is
    written)."""
    if not (_options.CACHE and _cache.fcntl is not None):
        pytest.skip("nothing is cached to disk here")
    from softjit.kernels import primitives

    taken = []
    real = _cache.file_lock

    def spy(path):
        taken.append(path)
        return real(path)

    monkeypatch.setattr(_cache, "file_lock", spy)
    with pytest.raises(Exception):  # noqa: B017 - numba's save rejects the stand-in
        primitives.two_sum._cache.save_overload(None, None)
    assert len(taken) == 1 and taken[0].endswith(_cache.SAVE_LOCK_NAME)
