"""The shared training loop, the LM data pipeline, and the train_lm / recall / model_stats kinds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pytest_goni.lm_data import (
    WindowBatches,
    char_tokenizer,
    eval_batches,
    get_tokenizer,
    tokenize_corpus,
)
from pytest_goni.measurements.recall import mqar_examples
from pytest_goni.training import IGNORE_INDEX, OptimConfig, cosine_lr, max_loss_spike, train

TEXT = ("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
        "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date.\n") * 40


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    lrs = [cosine_lr(s, 100, 10, 1.0, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.1)


def test_loss_spike_is_relative_to_the_running_average():
    flat = [2.0] * 30
    assert max_loss_spike(flat, 10) == pytest.approx(1.0)
    spiked = flat[:20] + [5.0] + flat[21:]
    assert max_loss_spike(spiked, 10) == pytest.approx(2.5)
    assert max_loss_spike(flat + [math.nan], 10) == math.inf


def test_window_batches_depend_only_on_seed_and_step():
    ids = torch.arange(10_000)
    a, b = WindowBatches(ids, 32, 4, seed=7), WindowBatches(ids, 32, 4, seed=7)
    other = WindowBatches(ids, 32, 4, seed=8)
    for step in (0, 5, 400):  # 400 is past the first epoch: a fresh permutation
        xa, ya = a(step)
        xb, _ = b(step)
        assert torch.equal(xa, xb)
        assert torch.equal(xa[:, 1:], ya[:, :-1])  # targets are inputs shifted by one
    assert not torch.equal(a(0)[0], other(0)[0])
    with pytest.raises(ValueError, match="windows"):
        WindowBatches(torch.arange(50), 32, 4, seed=0)


def test_split_is_on_text_so_tokenizers_share_the_validation_characters():
    byte = tokenize_corpus(TEXT, get_tokenizer("byte", TEXT), "t", 0.1)
    char = tokenize_corpus(TEXT, char_tokenizer(TEXT), "t", 0.1)
    assert byte.val_chars == char.val_chars and byte.train_chars + byte.val_chars == len(TEXT)
    assert char.vocab_size == len(set(TEXT)) and byte.vocab_size == 256
    assert len(eval_batches(char.val_ids, 16, 4)) >= 1
    with pytest.raises(ValueError, match="alphabet"):
        char_tokenizer("abc").encode("abd")


def test_train_reduces_loss_and_is_deterministic():
    ids = torch.tensor(get_tokenizer("byte", TEXT).encode(TEXT))
    from pytest_goni.registry import resolve_backend

    toy = resolve_backend("sys02-test-recurrent")  # registered by tests/sys02/conftest.py

    def run() -> list[float]:
        torch.manual_seed(0)
        model = toy(vocab_size=256, d_model=16)
        res = train(model, WindowBatches(ids, 32, 8, seed=0), 40, OptimConfig(lr=1e-2, warmup=5))
        assert res.steps == 40 and res.tokens == 40 * 8 * 32 and res.tokens_per_second > 0
        return res.losses

    first, second = run(), run()
    assert first == second
    assert np.mean(first[-5:]) < np.mean(first[:5]) - 0.5


def test_mqar_examples_follow_zoology_layout():
    x, y = mqar_examples(16, 32, 4, 32, np.random.default_rng(0))
    assert x.shape == y.shape == (16, 32)
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        keys, values = row_x[0:8:2], row_x[1:8:2]
        assert len(set(keys)) == 4 and all(1 <= k < 16 for k in keys) and all(16 <= v < 32 for v in values)
        pairs = dict(zip(keys, values))
        queries = [(i, t) for i, t in enumerate(row_y) if t != IGNORE_INDEX]
        assert len(queries) == 4 and all(i >= 8 for i, _ in queries)
        assert sorted(row_x[i] for i, _ in queries) == sorted(keys)
        assert all(pairs[row_x[i]] == t and row_x[i + 1] == t for i, t in queries)
    with pytest.raises(ValueError, match="vocab_size"):
        mqar_examples(1, 64, 20, 32, np.random.default_rng(0))


def test_train_lm_kind_metrics_learning_and_reproducibility(make_ctx, run_kind, tmp_path):
    corpus = tmp_path / "sonnet.txt"
    corpus.write_text(TEXT)
    models = {"toy": {"backend": "sys02-test-recurrent", "d_model": 16},
              "tf": {"backend": "transformer-rope", "d_model": 16, "n_layers": 1, "n_heads": 2}}
    params = {"models": ["toy", "tf"], "corpus": str(corpus), "tokenizer": "char", "tokens": "1.2e4",
              "seq_len": 32, "batch_size": 8, "seeds": [0, 1], "lr": 0.01, "rerun_steps": 4,
              "val_fraction": 0.1, "spike_window": 5}
    out = run_kind("train_lm", make_ctx(models, "train"), params)
    vocab = len(set(TEXT))
    assert out["vocab_size"].value() == vocab
    for m in ("toy", "tf"):
        assert len(out[f"{m}.val_loss"].samples) == 2
        assert out[f"{m}.loss_drop"].value("min") > 0.3  # every seed learned
        assert out[f"{m}.val_loss"].value("max") < math.log(vocab)
        assert out[f"{m}.rerun_loss_diff"].value() == 0.0  # same seed, same batches -> same losses
        assert out[f"{m}.tokens_trained"].value() == 46 * 8 * 32  # 1.2e4 // 256 steps
        assert out[f"{m}.val_ppl"].samples == pytest.approx([math.exp(v) for v in out[f"{m}.val_loss"].samples])
        assert len(out[f"{m}.final_train_loss"].meta["loss_curves"][0]) == 46
        assert out[f"{m}.val_loss"].meta["config_hash"] == out["vocab_size"].meta["config_hash"]
        assert out[f"{m}.train_tok_s"].meta["gpus"] == 1 and out[f"{m}.train_tok_s"].meta["compiled"] is False
        assert out[f"{m}.first_step_s"].value("min") > 0  # compile / JIT / warm-up, timed apart
    # same seed and batch order for both models, different seeds differ
    assert out["toy.val_loss"].samples[0] != out["toy.val_loss"].samples[1]
    assert (tmp_path / "artifacts" / "sys02test.train.training-loss-per-step.png").read_bytes()[:4] == b"\x89PNG"


def test_train_lm_names_a_missing_corpus_file(make_ctx, registries):
    ctx = make_ctx({"toy": {"backend": "sys02-test-recurrent"}})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        registries.kinds["train_lm"].func(ctx, {"models": ["toy"], "corpus": "no/such.txt",
                                                "tokenizer": "byte", "tokens": 100})


def test_recall_kind_reports_accuracy(make_ctx, run_kind):
    models = {"toy": {"backend": "sys02-test-recurrent", "d_model": 16}}
    out = run_kind("recall", make_ctx(models, "recall"),
                   {"models": ["toy"], "vocab_size": 16, "seq_len": 16, "num_kv_pairs": 2, "steps": 5,
                    "batch_size": 8, "eval_examples": 64})
    assert 0.0 <= out["toy.accuracy"].value() <= 1.0
    assert math.isfinite(out["toy.test_loss"].value())


def test_model_stats_counts_the_built_module(make_ctx, run_kind):
    models = {"tf": {"backend": "transformer-rope", "d_model": 32, "n_layers": 2, "n_heads": 2,
                     "vocab_size": 100}}
    out = run_kind("model_stats", make_ctx(models), {"models": ["tf"], "train_tokens": "2e6",
                                                     "vocab_size": 1000})
    from pytest_goni.registry import resolve_backend

    ref = resolve_backend("transformer-rope")(d_model=32, n_layers=2, n_heads=2, vocab_size=1000)
    assert out["tf.params"].value() == sum(p.numel() for p in ref.parameters())
    assert out["tf.params_non_embedding"].value() == ref.num_params(embedding=False)
    assert out["tf.tokens_per_param"].value() == pytest.approx(2e6 / out["tf.params"].value())
    assert out["train_tokens"].value() == 2e6
