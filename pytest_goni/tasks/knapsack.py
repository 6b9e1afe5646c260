"""0/1 knapsack as a token sequence (the seed's "compositional DP reasoning",
architecture-comparison.md lines 88-96), with the generator's answer from an exact DP.

Instances follow Tropical Attention (Hashemi et al., NeurIPS 2025, ``KnapsackDataset``): 8 items,
values and weights uniform in 1-10, capacity uniform in 10-20. That work feeds continuous item
vectors to a classifier; a language model needs tokens, so an instance is written as

    CAP c  ITEM v1 w1  ITEM v2 w2 ... ITEM vn wn  ANS  opt

with one token per number (ids 0..N, markers after them). One token per number keeps the task on
the DP's max and + over item values instead of on digit arithmetic; the scored answer is the
optimal value (unique), not the chosen-item mask (ties make masks non-unique, so a mask label
would penalise correct solutions). The label sits on ``ANS``; ``opt`` follows it in the input so
the sequence reads as text. Length generalisation doubles the item count (same value, weight and
capacity ranges); the vocabulary covers the largest optimum the longest set can reach. The public
repository's version scored up to ~1,400 answer classes and let its query marker collide with
answer tokens (REFERENCES.md section 2); here markers are outside the number range.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from typing import Any

import numpy as np

from .base import IGNORE_INDEX, Task, TaskData, TaskError


def knapsack_dp(values: np.ndarray, weights: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Exact optimum per row: best[c] over capacities 0..max, one item at a time (rows at once)."""
    n, m = values.shape
    cmax = int(capacity.max())
    best = np.zeros((n, cmax + 1), dtype=np.int64)
    cols = np.arange(cmax + 1)[None, :]
    for j in range(m):
        src = cols - weights[:, j:j + 1]
        take = np.where(src >= 0, np.take_along_axis(best, np.clip(src, 0, cmax), axis=1) + values[:, j:j + 1],
                        -1)
        best = np.maximum(best, take)
    return best[np.arange(n), capacity]


def knapsack_brute(values: np.ndarray, weights: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Exact optimum by enumerating every subset (independent of the DP; for small item counts)."""
    m = values.shape[1]
    masks = np.array(list(product((0, 1), repeat=m)), dtype=np.int64)     # [2^m, m]
    tot_v = values @ masks.T
    tot_w = weights @ masks.T
    return np.where(tot_w <= capacity[:, None], tot_v, 0).max(axis=1)


class Knapsack(Task):
    name = "knapsack"

    def __init__(self, n_items: int = 8, value_range: tuple[int, int] = (1, 10),
                 weight_range: tuple[int, int] = (1, 10), capacity_range: tuple[int, int] = (10, 20),
                 max_length_factor: int = 1) -> None:
        for key, (lo, hi) in (("value_range", value_range), ("weight_range", weight_range),
                              ("capacity_range", capacity_range)):
            if not 0 <= lo <= hi:
                raise TaskError(f"task_params.{key}: must be [low, high] with 0 <= low <= high, got {[lo, hi]}")
        if weight_range[0] < 1:
            raise TaskError("task_params.weight_range: weights must be >= 1")
        if n_items < 1:
            raise TaskError(f"task_params.n_items: must be >= 1, got {n_items}")
        self.n, self.vr, self.wr, self.cr = n_items, value_range, weight_range, capacity_range
        self.max_length_factor = max_length_factor
        most = min(n_items * max_length_factor, capacity_range[1] // weight_range[0])
        self.N = max(capacity_range[1], value_range[1], weight_range[1], most * value_range[1])
        self.CAP, self.ITEM, self.ANS = self.N + 1, self.N + 2, self.N + 3

    @classmethod
    def from_params(cls, p: dict[str, Any], factor: int, as_int: Callable[..., int]) -> Knapsack:
        known = {"n_items", "value_range", "weight_range", "capacity_range"}
        extra = sorted(set(p) - known)
        if extra:
            raise TaskError(f"task_params: unknown key {extra[0]!r} for knapsack; allowed: {', '.join(sorted(known))}")

        def pair(key: str, default: tuple[int, int]) -> tuple[int, int]:
            v = p.get(key, list(default))
            if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                 for x in v)):
                raise TaskError(f"task_params.{key}: must be [low, high] whole numbers, got {v!r}")
            return int(v[0]), int(v[1])

        return cls(as_int(p, "n_items", 8), pair("value_range", (1, 10)), pair("weight_range", (1, 10)),
                   pair("capacity_range", (10, 20)), factor)

    def vocab_size(self) -> int:
        return self.N + 4

    def seq_len(self, length_factor: int = 1) -> int:
        return 3 * self.n * length_factor + 4

    def describe(self) -> str:
        return (f"knapsack (tokens) {self.n} items, values {self.vr[0]}-{self.vr[1]}, weights "
                f"{self.wr[0]}-{self.wr[1]}, capacity {self.cr[0]}-{self.cr[1]}")

    def generate(self, n: int, rng: np.random.Generator, length_factor: int = 1) -> TaskData:
        m = self.n * length_factor
        values = rng.integers(self.vr[0], self.vr[1] + 1, size=(n, m))
        weights = rng.integers(self.wr[0], self.wr[1] + 1, size=(n, m))
        cap = rng.integers(self.cr[0], self.cr[1] + 1, size=n)
        opt = knapsack_dp(values, weights, cap)
        T = self.seq_len(length_factor)
        inputs = np.empty((n, T), dtype=np.int64)
        inputs[:, 0], inputs[:, 1] = self.CAP, cap
        inputs[:, 2:2 + 3 * m:3] = self.ITEM
        inputs[:, 3:3 + 3 * m:3] = values
        inputs[:, 4:4 + 3 * m:3] = weights
        inputs[:, T - 2], inputs[:, T - 1] = self.ANS, opt
        targets = np.full((n, T), IGNORE_INDEX, dtype=np.int64)
        targets[:, T - 2] = opt
        return TaskData(inputs, targets, targets.copy())

    def oracle(self, inputs: np.ndarray) -> np.ndarray:
        """Parse capacity and items from the tokens before ``ANS``; solve exactly (every subset up to
        12 items, independent of the generator's DP; the DP beyond)."""
        pred = np.full(inputs.shape, -1, dtype=np.int64)
        ans = np.argmax(inputs == self.ANS, axis=1)
        m = (int(ans[0]) - 2) // 3
        cap = inputs[:, 1]
        values = inputs[:, 3:3 + 3 * m:3]
        weights = inputs[:, 4:4 + 3 * m:3]
        solve = knapsack_brute if m <= 12 else knapsack_dp
        pred[np.arange(len(inputs)), ans] = solve(values, weights, cap)
        return pred

    def triggers(self, inputs: np.ndarray) -> np.ndarray:
        return inputs == self.ANS
