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


class LineCachedEncoder:
    """``encode(text)`` as the concatenation of its lines' encodings, each line (newline included)
    encoded once and remembered.

    Building the dialogue rows was the stream's cost: the tokenizer re-encoded every distractor turn
    of every episode (~65% of a batch's time at ``task_fraction`` 1, 64 x 512 tokens, GPT-2 BPE). The
    episodes are made of a few thousand distinct lines, so each is encoded once. Exact for GPT-2's
    byte-level BPE: its pre-tokenizer splits a newline followed by a non-space from the next word, and
    merges never cross pre-tokens; :meth:`if_exact` checks it on sample texts and keeps the plain
    encoder otherwise, so the batches (and their hashes) are the same either way.
    """

    def __init__(self, encode: Callable[[str], list[int]]):
        self.inner = encode
        self.cache: dict[str, list[int]] = {}

    def __call__(self, text: str) -> list[int]:
        out: list[int] = []
        pieces = text.split("\n")
        for k, piece in enumerate(pieces):
            if k < len(pieces) - 1:
                piece += "\n"
            elif not piece:
                break
            ids = self.cache.get(piece)
            if ids is None:
                ids = self.cache[piece] = list(self.inner(piece))
            out += ids
        return out

    @classmethod
    def if_exact(cls, encode: Callable[[str], list[int]], samples: Sequence[Episode]) -> Callable[[str], list[int]]:
        """This cache over ``encode`` when it reproduces ``encode`` on every sample prompt; else ``encode``."""
        cached = cls(encode)
        ok = all(cached(ep.prompt) == list(encode(ep.prompt)) for ep in samples)
        return cached if ok else encode


class MixedBatches:
    """``(inputs, targets)`` of ``batch`` rows of ``seq_len`` tokens for step ``step``.

    Each row is, by a coin of probability ``task_fraction`` seeded by (seed, step, row), either a
    corpus window (``WindowBatches`` order) or dialogue episodes packed end to end (separated by
    EOT) and cut at ``seq_len + 1`` tokens; episodes' distances up to ``max_distance`` follow
    ``distance_law`` (pytest_goni.v5.dialogue). ``digest()`` is the SHA-256 of every batch served.

    ``store`` (a dict shared by the streams of one seed and the same settings) keeps the built rows,
    so the runs after the first (the other model, the other rungs) read them instead of building
    them again on the CPU; what each run received is still hashed batch by batch.
    """

    def __init__(self, train_ids: torch.Tensor, seq_len: int, batch: int, seed: int, task_fraction: float,
                 encode: Callable[[str], list[int]], lines: Sequence[str], eot: int, max_distance: int,
                 distance_law: str = "uniform", store: dict[int, torch.Tensor] | None = None):
        self.windows = WindowBatches(train_ids, seq_len, batch, seed)
        self.store = store
        self.seq_len, self.batch, self.seed = seq_len, batch, seed
        self.task_fraction, self.lines, self.eot = task_fraction, lines, eot
        self.max_distance, self.distance_law = max_distance, distance_law
        self.encode = LineCachedEncoder.if_exact(encode, [training_episode(np.random.default_rng([seed, i]), lines,
                                                                          max_distance, law=distance_law)
                                                          for i in range(32)])
        self._hash = hashlib.sha256()
        self.served = 0

    def episode_row(self, rng: np.random.Generator) -> list[int]:
        row: list[int] = []
        while len(row) < self.seq_len + 1:
            ep: Episode = training_episode(rng, self.lines, self.max_distance, law=self.distance_law)
            row += self.encode(ep.prompt) + self.encode(" " + ep.answer) + [self.eot]
        return row[:self.seq_len + 1]

    def rows(self, step: int) -> torch.Tensor:
        """The ``batch x (seq_len + 1)`` token rows of ``step`` (from ``store`` when an earlier stream of
        the same seed and settings built them)."""
        if self.store is not None and step in self.store:
            return self.store[step]
        x, y = self.windows(step)
        rng = np.random.default_rng([self.seed, step, 17])
        rows = torch.cat([x, y[:, -1:]], dim=1)
        for r in range(self.batch):
            if rng.random() < self.task_fraction:
                rows[r] = torch.tensor(self.episode_row(rng), dtype=rows.dtype)
        if self.store is not None:
            self.store[step] = rows
        return rows

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.rows(step)
        self._hash.update(rows.numpy().astype(np.int64).tobytes())
        self.served += 1
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def digest(self) -> str:
        return self._hash.hexdigest()[:16]


def train_flops(params: int, tokens: int) -> float:
    """The seed's compute count, line 230: "Same FLOPs count: params x tokens x 6"."""
    return 6.0 * params * tokens
