"""Fixtures for the architecture-comparison tests: a pytester project that runs spec text."""

from __future__ import annotations

import json
import textwrap

import pytest


def run_spec(p: pytest.Pytester, text: str, *args: str, subprocess: bool = False) -> pytest.RunResult:
    """Run the spec text; ``subprocess`` for runs that train models (torch and triton bindings do not
    survive pytester's in-process module reloads)."""
    p.path.joinpath("s.yaml").write_text(textwrap.dedent(text))
    run = p.runpytest_subprocess if subprocess else p.runpytest
    return run("--goni-spec", "s.yaml", "--goni-profile", "cpu", "--goni-report", "rep", "-p",
                       "no:randomly", *args)


def gates(p: pytest.Pytester) -> dict[str, dict]:
    data = json.loads(next(p.path.joinpath("rep").glob("*.json")).read_text())
    return {g["gate"]: g for g in data["specs"][0]["gates"]}
