"""Repo-level fixtures for the project's own tests.

Triton reads TRITON_INTERPRET when a kernel is decorated, so it is set here, in pytest_configure,
before any test module imports a kernel: without a CUDA device, Triton kernels run in its CPU
interpreter. A run of spec files only (``pytest --goni-spec specs/x.yaml`` from the repository,
as the device scripts do) imports neither torch nor scipy here: the plugin imports what its
measurements need, and each xdist worker and the controller start faster.
"""

import os

import pytest

pytest_plugins = ["pytester"]

_HAS_CUDA = False
_TESTS = False  # this session collects the project's tests (set in pytest_configure)


def _runs_tests(config: pytest.Config) -> bool:
    """Whether this session collects the project's tests, not only spec files."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:  # testpaths: tests/, unless specs were asked for
        return not (config.getoption("goni_spec", None) or config.getini("goni_specs"))
    return any(not str(a).split("::", 1)[0].endswith((".yaml", ".yml")) for a in config.args)


def pytest_configure(config: pytest.Config) -> None:
    global _HAS_CUDA, _TESTS
    _TESTS = _runs_tests(config)
    if not _TESTS:
        return
    try:
        import torch

        _HAS_CUDA = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        _HAS_CUDA = False
    if not _HAS_CUDA:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    # scipy is imported here, in this process, so that it is never first imported inside an
    # in-process pytester run: that run's module snapshot would drop numpy's C extensions with it,
    # and their re-import fails ("cannot load module more than once per process").
    import scipy.optimize  # noqa: F401
    import scipy.stats  # noqa: F401


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, with a reason, where no CUDA device is present (a spec's gates
    marked ``gpu`` are the plugin's to skip)."""
    if _HAS_CUDA or not _TESTS:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none present); run on the lent GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None and item.get_closest_marker("goni") is None:
            item.add_marker(skip)


@pytest.fixture
def one_torch_thread():
    """Tiny models: one intra-op thread is as fast and does not fight the other xdist worker."""
    import torch

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
