"""The training stream: the same (seed, step) gives the same batch, and the digest proves it."""

from __future__ import annotations

import torch

from pytest_goni.v5.dialogue import distractor_lines
from pytest_goni.v5.stream import CompactVocab, MixedBatches, train_flops

LINES = [f"line number {i} of the play, spoken softly" for i in range(40)]


def enc(s: str) -> list[int]:
    return [1 + (b % 100) for b in s.encode()]


def make(seed: int) -> MixedBatches:
    ids = torch.arange(5000) % 97
    return MixedBatches(ids, 32, 4, seed, 0.5, enc, LINES, 0, 3)


def test_same_seed_same_batches_and_digest() -> None:
    a, b, c = make(0), make(0), make(1)
    for step in range(5):
        xa, ya = a(step)
        xb, yb = b(step)
        c(step)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa[:, 1:], ya[:, :-1])          # targets are the inputs shifted by one
    assert a.digest() == b.digest() != c.digest()


def test_some_rows_are_dialogues() -> None:
    m = make(0)
    rows = torch.cat([m(s)[0] for s in range(8)])
    assert (rows == 0).any()                                  # EOT separates packed episodes


def test_compact_vocab_is_dense_and_roundtrips() -> None:
    cv = CompactVocab([[5, 900, 5, 42]], always=[50256])
    assert cv.ids == [5, 42, 900, 50256] and cv.size == 4
    assert cv.encode(lambda s: [900, 5])("x") == [2, 0]


def test_flops_are_six_n_d() -> None:
    assert train_flops(1_000_000, 2_000) == 12e9
    assert len(distractor_lines("\n".join(LINES))) == 40
