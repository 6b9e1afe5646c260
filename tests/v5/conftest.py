"""Fixtures for the V5 tests: a pytester project with a measurement kind that returns given
samples (one per seed), so gate kinds are judged on known numbers."""

import pytest


def run_spec(p: pytest.Pytester, text: str, *args: str) -> pytest.RunResult:
    import textwrap

    p.path.joinpath("s.yaml").write_text(textwrap.dedent(text))
    return p.runpytest("--goni-spec", "s.yaml", "--goni-profile", "cpu", "--goni-report", "rep", "-p",
                       "no:randomly", *args)


def results(p: pytest.Pytester) -> dict:
    import json

    data = json.loads(next(p.path.joinpath("rep").glob("*.json")).read_text())
    return data
