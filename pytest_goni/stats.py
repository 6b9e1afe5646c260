"""Metrics and their summaries: every number a gate reads carries its samples.

A :class:`Metric` is what a measurement returns for each metric key: the raw samples, the unit,
and notes. Gates read a statistic of it (median by default) and optionally require a bootstrap
confidence interval to clear their threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .jsonsafe import json_safe

STATISTICS = ("median", "mean", "min", "max", "p50", "p90", "p99", "std", "iqr", "last", "count")

#: The fewest samples a confidence interval is computed from; fewer makes the verdict INVALID.
MIN_SAMPLES_FOR_INTERVAL = 5


@dataclass
class Metric:
    """Samples of one measured quantity, with unit and evidence.

    ``samples`` may hold one value (a count, a loss) or many (latencies). ``note`` explains a
    value that is not a plain measurement (``"OOM at 65536 tokens"``); ``meta`` carries
    anything a report shows beside it (the SDPA backend actually run, a curve to plot).
    """

    samples: list[float]
    unit: str = ""
    note: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def scalar(cls, value: float, unit: str = "", note: str = "", **meta: Any) -> Metric:
        return cls([float(value)], unit, note, dict(meta))

    @classmethod
    def of(cls, samples: Sequence[float], unit: str = "", note: str = "", **meta: Any) -> Metric:
        return cls([float(s) for s in samples], unit, note, dict(meta))

    def value(self, stat: str = "median") -> float:
        return summarize(self.samples, stat)

    def interval(self, confidence: float = 0.95, stat: str = "median") -> tuple[float, float]:
        return bootstrap_ci(self.samples, stat, confidence)

    def summary(self) -> dict[str, float]:
        return describe(self.samples)

    def to_json(self) -> dict[str, Any]:
        """Every sample and the summary, as standard JSON (non-finite floats as text)."""
        return json_safe({"unit": self.unit, "samples": self.samples, "summary": self.summary(),
                          "note": self.note, "meta": self.meta})


def summarize(samples: Sequence[float], stat: str = "median") -> float:
    """One statistic of the samples; NaN for an empty sample."""
    if stat not in STATISTICS:
        raise ValueError(f"unknown statistic {stat!r}; known: {', '.join(STATISTICS)}")
    a = np.asarray(samples, dtype=np.float64)
    if stat == "count":
        return float(a.size)
    if a.size == 0:
        return math.nan
    if stat == "last":
        return float(a[-1])
    if stat in ("median", "p50"):
        return float(np.median(a))
    if stat == "mean":
        return float(a.mean())
    if stat == "min":
        return float(a.min())
    if stat == "max":
        return float(a.max())
    if stat == "p90":
        return float(np.percentile(a, 90))
    if stat == "p99":
        return float(np.percentile(a, 99))
    if stat == "std":
        return float(a.std(ddof=1)) if a.size > 1 else 0.0
    q75, q25 = np.percentile(a, [75, 25])
    return float(q75 - q25)


def describe(samples: Sequence[float]) -> dict[str, float]:
    """The summary every report shows: count, median, mean, spread and tails."""
    out = {s: summarize(samples, s) for s in ("count", "median", "mean", "min", "max", "p90", "p99", "iqr")}
    out["std"] = summarize(samples, "std")
    return out


def bootstrap_ci(samples: Sequence[float], stat: str = "median", confidence: float = 0.95,
                 n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of a statistic; (nan, nan) when samples are too few."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size < MIN_SAMPLES_FOR_INTERVAL or not np.isfinite(a).all():
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    boots = np.array([summarize(row, stat) for row in a[idx]])
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def ratio_samples(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """Per-pair ratios of two interleaved sample lists (same length: pair i ran back to back)."""
    n = min(len(num), len(den))
    return [num[i] / den[i] if den[i] != 0 else math.nan for i in range(n)]


def welch_t(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value for mean(a) != mean(b)."""
    from scipy import stats as sst

    res = sst.ttest_ind(np.asarray(a, float), np.asarray(b, float), equal_var=False)
    return float(res.statistic), float(res.pvalue)


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of y = a * x**b in log space; returns (a, b)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    b, log_a = np.polyfit(lx, ly, 1)
    return float(math.exp(log_a)), float(b)


def crossover(x: Sequence[float], y_candidate: Sequence[float], y_baseline: Sequence[float]) -> float:
    """Smallest x where the candidate becomes at least as fast as the baseline (log-log
    interpolation between the bracketing points); NaN when it never does in range."""
    xs = np.asarray(x, float)
    d = np.log(np.asarray(y_candidate, float)) - np.log(np.asarray(y_baseline, float))
    if d[0] <= 0:
        return float(xs[0])
    for i in range(1, len(xs)):
        if d[i] <= 0:
            lx0, lx1 = math.log(xs[i - 1]), math.log(xs[i])
            t = d[i - 1] / (d[i - 1] - d[i])
            return float(math.exp(lx0 + t * (lx1 - lx0)))
    return math.nan
