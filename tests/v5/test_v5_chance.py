"""A statefulness comparison where neither model beats chance is not evidence: the chance test over
episodes and seeds, and which metrics it marks INVALID (pytest_goni/v5/chance.py, v5_compare)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_goni.measurements.v5_compare import COMPARED, comparison_invalid, metric_flags
from pytest_goni.v5.chance import beats_chance
from pytest_goni.v5.dialogue import TokenizedItem

ROOT = Path(__file__).resolve().parents[2]


def item(name: str, n: int, choices: int) -> TokenizedItem:
    return TokenizedItem(name, [[1]] * n, [0] * n, [list(range(choices))] * n, [0] * n, [])


# the H200 run's 8M rung: 10 items of 8 choices and one of 2, 100 episodes each, 3 seeds
ITEMS = {**{f"i{k}": item(f"i{k}", 100, 8) for k in range(10)}, "two": item("two", 100, 2)}


def accuracies(per_seed: list[float]) -> dict[str, list[float]]:
    """Every item at the given accuracy per seed, the 2-choice item at its chance plus the same gain."""
    return {k: [a + (0.5 - 0.125 if k == "two" else 0.0) for a in per_seed] for k in ITEMS}


def test_a_model_at_chance_does_not_beat_it_and_a_learned_one_does() -> None:
    at_chance = beats_chance(accuracies([0.125, 0.13, 0.12]), ITEMS)
    assert not at_chance.significant and at_chance.p > 0.3
    learned = beats_chance(accuracies([0.3, 0.32, 0.29]), ITEMS)
    assert learned.significant and learned.p < 1e-6 and learned.seed_rule
    assert learned.n == 3 * 1100 and learned.expected == pytest.approx(3 * (1000 / 8 + 50))


def test_the_h200_scores_are_at_chance_for_both_models() -> None:
    """The committed H200 run (benchmarks/results/v5-2026-12-01-h200): 0.160 / 0.167 against a family
    chance of 0.159 at 8M, 3 seeds x 1,100 episodes. Neither model beats chance at either rung, so
    the comparison gates are INVALID with the reason instead of FAIL (the red line fired on -0.0067)."""
    data = json.loads((ROOT / "benchmarks/results/v5-2026-12-01-h200/results.json").read_text())
    mm = data["specs"][0]["measurements"]["cmp"]["metrics"]
    for rung in ("r3_5M", "r8M"):
        names = [k.split(".")[3] for k in mm if k.startswith(f"{rung}.candidate.state.")]
        items = {n: item(n, 100, round(1 / mm[f"{rung}.task.{n}.chance"]["samples"][0])) for n in names}
        tests = {role: beats_chance({n: mm[f"{rung}.{role}.state.{n}"]["samples"] for n in names}, items)
                 for role in ("candidate", "baseline")}
        assert not any(t.significant for t in tests.values()), {r: t.text() for r, t in tests.items()}
        why = comparison_invalid(tests)
        assert why and why.startswith("neither model beats chance") and "GPT-2" in why
    learned = beats_chance(accuracies([0.3, 0.32, 0.29]), ITEMS)
    assert comparison_invalid({"candidate": tests["candidate"], "baseline": learned}) is None


def test_only_the_compared_metrics_are_marked() -> None:
    why = "neither model beats chance"
    for k in COMPARED:
        assert metric_flags(k, None, why, None, {}) == {"invalid": why}
    # the candidate's own recall against chance stays a measurement of the candidate
    assert metric_flags("state.recall_100", None, why, None, {}) == {}
    assert metric_flags("val_loss", None, why, None, {}) == {}
    assert metric_flags("state.recall_100", "task failed", None, None, {}) == {"invalid": "task failed"}
    assert metric_flags("rolling_bits_per_byte", None, None, "no document spans", {}) == {
        "invalid": "no document spans"}
    assert metric_flags("ptb.word_ppl", None, None, None, {"ptb": "no path"}) == {"skip": "no path"}
