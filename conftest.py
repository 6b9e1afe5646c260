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


@pytest.fixture
def one_torch_thread():
    """Tiny models: one intra-op thread is as fast and does not fight the other xdist worker."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# A measurement kind that returns the samples (and invalid / skip flags) a spec gives it, so gate
# kinds are judged on known numbers (V5 and archcomp tests).
GIVEN_CONFTEST = '''
from pytest_goni.stats import Metric

def pytest_goni_register(registries):
    @registries.measurement_kind(
        "given",
        schema={"type": "object", "additionalProperties": False,
                "properties": {"samples": {"type": "object"}, "invalid": {"type": "object"},
                               "skip": {"type": "object"}}},
        metrics=lambda p: {k: "" for k in p["samples"]},
    )
    def given(ctx, params):
        out = {}
        for key, vals in params["samples"].items():
            vals = vals if isinstance(vals, list) else [vals]
            out[key] = Metric.of(vals, "")
            if key in params.get("invalid", {}):
                out[key].meta["invalid"] = params["invalid"][key]
            if key in params.get("skip", {}):
                out[key].meta["skip"] = params["skip"][key]
        return out
'''


@pytest.fixture
def given(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project whose ``given`` kind returns the samples it is given."""
    pytester.makeconftest(GIVEN_CONFTEST)
    return pytester
