"""Model tests run tiny models: one intra-op thread is as fast and does not fight other workers."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield
