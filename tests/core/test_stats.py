"""Summaries, intervals and fits that every verdict rests on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_goni import stats
from pytest_goni.stats import Metric


@pytest.mark.parametrize(("stat", "expected"), [
    ("median", 3.0), ("mean", 4.0), ("min", 1.0), ("max", 10.0), ("p50", 3.0), ("count", 5.0),
    ("last", 10.0), ("iqr", 4.0 - 2.0),
])
def test_summaries_of_a_known_sample(stat: str, expected: float) -> None:
    assert stats.summarize([1, 2, 3, 4, 10], stat) == pytest.approx(expected)


def test_percentiles_follow_numpy() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=101)
    assert stats.summarize(a, "p90") == pytest.approx(np.percentile(a, 90))
    assert stats.summarize(a, "p99") == pytest.approx(np.percentile(a, 99))


def test_empty_samples_summarize_to_nan_and_unknown_statistic_is_refused() -> None:
    assert math.isnan(stats.summarize([], "median"))
    with pytest.raises(ValueError, match="unknown statistic 'p95'"):
        stats.summarize([1.0], "p95")


def test_bootstrap_interval_covers_the_true_median_most_of_the_time() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    for trial in range(60):
        sample = rng.exponential(size=40)
        lo, hi = stats.bootstrap_ci(sample, "median", 0.95, n_boot=400, seed=trial)
        hits += lo <= math.log(2) <= hi
    assert hits >= 50  # nominal 95%; percentile bootstrap of a median runs a little under


def test_too_few_samples_give_no_interval() -> None:
    lo, hi = stats.bootstrap_ci([1.0, 2.0, 3.0], "median")
    assert math.isnan(lo) and math.isnan(hi)


def test_ratio_samples_pair_interleaved_rounds() -> None:
    assert stats.ratio_samples([2.0, 4.0, 9.0], [1.0, 2.0]) == [2.0, 2.0]
    assert math.isnan(stats.ratio_samples([1.0], [0.0])[0])


def test_power_law_fit_recovers_exponent() -> None:
    x = np.array([256, 512, 1024, 2048, 4096], float)
    a, b = stats.fit_power_law(x, 3e-6 * x ** 1.7)
    assert b == pytest.approx(1.7) and a == pytest.approx(3e-6)


def test_crossover_interpolates_in_log_space() -> None:
    x = [1024, 2048, 4096]
    baseline = [1.0, 2.0, 4.0]
    candidate = [2.0, 2.0, 2.0]  # equal at 2048 exactly
    assert stats.crossover(x, candidate, baseline) == pytest.approx(2048)
    cross = stats.crossover(x, [4.0, 4.0, 2.0], baseline)  # log-gap 2 -> 1 -> -1: crosses between 2048 and 4096
    assert 2048 < cross < 4096


def test_no_crossover_in_range_is_nan_and_already_faster_is_the_first_point() -> None:
    assert math.isnan(stats.crossover([1, 2, 4], [5, 6, 7], [1, 2, 3]))
    assert stats.crossover([1, 2, 4], [0.5, 1, 2], [1, 2, 3]) == 1


def test_welch_matches_a_clear_difference() -> None:
    rng = np.random.default_rng(3)
    t, p = stats.welch_t(rng.normal(0, 1, 50), rng.normal(1, 1, 50))
    assert t < 0 and p < 1e-3


def test_metric_json_keeps_every_sample_and_writes_nan_as_text() -> None:
    m = Metric.of([1.0, float("nan"), 3.0], "s", note="one sample lost")
    data = m.to_json()
    assert data["samples"] == [1.0, "nan", 3.0]
    assert data["unit"] == "s" and data["note"] == "one sample lost"
    assert Metric.scalar(5, "B").value() == 5.0
