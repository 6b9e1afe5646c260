"""Fixtures for the V5 tests: a pytester project with a measurement kind that returns given
samples (one per seed), so gate kinds are judged on known numbers."""

import pytest

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
    pytester.makeconftest(GIVEN_CONFTEST)
    return pytester


def run_spec(p: pytest.Pytester, text: str, *args: str) -> pytest.RunResult:
    import textwrap

    p.path.joinpath("s.yaml").write_text(textwrap.dedent(text))
    return p.runpytest("--goni-spec", "s.yaml", "--goni-profile", "cpu", "--goni-report", "rep", "-p",
                       "no:randomly", *args)


def results(p: pytest.Pytester) -> dict:
    import json

    data = json.loads(next(p.path.joinpath("rep").glob("*.json")).read_text())
    return data
