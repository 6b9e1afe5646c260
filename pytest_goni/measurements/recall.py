"""Measurement kind ``recall``: multi-query associative recall (MQAR), trained briefly, scored by
accuracy — the downstream-usefulness placeholder of SYS-02 until the architecture-comparison
tasks land (../shared/seeds/architecture-comparison.md: "MQAR (Associative Recall) — memory for
key-value pairs"; success bar "> 80% on MQAR").

The task follows Zoology's MQAR (Arora et al., 2023): a sequence opens with ``num_kv_pairs``
key-value pairs (keys from the lower half of the vocabulary, values from the upper half, so
``vocab_size > 2 * num_kv_pairs`` as the seed warns); later, every key appears again as a query
at a random position of the remaining sequence, followed by its value. The model is scored only
on predicting the value at each query (other positions hold filler token 0 and are unscored).
Not Zoology's MQAR in three ways (the faithful generator is :mod:`pytest_goni.tasks.mqar`, used by
the ``synthetic_task`` kind): values are drawn with replacement, queries are placed uniformly (no
power-law gaps), and the value is also written after each query key; filler is always 0.
Training batches are drawn fresh from a generator seeded by (seed, step), so every model sees the
same examples in the same order; the test set is fixed per seed and disjoint in seed stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pytest_goni.device import release, under_cpu_threads
from pytest_goni.jsonsafe import config_hash
from pytest_goni.measurements.schemas import named_models_schema
from pytest_goni.progress import step_check
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric
from pytest_goni.training import (
    IGNORE_INDEX,
    OptimConfig,
    describe_config,
    evaluate_loss,
    seed_everything,
    train,
)

SCHEMA: dict[str, Any] = named_models_schema({
    "vocab_size": {"type": "integer", "minimum": 4},
    "seq_len": {"type": "integer", "minimum": 4},
    "num_kv_pairs": {"type": "integer", "minimum": 1},
    "steps": {"type": "integer", "minimum": 1},
    "batch_size": {"type": "integer", "minimum": 1},
    "eval_examples": {"type": "integer", "minimum": 1},
    "seeds": {"type": "array", "minItems": 1, "items": {"type": "integer"}},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "warmup": {"type": "number", "minimum": 0},
    "weight_decay": {"type": "number", "minimum": 0},
    "grad_clip": {"type": "number", "minimum": 0},
})

_TEST_STREAM = 1 << 30  # the test set's generator stream, never reached by a training step


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units: dict[str, str] = {}
    for m in params["models"]:
        units.update({f"{m}.accuracy": "", f"{m}.final_loss": "", f"{m}.test_loss": ""})
    return units


def mqar_examples(n: int, seq_len: int, num_kv_pairs: int, vocab_size: int, rng: np.random.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` MQAR sequences: (inputs [n, seq_len], targets [n, seq_len]) with targets set only at
    query positions (the value that follows the queried key), IGNORE_INDEX elsewhere."""
    half = vocab_size // 2
    if half - 1 < num_kv_pairs:
        raise ValueError(f"MQAR needs distinct keys: vocab_size {vocab_size} gives {half - 1} keys for "
                         f"{num_kv_pairs} pairs (make vocab_size > 2 * num_kv_pairs + 2)")
    slots = (seq_len - 2 * num_kv_pairs) // 2
    if slots < num_kv_pairs:
        raise ValueError(f"seq_len {seq_len} is too short for {num_kv_pairs} pairs and their queries "
                         f"(needs >= {4 * num_kv_pairs})")
    inputs = np.zeros((n, seq_len), dtype=np.int64)
    targets = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    rows = np.arange(n)[:, None]
    keys = np.argsort(rng.random((n, half - 1)), axis=1)[:, :num_kv_pairs] + 1
    values = rng.integers(half, vocab_size, size=(n, num_kv_pairs))
    inputs[:, 0:2 * num_kv_pairs:2] = keys
    inputs[:, 1:2 * num_kv_pairs:2] = values
    chosen = np.sort(np.argsort(rng.random((n, slots)), axis=1)[:, :num_kv_pairs], axis=1)
    qpos = 2 * num_kv_pairs + 2 * chosen  # query key position; its value follows it
    order = np.argsort(rng.random((n, num_kv_pairs)), axis=1)  # which pair each query asks for
    inputs[rows, qpos] = keys[rows, order]
    inputs[rows, qpos + 1] = values[rows, order]
    targets[rows, qpos] = values[rows, order]
    return torch.from_numpy(inputs), torch.from_numpy(targets)


@torch.no_grad()
def recall_accuracy(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: str,
                    batch_size: int = 256) -> float:
    """Fraction of queries whose value is the model's top prediction."""
    model.eval()
    hit, total = 0, 0
    for i in range(0, len(inputs), batch_size):
        x, y = inputs[i:i + batch_size].to(device), targets[i:i + batch_size].to(device)
        pred = model(x).argmax(-1)
        mask = y != IGNORE_INDEX
        hit += int((pred[mask] == y[mask]).sum())
        total += int(mask.sum())
    return hit / total


@measurement_kind("recall", schema=SCHEMA, metrics=metric_units)
@under_cpu_threads()
def measure_recall(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Train each model on MQAR for a fixed number of steps; report query accuracy on held-out data."""
    vocab = int(params.get("vocab_size", 64))
    seq_len = int(params.get("seq_len", 64))
    kv = int(params.get("num_kv_pairs", 8))
    steps = int(params.get("steps", 500))
    batch = int(params.get("batch_size", 64))
    n_eval = int(params.get("eval_examples", 512))
    seeds = [int(s) for s in params.get("seeds", [0])]
    cfg = OptimConfig(lr=float(params.get("lr", 1e-3)), warmup=float(params.get("warmup", 0.1)),
                      weight_decay=float(params.get("weight_decay", 0.1)),
                      grad_clip=float(params.get("grad_clip", 1.0)), min_lr_ratio=0.1)
    chash = config_hash({"params": params, "models": {m: ctx.model_config(m) for m in params["models"]},
                         "optim": describe_config(cfg)})
    out: dict[str, Metric] = {}
    for name in params["models"]:
        accs, finals, tests = [], [], []
        for seed in seeds:
            test_rng = np.random.default_rng([seed, _TEST_STREAM])
            test_x, test_y = mqar_examples(n_eval, seq_len, kv, vocab, test_rng)

            def batch_fn(step: int, seed: int = seed) -> tuple[torch.Tensor, torch.Tensor]:
                return mqar_examples(batch, seq_len, kv, vocab, np.random.default_rng([seed, step]))

            seed_everything(seed)
            model = ctx.build_model(name, on_device=True, vocab_size=vocab)
            res = train(model, batch_fn, steps, cfg, device=ctx.device,
                        check=step_check(ctx, f"{name} seed {seed}", steps))
            accs.append(recall_accuracy(model, test_x, test_y, ctx.device))
            finals.append(res.final_loss)
            tests.append(evaluate_loss(model, [(test_x[i:i + 256], test_y[i:i + 256])
                                               for i in range(0, n_eval, 256)], device=ctx.device))
            del model
            release(ctx.device)
        meta = {"config_hash": chash, "seeds": seeds, "steps": steps, "batch_size": batch,
                "task": f"MQAR vocab {vocab}, seq {seq_len}, {kv} pairs"}
        out[f"{name}.accuracy"] = Metric.of(accs, "", note=f"query accuracy on {n_eval} held-out sequences",
                                            **meta)
        out[f"{name}.final_loss"] = Metric.of(finals, "", **meta)
        out[f"{name}.test_loss"] = Metric.of(tests, "", **meta)
    return out
