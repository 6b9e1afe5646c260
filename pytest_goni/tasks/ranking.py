"""Measured order against an expected one, and the accuracy / cost Pareto front."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def kendall_ranking(tiers: Sequence[Sequence[str]], measured: Mapping[str, float]) -> tuple[float, list[str]]:
    """Kendall's tau-b (scipy) between expected tiers (best first; models in one tier tie) and the
    measured values (higher is better), over the models that have both; and the pairs that
    disagree, named: ``"lstm (tier 4) 0.91 > rope (tier 1) 0.40"``."""
    from scipy.stats import kendalltau

    tier = {m: i for i, group in enumerate(tiers) for m in group}
    names = [m for m in tier if m in measured and math.isfinite(measured[m])]
    if len(names) < 2:
        return math.nan, []
    res = kendalltau([-tier[m] for m in names], [measured[m] for m in names])
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if tier[a] == tier[b]:
                continue
            hi, lo = (a, b) if tier[a] < tier[b] else (b, a)   # hi is expected to be better
            if measured[hi] < measured[lo]:
                pairs.append(f"{lo} (tier {tier[lo] + 1}) {measured[lo]:.3f} > {hi} (tier {tier[hi] + 1}) "
                             f"{measured[hi]:.3f}")
    tau = float(res.statistic) if res.statistic == res.statistic else math.nan
    return tau, pairs


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Names not dominated in (accuracy: higher better, cost: lower better), cheapest first."""
    front = []
    for m, (acc, cost) in points.items():
        dominated = any(a >= acc and c <= cost and (a > acc or c < cost)
                        for n, (a, c) in points.items() if n != m)
        if not dominated:
            front.append(m)
    return sorted(front, key=lambda m: points[m][1])
