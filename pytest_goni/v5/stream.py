"""The V5 training stream: corpus windows mixed with statefulness dialogues, in a fixed order.

The seed's fair protocol (v5-gpt2-gates.md lines 156-170: "same random seed and batch order",
"Save batch indices", "Both models load same batch order") is kept by making every batch a
function of (seed, step) only, and by hashing what each model actually received: two runs agree on
the order exactly when their hashes are equal (a gate reads both).

Its validation corpus mixes conversational and long-document text (lines 700-708: 50%
conversational); here a fraction ``task_fraction`` of the rows are packed dialogue episodes of the
statefulness family (pytest_goni.v5.dialogue) and the rest are windows of the corpus.

``CompactVocab`` keeps GPT-2's BPE but renumbers the ids that occur (plus end-of-text) densely, so
a CPU run does not pay for a 50,257-wide softmax over ids the corpus never uses; the token
boundaries, and so the tokenizer the two models share, are GPT-2's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from pytest_goni.lm_data import WindowBatches
from pytest_goni.v5.dialogue import Episode, training_episode


class CompactVocab:
    """A dense renumbering of the token ids seen in ``streams`` (and ``always``)."""

    def __init__(self, streams: Iterable[Sequence[int]], always: Sequence[int] = ()):
        seen: set[int] = set(always)
        for s in streams:
            seen.update(int(i) for i in s)
        self.ids = sorted(seen)
        self.index = {t: i for i, t in enumerate(self.ids)}

    @property
    def size(self) -> int:
        return len(self.ids)

    def encode(self, inner: Callable[[str], list[int]]) -> Callable[[str], list[int]]:
        """An encoder that maps ``inner``'s ids into this vocabulary (unseen ids raise)."""
        def enc(text: str) -> list[int]:
            try:
                return [self.index[t] for t in inner(text)]
            except KeyError as exc:
                raise ValueError(f"token id {exc.args[0]} of {text[:40]!r} is not in the compact vocabulary; "
                                 "add the text to the vocabulary's streams") from None
        return enc


class MixedBatches:
    """``(inputs, targets)`` of ``batch`` rows of ``seq_len`` tokens for step ``step``.

    Each row is, by a coin of probability ``task_fraction`` seeded by (seed, step, row), either a
    corpus window (``WindowBatches`` order) or dialogue episodes packed end to end (separated by
    EOT) and cut at ``seq_len + 1`` tokens. ``digest()`` is the SHA-256 of every batch served.
    """

    def __init__(self, train_ids: torch.Tensor, seq_len: int, batch: int, seed: int, task_fraction: float,
                 encode: Callable[[str], list[int]], lines: Sequence[str], eot: int, max_distance: int):
        self.windows = WindowBatches(train_ids, seq_len, batch, seed)
        self.seq_len, self.batch, self.seed = seq_len, batch, seed
        self.task_fraction, self.encode, self.lines, self.eot = task_fraction, encode, lines, eot
        self.max_distance = max_distance
        self._hash = hashlib.sha256()
        self.served = 0

    def episode_row(self, rng: np.random.Generator) -> list[int]:
        row: list[int] = []
        while len(row) < self.seq_len + 1:
            ep: Episode = training_episode(rng, self.lines, self.max_distance)
            row += self.encode(ep.prompt) + self.encode(" " + ep.answer) + [self.eot]
        return row[:self.seq_len + 1]

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.windows(step)
        rng = np.random.default_rng([self.seed, step, 17])
        rows = torch.cat([x, y[:, -1:]], dim=1)
        for r in range(self.batch):
            if rng.random() < self.task_fraction:
                rows[r] = torch.tensor(self.episode_row(rng), dtype=rows.dtype)
        self._hash.update(rows.numpy().astype(np.int64).tobytes())
        self.served += 1
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def digest(self) -> str:
        return self._hash.hexdigest()[:16]


def train_flops(params: int, tokens: int) -> float:
    """The seed's compute count, line 230: "Same FLOPs count: params x tokens x 6"."""
    return 6.0 * params * tokens
