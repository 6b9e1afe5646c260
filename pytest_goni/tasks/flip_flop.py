"""Flip-flop language modelling as Liu et al. 2023 define it ("Exposing Attention Glitches with
Flip-Flop Language Modeling", arXiv:2306.00946; HF dataset card ``synthseq/flipflop``).

Vocabulary {w: 0, r: 1, i: 2, "0": 3, "1": 4}. A sequence of T tokens is T/2 instructions, each an
op followed by a bit: ``w b`` writes b, ``i b`` is noise to ignore, ``r b`` reads, and its bit must
equal the most recently written one. The first instruction is a write and the last a read; the
others are drawn i.i.d. with p(i) = ``p_ignore`` and p(w) = p(r) = (1 - p_ignore)/2; written and
ignored bits are uniform. FFL(0.8) is the training distribution; the paper evaluates on it and on
the sparse FFL(0.98) and dense FFL(0.1) sets, which :meth:`FlipFlop.eval_sets` returns.

Training is language modelling on every next token (as in the paper); the score is the accuracy
of the bit after each ``r`` (the only deterministic tokens), a label placed on the ``r`` position.
The public repository the seed comes from scored the token after a value position with targets
shifted by one, so every model sat at a 1-in-10 ceiling (REFERENCES.md section 2): the oracle and
alignment checks (:mod:`pytest_goni.tasks.checks`) exist to catch exactly that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .base import IGNORE_INDEX, Task, TaskData, TaskError

W, R, I, ZERO, ONE = 0, 1, 2, 3, 4


class FlipFlop(Task):
    name = "flip_flop"

    def __init__(self, seq_len: int = 512, p_ignore: float = 0.8, max_length_factor: int = 1,
                 sparse: float = 0.98, dense: float = 0.1) -> None:
        if seq_len < 4 or seq_len % 2:
            raise TaskError(f"task_params.seq_len: an even number >= 4 (op, bit pairs), got {seq_len}")
        for key, p in (("p_ignore", p_ignore), ("sparse", sparse), ("dense", dense)):
            if not 0 <= p < 1:
                raise TaskError(f"task_params.{key}: must lie in [0, 1), got {p!r}")
        self.T, self.p_ignore, self.sparse, self.dense = seq_len, p_ignore, sparse, dense
        self.max_length_factor = max_length_factor

    @classmethod
    def from_params(cls, p: dict[str, Any], factor: int, as_int: Callable[..., int]) -> FlipFlop:
        known = {"seq_len", "p_ignore", "sparse", "dense"}
        extra = sorted(set(p) - known)
        if extra:
            raise TaskError(f"task_params: unknown key {extra[0]!r} for flip_flop; allowed: {', '.join(sorted(known))}")
        return cls(as_int(p, "seq_len", 512), float(p.get("p_ignore", 0.8)), factor,
                   float(p.get("sparse", 0.98)), float(p.get("dense", 0.1)))

    def vocab_size(self) -> int:
        return 5

    def seq_len(self, length_factor: int = 1) -> int:
        return self.T * length_factor

    def describe(self) -> str:
        return f"flip-flop (Liu et al. 2023) FFL({self.p_ignore:g}) T={self.T}"

    def with_p(self, p_ignore: float) -> FlipFlop:
        return FlipFlop(self.T, p_ignore, self.max_length_factor, self.sparse, self.dense)

    def eval_sets(self) -> dict[str, tuple[Task, int]]:
        return {"sparse": (self.with_p(self.sparse), 1), "dense": (self.with_p(self.dense), 1)}

    def generate(self, n: int, rng: np.random.Generator, length_factor: int = 1) -> TaskData:
        m = self.seq_len(length_factor) // 2
        pw = (1 - self.p_ignore) / 2
        ops = rng.choice(np.array([W, R, I]), size=(n, m), p=[pw, pw, self.p_ignore])
        ops[:, 0], ops[:, -1] = W, R
        bits = rng.integers(0, 2, size=(n, m))
        # the last written bit at each instruction: carry the writes forward
        idx = np.where(ops == W, np.arange(m)[None, :], 0)
        last_w = np.maximum.accumulate(idx, axis=1)
        memory = np.take_along_axis(bits, last_w, axis=1)
        bits = np.where(ops == R, memory, bits)
        inputs = np.empty((n, 2 * m), dtype=np.int64)
        inputs[:, 0::2], inputs[:, 1::2] = ops, bits + ZERO
        targets = np.full(inputs.shape, IGNORE_INDEX, dtype=np.int64)
        reads = ops == R
        targets[:, 0::2][reads] = (memory + ZERO)[reads]        # on the r: the bit that must follow
        lm = np.full(inputs.shape, IGNORE_INDEX, dtype=np.int64)
        lm[:, :-1] = inputs[:, 1:]                               # language modelling: every next token
        return TaskData(inputs, targets, lm)

    def oracle(self, inputs: np.ndarray) -> np.ndarray:
        """Scan left to right keeping the last bit written; at each ``r``, predict it."""
        pred = np.full(inputs.shape, -1, dtype=np.int64)
        last = np.full(len(inputs), -1, dtype=np.int64)
        for t in range(0, inputs.shape[1] - 1):
            op = inputs[:, t]
            if t % 2 == 0:
                pred[:, t] = np.where(op == R, last, -1)
                last = np.where(op == W, inputs[:, t + 1], last)
        return pred

    def triggers(self, inputs: np.ndarray) -> np.ndarray:
        out = np.zeros(inputs.shape, dtype=bool)
        out[:, 0::2] = inputs[:, 0::2] == R
        return out
