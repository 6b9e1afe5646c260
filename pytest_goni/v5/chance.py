"""Does a model beat chance on the statefulness family? A comparison of two models that both sit at
chance is not evidence: whichever scores higher does so by the draw of the episodes.

Under the null hypothesis a model answers episode e correctly with its chance probability
p_e = 1 / (number of choices): its hits over all episodes of all items and seeds are a sum of
independent Bernoulli(p_e), mean sum p_e and variance sum p_e (1 - p_e). The test is one-sided
(above chance) with the normal approximation to that Poisson-binomial sum (hundreds of episodes on
every profile). The seed's own rule (v5-gpt2-gates.md lines 363-366: significant if
|mean1 - mean2| > 2 sqrt(s1^2 + s2^2) over repeated runs) is reported beside it, with chance a
constant (no spread); it sees only the spread over seeds, not the finite number of episodes, so it
does not decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pytest_goni.v5.dialogue import TokenizedItem


@dataclass
class ChanceTest:
    """Hits against what chance gives over ``n`` scored answers (episodes x seeds)."""

    hits: int
    expected: float
    sd: float
    n: int
    seed_rule: bool   # the seed's two-sigma rule over seeds, chance as a constant
    alpha: float = 0.05

    @property
    def z(self) -> float:
        over = self.hits - self.expected
        return over / self.sd if self.sd > 0 else (math.copysign(math.inf, over) if over else 0.0)

    @property
    def p(self) -> float:
        """One-sided p-value of scoring this far above chance by luck."""
        return 0.5 * math.erfc(self.z / math.sqrt(2))

    @property
    def significant(self) -> bool:
        return self.p < self.alpha

    def text(self) -> str:
        return (f"{self.hits} of {self.n} answers vs {self.expected:.1f} by chance (z {self.z:.2f}, one-sided "
                f"p {self.p:.3g})")


def beats_chance(accuracy: Mapping[str, Sequence[float]], items: Mapping[str, TokenizedItem],
                 alpha: float = 0.05) -> ChanceTest:
    """Pool a model's answers over items and seeds (``accuracy[item]``: one accuracy per seed) and
    test them against each episode's chance."""
    hits, expected, var, n = 0, 0.0, 0.0, 0
    per_seed: list[float] = []
    chance_score = float(np.mean([items[k].chance for k in accuracy]))
    seeds = {len(v) for v in accuracy.values()}
    if len(seeds) != 1:
        raise ValueError(f"every item needs one accuracy per seed, got counts {sorted(seeds)}")
    for s in range(seeds.pop()):
        per_seed.append(float(np.mean([accuracy[k][s] for k in accuracy])))
        for name, accs in accuracy.items():
            p = np.array([1.0 / len(c) for c in items[name].choice_ids])
            hits += int(round(accs[s] * p.size))
            expected += float(p.sum())
            var += float((p * (1 - p)).sum())
            n += p.size
    spread = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0
    seed_rule = float(np.mean(per_seed)) - chance_score > 2 * spread
    return ChanceTest(hits, expected, math.sqrt(var), n, seed_rule, alpha)
