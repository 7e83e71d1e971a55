"""Large results reuse the memory of dropped ones (softjit._memory)."""

import gc
import threading

import numpy as np
import pytest
import reference as ref

import softjit
from softjit import _memory


@pytest.fixture
def small_pool(monkeypatch):
    """Pool results of 1 MiB and more (the default threshold is 32 MiB),
    starting from an empty pool."""
    monkeypatch.setattr(_memory, "POOL_MIN_BYTES", 1 << 20)
    softjit.release_memory()
    yield
    softjit.release_memory()


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def pooled(a: np.ndarray) -> bool:
    """Whether ``a``'s memory is a block of the pool (its chain of bases
    ends at a lease)."""
    while isinstance(a, np.ndarray):
        a = a.base
    return isinstance(a, _memory.Lease)


def test_a_dropped_result_gives_its_memory_to_the_next(small_pool, rng):
    x = rng.standard_normal((512, 1024)).astype(np.float32)
    first = softjit.softmax(x)
    where = address(first)
    assert type(first) is np.ndarray and pooled(first)
    np.testing.assert_allclose(first, ref.softmax(x), rtol=1e-6)
    del first
    assert _memory.pooled_bytes() >= x.nbytes
    second = softjit.log_softmax(x)
    assert address(second) == where
    np.testing.assert_allclose(np.exp(second), ref.softmax(x), rtol=1e-5)
    assert _memory.pooled_bytes() == 0


def test_memory_stays_taken_while_a_view_lives(small_pool, rng):
    x = rng.standard_normal((512, 1024))
    first = softjit.softmax(x)
    row = first[3]  # keeps `first`'s block taken
    kept = row.copy()
    del first
    gc.collect()
    assert _memory.pooled_bytes() == 0
    second = softjit.softmax(x + 1.0)
    assert not np.shares_memory(second, row)
    np.testing.assert_array_equal(row, kept)
    del row
    assert _memory.pooled_bytes() >= x.nbytes


def test_pooled_results_keep_the_input_layout(small_pool, rng):
    x = np.asfortranarray(rng.standard_normal((1024, 512)))
    y = softjit.softmax(x, axis=0)
    assert y.flags.f_contiguous and y.strides == x.strides
    np.testing.assert_allclose(y, ref.softmax(x, axis=0), rtol=1e-12)
    y = softjit.softmax(x.T)
    assert y.flags.c_contiguous
    np.testing.assert_allclose(y, ref.softmax(x.T), rtol=1e-12)


def test_release_memory_frees_the_pool_and_the_pool_is_bounded(small_pool, monkeypatch, rng):
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    softjit.softmax(x)
    assert _memory.pooled_bytes() > 0
    assert softjit.release_memory() > 0
    assert _memory.pooled_bytes() == 0
    monkeypatch.setattr(_memory, "POOL_MAX_BYTES", 5 << 20)
    held = [softjit.softmax(x) for _ in range(4)]  # four blocks of 2 MiB
    del held
    assert 0 < _memory.pooled_bytes() <= 5 << 20


def test_small_results_do_not_use_the_pool(rng):
    softjit.release_memory()
    for shape in [(100, 100), (512, 1024)]:  # the small-call path, the general one
        y = softjit.softmax(rng.standard_normal(shape))
        assert not pooled(y)
    del y
    assert _memory.pooled_bytes() == 0


def test_threads_get_their_own_blocks(small_pool, rng):
    xs = [rng.standard_normal((256, 1024)) + k for k in range(4)]
    want = [ref.softmax(x) for x in xs]
    errors = []

    def work(k):
        for _ in range(20):
            y = softjit.softmax(xs[k])
            if not np.allclose(y, want[k], rtol=1e-12, atol=0):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_starts_with_an_empty_pool(small_pool, rng):
    import os

    x = rng.standard_normal((512, 1024))
    softjit.softmax(x)
    assert _memory.pooled_bytes() > 0
    _memory._lock.acquire()  # as if another thread held it at the fork
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            ok = _memory.pooled_bytes() == 0
            y = softjit.softmax(x)
            ok = ok and bool(np.allclose(y, ref.softmax(x), rtol=1e-12))
            del y
            ok = ok and _memory.pooled_bytes() > 0 and softjit.release_memory() > 0
            os._exit(0 if ok else 1)
    finally:
        _memory._lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_converted_inputs_gradients_and_losses_use_the_pool(small_pool, rng):
    xi = rng.integers(-5, 5, (512, 1024))
    kept = xi.copy()
    y = softjit.softmax(xi)  # computed in a pooled float64 copy of the integers
    assert pooled(y)
    np.testing.assert_allclose(y, ref.softmax(xi.astype(np.float64)), rtol=1e-12)
    np.testing.assert_array_equal(xi, kept)
    g = rng.standard_normal(y.shape)
    vjp = softjit.softmax_vjp(y, g)
    assert pooled(vjp)
    np.testing.assert_allclose(vjp, y * (g - (g * y).sum(-1, keepdims=True)), atol=1e-15)
    x = rng.standard_normal((512, 1024))
    loss, grad = softjit.cross_entropy_with_grad(x, rng.integers(0, 1024, 512))
    assert pooled(grad)
    assert np.isfinite(loss) and np.allclose(grad.sum(-1), 0.0, atol=1e-12)


def test_pooled_results_behave_as_arrays_on_their_own_memory(small_pool, rng):
    import copy
    import pickle

    y = softjit.softmax(rng.standard_normal((512, 1024)))
    y.flags.writeable = False
    y.flags.writeable = True  # (numpy refuses this for arrays on read-only owners)
    y[0, 0] = 0.5
    assert pickle.loads(pickle.dumps(y))[0, 0] == 0.5
    lease = y
    while not isinstance(lease, _memory.Lease):
        lease = lease.base
    for dup in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match="cannot be copied"):
            dup(lease)  # a copy would give the block back while y uses it


def test_a_result_dropped_while_the_pool_is_busy_is_freed(small_pool, rng):
    y = softjit.softmax(rng.standard_normal((512, 1024)))
    with _memory._lock:  # as when the garbage collector runs inside the pool
        del y  # no deadlock: freed as numpy frees, not kept
    assert _memory.pooled_bytes() == 0
