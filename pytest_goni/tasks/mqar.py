"""Multi-query associative recall as Zoology defines it (Arora et al. 2023;
HazyResearch/zoology ``zoology/data/multiquery_ar.py``, ../shared/REFERENCES.md section 2).

A sequence of length T opens with ``num_kv_pairs`` key-value pairs: keys drawn without replacement
from [1, V/2), values without replacement from [V/2, V). The rest of the sequence holds each key
once more as a query, at position ``2 kv + 2 g`` where the gaps g are drawn without replacement from
{0 .. (T - 2 kv)/2 - 1} with p(g) proportional to a (g+1)^(a-1) (a = ``power_a`` = 0.01: queries
crowd near the context; a = 1 is uniform). The label sits on the query key itself (the model must
emit the value next) and is IGNORE_INDEX everywhere else; the token after a query is filler like
every other non-query position (0, or a random token when ``random_non_queries``, Zoology's
default). Zoology's asserts are kept: T even, V > T, 4 kv <= T (one pass), and the seed's warning
(architecture-comparison.md lines 142-144, "ensure vocab_size > num_kv_pairs") as the stricter
"V/2 - 1 >= kv" that unique keys need.

Where the earlier ``recall`` kind was not faithful (it is the start of this module): values were
drawn with replacement (not unique), queries were placed uniformly (no power law), the value was
also written after each query key, and filler was always 0.

Sampling without replacement with weights uses the Gumbel top-k trick (the same distribution as
numpy's sequential ``choice(replace=False, p=...)``), so 100,000 examples take a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .base import IGNORE_INDEX, Task, TaskData, TaskError


def unique_rows(rng: np.random.Generator, n: int, lo: int, hi: int, k: int) -> np.ndarray:
    """[n, k] integers from [lo, hi), distinct within each row, uniformly over k-subsets in random
    order (redraws the rows that repeat a value; sorts random keys when k is a large share)."""
    span = hi - lo
    if k * k > span:  # dense: take the first k of a random permutation per row
        return np.argsort(rng.random((n, span)), axis=1)[:, :k] + lo
    out = rng.integers(lo, hi, size=(n, k))
    while True:
        s = np.sort(out, axis=1)
        bad = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))
        if bad.size == 0:
            return out
        out[bad] = rng.integers(lo, hi, size=(bad.size, k))


def power_law_gaps(rng: np.random.Generator, n: int, space: int, k: int, power_a: float) -> np.ndarray:
    """[n, k] distinct gap indices in [0, space), drawn without replacement with p(g) proportional
    to a (g+1)^(a-1) (Gumbel top-k: the order of the draws is the order of the keys)."""
    p = power_a * np.arange(1, space + 1, dtype=np.float64) ** (power_a - 1)
    logp = np.log(p / p.sum())
    keys = logp[None, :] - np.log(-np.log(rng.random((n, space))))
    return np.argsort(-keys, axis=1)[:, :k]


class MQAR(Task):
    name = "mqar"

    def __init__(self, vocab_size: int, seq_len: int, num_kv_pairs: int, power_a: float = 0.01,
                 random_non_queries: bool = True, max_length_factor: int = 1) -> None:
        self.V, self.T, self.kv = vocab_size, seq_len, num_kv_pairs
        self.power_a, self.random_non_queries = power_a, random_non_queries
        self.max_length_factor = max_length_factor
        self._validate()

    @classmethod
    def from_params(cls, p: dict[str, Any], factor: int, as_int: Callable[..., int]) -> MQAR:
        known = {"vocab_size", "seq_len", "num_kv_pairs", "power_a", "random_non_queries"}
        extra = sorted(set(p) - known)
        if extra:
            raise TaskError(f"task_params: unknown key {extra[0]!r} for mqar; allowed: {', '.join(sorted(known))}")
        a = p.get("power_a", 0.01)
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a <= 1:
            raise TaskError(f"task_params.power_a: must lie in (0, 1] (Zoology: 0.01), got {a!r}")
        return cls(as_int(p, "vocab_size", 8192), as_int(p, "seq_len", 64), as_int(p, "num_kv_pairs", 4),
                   float(a), bool(p.get("random_non_queries", True)), factor)

    def _validate(self) -> None:
        V, T, kv = self.V, self.T, self.kv
        if kv < 1:
            raise TaskError(f"task_params.num_kv_pairs: must be >= 1, got {kv}")
        if T % 2:
            raise TaskError(f"task_params.seq_len: must be even (Zoology), got {T}")
        if 4 * kv > T:
            raise TaskError(f"task_params.seq_len: {T} is too short for {kv} pairs and their queries "
                            f"(Zoology: 4 x num_kv_pairs <= seq_len, i.e. >= {4 * kv})")
        if V // 2 - 1 < kv:
            raise TaskError(f"task_params.vocab_size: {V} gives {V // 2 - 1} distinct keys for {kv} pairs "
                            f"(architecture-comparison.md line 144: vocab_size must exceed the pairs; "
                            f"unique keys need vocab_size >= {2 * kv + 2})")
        if V <= T:
            raise TaskError(f"task_params.vocab_size: {V} must exceed seq_len {T} (Zoology's assert)")

    def vocab_size(self) -> int:
        return self.V

    def seq_len(self, length_factor: int = 1) -> int:
        return self.T * length_factor

    def describe(self) -> str:
        return (f"MQAR (Zoology) V={self.V} T={self.T} kv={self.kv} power_a={self.power_a:g} "
                f"random_non_queries={self.random_non_queries}")

    def generate(self, n: int, rng: np.random.Generator, length_factor: int = 1) -> TaskData:
        V, kv, T = self.V, self.kv, self.seq_len(length_factor)
        half, ctx = V // 2, 2 * kv
        keys = unique_rows(rng, n, 1, half, kv)
        values = unique_rows(rng, n, half, V, kv)
        gaps = power_law_gaps(rng, n, (T - ctx) // 2, kv, self.power_a)
        inputs = np.zeros((n, T), dtype=np.int64)
        targets = np.full((n, T), IGNORE_INDEX, dtype=np.int64)
        inputs[:, 0:ctx:2], inputs[:, 1:ctx:2] = keys, values
        rows = np.arange(n)[:, None]
        qpos = ctx + 2 * gaps                      # key i is queried at its own gap
        inputs[rows, qpos] = keys
        targets[rows, qpos] = values               # the label: the value, predicted at the query key
        if self.random_non_queries:
            filler = inputs == 0
            inputs[filler] = rng.integers(0, V, size=int(filler.sum()))
        return TaskData(inputs, targets, targets.copy())

    def oracle(self, inputs: np.ndarray) -> np.ndarray:
        """At each position after the context, the value bound to the token if it is a context key."""
        ctx = 2 * self.kv
        keys, values = inputs[:, 0:ctx:2], inputs[:, 1:ctx:2]
        pred = np.full(inputs.shape, -1, dtype=np.int64)
        body = inputs[:, ctx:]
        match = body[:, :, None] == keys[:, None, :]          # [n, T-ctx, kv]
        hit = match.any(axis=2)
        which = match.argmax(axis=2)
        vals = np.take_along_axis(values, which.reshape(len(inputs), -1), axis=1).reshape(body.shape)
        pred[:, ctx:] = np.where(hit, vals, -1)
        return pred

    def triggers(self, inputs: np.ndarray) -> np.ndarray:
        """Positions after the context holding one of the context's keys (a query, or filler that
        happens to repeat a key: scored positions must be among these)."""
        ctx = 2 * self.kv
        out = np.zeros(inputs.shape, dtype=bool)
        keys = inputs[:, 0:ctx:2]
        out[:, ctx:] = (inputs[:, ctx:, None] == keys[:, None, :]).any(axis=2)
        return out

    def eval_sets(self) -> dict[str, tuple[Task, int]]:
        return {}
