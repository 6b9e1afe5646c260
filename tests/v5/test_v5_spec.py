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
    for name in ("matrix.md", "blind_samples.md", "training-loss-per-step.png",
                 "loss-vs-position-and-recall-vs-turns.png", "validation-loss-vs-parameters.png"):
        assert (broken_run["dir"] / f"v5.cmp.{name}").exists()


def test_broken_candidate_fails_statefulness_and_should_scale_says_why(broken_run) -> None:
    g = broken_run["gates"]
    assert g["state-task-valid"]["status"] == "PASS"          # the task is sound: the model is broken
    assert g["state-s2-context"]["status"] == "FAIL", g["state-s2-context"]["reason"]  # needs no learning
    # the comparisons: FAIL when a model beats chance, INVALID with the reason when neither does
    comparable = broken_run["measurements"]["cmp"]["metrics"]["large.state_comparable"]["samples"][0]  # top rung
    for gid in ("state-advantage-significant", "state-persistence-turns", "state-ratio",
                "red-statefulness-below-gpt2"):
        if comparable:
            assert g[gid]["status"] in ("PASS", "FAIL"), (gid, g[gid]["reason"])
        else:
            assert g[gid]["status"] == "INVALID" and "neither model beats chance" in g[gid]["reason"], gid
    assert g["state-advantage-significant"]["status"] != "PASS"
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


def test_state_checks_read_the_trained_candidate_and_rolling_spans_windows(broken_run) -> None:
    """S0-S4 come from v5_compare's trained candidates (one sample per seed; the state resumed in a
    fresh process on the first); the untrained reading stays an info value and differs from them.
    The perplexity documents span more than one window, so the rolling gate is judged, not INVALID."""
    cmp = broken_run["measurements"]["cmp"]["metrics"]
    seeds = len(cmp["large.candidate.val_loss"]["samples"])
    assert len(cmp["large.candidate.s_checks.s2_context_diff"]["samples"]) == seeds
    assert cmp["large.candidate.s_checks.s2_context_diff"]["samples"] == [0.0] * seeds   # reset every token
    assert len(cmp["large.candidate.s_checks.persistence_max_diff"]["samples"]) == 1
    untrained = broken_run["measurements"]["state"]["metrics"]["candidate.s1_norm_max"]["samples"][0]
    assert untrained not in cmp["large.candidate.s_checks.s1_norm_max"]["samples"]
    g = broken_run["gates"]
    assert g["state-s1-norm-high-untrained"]["severity"] == "info"
    assert cmp["large.ppl_multiwindow_docs"]["samples"][0] >= 1
    assert g["rolling-state-helps-candidate"]["status"] in ("PASS", "FAIL")
