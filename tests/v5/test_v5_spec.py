"""specs/v5.yaml end to end on the CPU, with the deliberately broken candidate (state reset every
token): every measurement runs, every gate kind gives a verdict, the statefulness gates fail and
should_scale says no with its reason (issue 16's acceptance). The full cpu profile (~4 min on two
busy cores) is the same spec with larger toys: `pytest --goni-spec specs/v5.yaml`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SPEC = Path(__file__).resolve().parents[2] / "specs" / "v5.yaml"


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import os
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("v5")
    shutil.copy(SPEC, tmp / "v5.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONI_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--goni-spec", "v5.yaml", "--goni-profile",
                           "cpu-smoke-broken", "--goni-report", "rep", "-q", "-p", "no:randomly", "-p",
                           "no:xdist"], cwd=tmp, capture_output=True, text=True, timeout=900, env=env)
    data = json.loads((tmp / "rep" / "results.json").read_text())
    return {"ret": proc.returncode, "out": proc.stdout, "gates": {g["gate"]: g for g in data["specs"][0]["gates"]},
            "measurements": data["specs"][0]["measurements"], "dir": tmp / "rep"}


def test_every_measurement_runs_and_every_gate_kind_judges(broken_run) -> None:
    assert broken_run["ret"] == 1
    errors = {k: m["error"] for k, m in broken_run["measurements"].items() if m["error"]}
    assert not errors
    kinds = {g["kind"] for g in broken_run["gates"].values()}
    assert {"threshold", "significance", "fit", "grade", "decision"} <= kinds
    skipped = {k for k, g in broken_run["gates"].items() if g["status"] == "SKIP"}
    assert skipped == {"wikitext103-perplexity", "ptb-perplexity", "dailydialog-perplexity", "personachat-perplexity",
                       "gpt2-small-upper-bound"}                    # no GONI_* paths in the test environment
    assert all("GONI_" in broken_run["gates"][k]["reason"] for k in skipped)
    assert all(g["status"] in ("PASS", "FAIL", "INVALID") for k, g in broken_run["gates"].items() if k not in skipped)
    for name in ("matrix.md", "blind_samples.md", "loss.png", "context_retention.png", "scaling.png"):
        assert (broken_run["dir"] / f"v5.cmp.{name}").exists()


def test_broken_candidate_fails_statefulness_and_should_scale_says_why(broken_run) -> None:
    g = broken_run["gates"]
    assert g["state-task-valid"]["status"] == "PASS"          # the task is sound: the model is broken
    for gid in ("state-s2-context", "state-advantage-significant", "state-persistence-turns"):
        assert g[gid]["status"] == "FAIL", (gid, g[gid]["reason"])
    decision = g["should-scale"]
    assert decision["status"] == "FAIL" and decision["display"].startswith("no: State check S2 fails")
    rules = decision["details"]["rules"]
    assert rules[0]["outcome"] == "met" and all(r["outcome"] == "not reached" for r in rules[1:])


def test_fair_protocol_holds_for_the_broken_run_too(broken_run) -> None:
    g = broken_run["gates"]
    for gid in ("same-batch-order", "same-tokenizer", "same-steps-and-schedule", "same-validation-set",
                "match-non-embedding-top"):
        assert g[gid]["status"] == "PASS", (gid, g[gid]["reason"])
    assert "4-way comparison matrix" in broken_run["out"]          # printed in the terminal report
    matrix = (broken_run["dir"] / "v5.cmp.matrix.md").read_text()
    assert "Stateful task accuracy" in matrix and "Ideal outcome" in matrix
    key = next(m for m in broken_run["measurements"]["cmp"]["metrics"].values() if "blind_key" in m["meta"])
    assert len(key["meta"]["blind_key"]) >= 2
