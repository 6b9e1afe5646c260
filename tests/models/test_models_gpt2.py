"""GPT-2 sizes, the seed's formula vs the true count, and parameter matching."""

from __future__ import annotations

import pytest
import torch
from pytest_goni.models.base import SIZES, ConfigError
from pytest_goni.models.gpt2 import build_gpt2, gpt2_true_params, match_gpt2_config, seed_formula_params
from pytest_goni.models.matching import count_params, resolve_model_config


def meta_gpt2(**config):
    with torch.device("meta"):
        return build_gpt2(**config)


def test_gpt2_small_counts_124_439_808():
    model = meta_gpt2(size="125M")
    assert model.num_params() == 124_439_808
    assert gpt2_true_params() == 124_439_808


def test_seed_formula_is_the_seed_function_verbatim():
    # v5-gpt2-gates.md gpt2_params() at its defaults (vocab 50257, 1024 positions, 6 layers, d 384)
    v, p, n, d = 50257, 1024, 6, 384
    assert seed_formula_params() == v * d + p * d + n * (4 * d * d + 2 * d * 4 * d + 2 * d)
    # it leaves out biases, the second LayerNorm per block and the final LayerNorm
    assert gpt2_true_params(v, p, 12, 768) - seed_formula_params(v, p, 12, 768) == 102_912


@pytest.mark.parametrize("size", list(SIZES))
def test_closed_form_matches_the_built_model(size):
    model = meta_gpt2(size=size)
    s = SIZES[size]
    assert model.num_params() == gpt2_true_params(50257, 1024, s["n_layers"], s["d_model"], s["d_ff"])
    assert model.num_params(embedding=False) == gpt2_true_params(
        50257, 1024, s["n_layers"], s["d_model"], s["d_ff"], embedding=False)


@pytest.mark.parametrize("target,vocab,non_emb", [
    (124_439_808, 50257, False), (8_000_000, 50257, False), (3_500_000, 50257, False),
    (2_000_000, 128, True), (30_000_000, 50257, True),
])
def test_match_finds_a_near_plausible_config(target, vocab, non_emb):
    m = match_gpt2_config(target, vocab, non_embedding=non_emb)
    built = meta_gpt2(vocab_size=vocab, n_layers=m["n_layers"], n_heads=m["n_heads"], d_model=m["d_model"])
    counted = built.num_params(embedding=not non_emb)
    assert counted == m["params"]
    assert abs(counted - target) / target <= 0.03, m
    assert m["d_model"] % m["n_heads"] == 0
    assert 8 <= m["d_model"] / m["n_layers"] <= 512  # a GPT-2-like shape, not a 1-layer giant


def test_match_of_gpt2_small_recovers_gpt2_small():
    m = match_gpt2_config(124_439_808, 50257)
    assert (m["n_layers"], m["d_model"], m["params"]) == (12, 768, 124_439_808)


def test_factory_matches_a_count():
    model = meta_gpt2(vocab_size=128, match_params=500_000, match="non_embedding", max_seq_len=256)
    assert abs(model.num_params(embedding=False) - 500_000) / 500_000 < 0.03


def test_resolve_match_params_by_model_name():
    models = {"candidate": {"backend": "gla", "d_model": 64, "n_layers": 2, "n_heads": 2, "vocab_size": 256},
              "gpt2": {"backend": "gpt2", "size": "8M", "match_params": "candidate"}}
    cfg = resolve_model_config(models, "gpt2")
    total, _ = count_params("gla", {k: v for k, v in models["candidate"].items() if k != "backend"})
    assert cfg["match_params"] == total and cfg["vocab_size"] == 256 and "size" not in cfg
    backend = cfg.pop("backend")
    assert backend == "gpt2"
    model = meta_gpt2(**cfg)
    assert abs(model.num_params() - total) / total < 0.05


def test_match_params_cycle_is_a_clear_error():
    models = {"a": {"backend": "gpt2", "match_params": "b"}, "b": {"backend": "gpt2", "match_params": "a"}}
    with pytest.raises(ConfigError, match="cycle"):
        resolve_model_config(models, "a")


def test_match_and_shape_together_is_an_error():
    with pytest.raises(ConfigError, match="either match_params or d_model"):
        build_gpt2(match_params=1_000_000, d_model=64)


def test_past_the_position_table_is_a_clear_error():
    model = build_gpt2(vocab_size=32, d_model=16, n_layers=1, n_heads=2, max_seq_len=8)
    with pytest.raises(ValueError, match="max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
