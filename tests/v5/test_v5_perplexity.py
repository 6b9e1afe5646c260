"""Perplexity as lm-evaluation-harness pins it: disjoint windows with an EOT prefix, token / word /
byte units; and the rolling variant that carries a recurrent state."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.v5.perplexity import (
    carried_state_loglik,
    disjoint_loglik,
    rolling_invalid,
    rolling_windows,
    sliding_loglik,
    split_documents,
    windows_spanned,
    word_count,
)

EOT = 0


def enc(s: str) -> list[int]:
    return [1 + (b % 60) for b in s.encode()]


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    load_builtins()
    cfg = dict(vocab_size=64, d_model=32, n_layers=1, n_heads=2, max_seq_len=256)
    return {"rec": resolve_backend("groundthink")(**cfg).eval(),
            "att": resolve_backend("transformer-vanilla")(**cfg).eval()}


def test_windows_are_disjoint_and_prefixed_like_the_harness() -> None:
    ids = list(range(10, 33))
    wins = rolling_windows(ids, 8, EOT)
    assert [t for _, t in wins] == [ids[0:8], ids[8:16], ids[16:23]]
    assert wins[0][0] == [EOT] + ids[0:7]        # first window: EOT then the tokens
    assert wins[1][0] == ids[7:15]                # later windows: only the token before them


def test_units_follow_the_harness_definitions(models) -> None:
    doc = "It is the east,  and Juliet is the sun.\nArise, fair sun."
    ll = disjoint_loglik(models["att"], [doc], enc, 16, EOT)
    assert ll.tokens == len(enc(doc)) and ll.bytes == len(doc.encode())
    assert ll.words == word_count(doc) == len(__import__("re").split(r"\s+", doc))
    m = ll.metrics()
    assert m["bits_per_byte"] == pytest.approx(-ll.ll / ll.bytes / math.log(2))
    assert m["token_ppl"] == pytest.approx(math.exp(-ll.ll / ll.tokens))


def test_disjoint_loglik_is_the_sum_over_windows(models) -> None:
    m = models["att"]
    doc = "abcdefghijklmnopqrstuvwxyz0123456789"
    ids = enc(doc)
    manual = 0.0
    for inputs, targets in rolling_windows(ids, 10, EOT):
        with torch.no_grad():
            logp = torch.log_softmax(m(torch.tensor([inputs]))[0].float(), -1)
        manual += float(logp.detach()[torch.arange(len(targets)), torch.tensor(targets)].sum())
    assert disjoint_loglik(m, [doc], enc, 10, EOT).ll == pytest.approx(manual, rel=1e-5)


def test_carried_state_equals_one_long_window_for_a_recurrent_model(models) -> None:
    m = models["rec"]
    doc = "the quality of mercy is not strained, it droppeth as the gentle rain"
    carried = carried_state_loglik(m, [doc], enc, 12, EOT).ll
    whole = disjoint_loglik(m, [doc], enc, 10_000, EOT).ll       # one window holds everything
    chopped = disjoint_loglik(m, [doc], enc, 12, EOT).ll
    assert carried == pytest.approx(whole, rel=1e-4)
    assert abs(carried - chopped) > 1e-6                       # the windows cut context the state kept


def test_sliding_window_scores_every_token_once(models) -> None:
    m = models["att"]
    doc = "now is the winter of our discontent made glorious summer"
    short = sliding_loglik(m, [doc], enc, 10_000, EOT)
    assert short.ll == pytest.approx(disjoint_loglik(m, [doc], enc, 10_000, EOT).ll, rel=1e-5)
    assert sliding_loglik(m, [doc], enc, 16, EOT).tokens == len(enc(doc))


def test_documents_are_paragraphs_merged_to_a_minimum() -> None:
    text = "a b c\n\nd e f g\n\n\nh i\n\nj"
    docs = split_documents(text, min_chars=6)
    assert docs[0] == "a b c\n\nd e f g" and all(len(d) >= 1 for d in docs)


def test_carried_state_steps_documents_of_different_lengths_as_one_batch(models) -> None:
    """Documents stepped together give each one's own score: a batch of a long, a longer and a
    one-window document equals one long window per document."""
    m = models["rec"]
    docs = ["the quality of mercy is not strained", "it droppeth as the gentle rain from heaven upon the place "
            "beneath: it is twice blest", "short"]
    together = carried_state_loglik(m, docs, enc, 12, EOT)
    alone = [disjoint_loglik(m, [d], enc, 10_000, EOT) for d in docs]
    assert together.ll == pytest.approx(sum(a.ll for a in alone), rel=1e-4)
    assert together.tokens == sum(len(enc(d)) for d in docs)


def test_documents_reach_a_token_minimum_so_rolling_spans_windows() -> None:
    """The perplexity documents were cut at 1,600 characters, under a 512-token window: no document
    reached a second window and the rolling score equalled the disjoint one bit for bit. With a token
    minimum of two windows every document spans more than one."""
    text = "\n\n".join(f"line {i} " + "word " * (5 + i % 7) for i in range(400))
    docs = split_documents(text, min_chars=50, max_docs=4, max_chars=60, min_tokens=2 * 64, encode=enc)
    assert len(docs) == 4 and all(len(enc(d)) >= 128 for d in docs)      # max_chars does not cut them
    spans = windows_spanned(docs, enc, 64)
    assert all(w >= 2 for w in spans) and rolling_invalid(spans, 64) is None
    capped = split_documents(text, min_chars=50, max_docs=4, max_chars=60)
    why = rolling_invalid(windows_spanned(capped, enc, 64), 64)
    assert why and "no perplexity document spans more than one 64-token window" in why
    with pytest.raises(ValueError):
        split_documents(text, min_tokens=10)
