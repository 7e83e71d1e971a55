import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


def pytest_collection_modifyitems(items):
    """The longest test file first, so that under pytest-xdist it runs
    beside the others instead of after them."""
    items.sort(key=lambda item: item.path.name != "test_warm.py")
