"""Repo-level fixtures for the project's own tests.

Triton reads TRITON_INTERPRET when a kernel is decorated, so it is set here, before any test
module imports a kernel: without a CUDA device, Triton kernels run in its CPU interpreter.
"""

import os

try:
    import torch

    _HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover - torch is a dependency
    _HAS_CUDA = False

if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import scipy.optimize  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401

pytest_plugins = ["pytester"]
# scipy is imported above, in this process, so that it is never first imported inside an
# in-process pytester run: that run's module snapshot would drop numpy's C extensions with it,
# and their re-import fails ("cannot load module more than once per process").


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, with a reason, where no CUDA device is present."""
    if _HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none present); run on the lent GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
