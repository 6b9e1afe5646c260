"""Kendall ranking against expected tiers and the Pareto front."""

import math

from pytest_goni.tasks.ranking import kendall_ranking, pareto_front


def test_expected_order_gives_tau_one_and_no_pairs():
    tau, pairs = kendall_ranking([["rope"], ["gla"], ["lstm"]], {"rope": 0.9, "gla": 0.5, "lstm": 0.1})
    assert tau == 1.0 and pairs == []


def test_disagreeing_pairs_are_named():
    tau, pairs = kendall_ranking([["rope", "retnet"], ["lstm"]], {"rope": 0.2, "retnet": 0.9, "lstm": 0.5})
    assert pairs == ["lstm (tier 2) 0.500 > rope (tier 1) 0.200"]
    assert -1 < tau < 1


def test_models_outside_the_ranking_or_unmeasured_are_left_out():
    tau, pairs = kendall_ranking([["a"], ["b"]], {"a": 0.1, "b": math.nan, "c": 1.0})
    assert math.isnan(tau) and pairs == []


def test_pareto_front():
    pts = {"fast": (0.5, 1.0), "slow_good": (0.9, 10.0), "dominated": (0.4, 5.0), "tie": (0.9, 12.0)}
    assert pareto_front(pts) == ["fast", "slow_good"]
