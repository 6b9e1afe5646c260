"""What the training loop feeds a model on MQAR is what the task's checks validate (issue 17: is
attention's plateau a data-path bug?): every batch row is a generated sequence, its labels are the
oracle's answers at the query keys and IGNORE_INDEX elsewhere, and the loss the loop takes is plain
cross-entropy over exactly those positions (tied head included)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pytest_goni.measurements.synthetic_task import EpochBatches
from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.tasks.mqar import MQAR
from pytest_goni.training import IGNORE_INDEX, LossModule


def test_batches_carry_the_oracles_labels_on_query_keys_only() -> None:
    task = MQAR(256, 64, 4, random_non_queries=False)
    data = task.generate(300, np.random.default_rng([0, 0]))
    batches = EpochBatches(data, 64, seed=0)
    for step in (0, 3, 7):  # 7 crosses into the second epoch (300 rows, batch 64)
        x, y = (t.numpy() for t in batches(step))
        rows = [int(np.flatnonzero((data.inputs == r).all(axis=1))[0]) for r in x]
        np.testing.assert_array_equal(data.train_targets[rows], y)  # the row's own labels
        scored = y != IGNORE_INDEX
        assert (scored.sum(axis=1) == 4).all()
        np.testing.assert_array_equal(y[scored], task.oracle(x)[scored])
        assert (x[scored] < 128).all() and (y[scored] >= 128).all()  # key in, value out
        assert not scored[:, :8].any()  # nothing scored inside the key-value context


def test_the_loops_loss_is_cross_entropy_on_the_scored_positions() -> None:
    load_builtins()
    task = MQAR(256, 64, 4, random_non_queries=False)
    data = task.generate(8, np.random.default_rng([1, 0]))
    x, y = torch.from_numpy(data.inputs), torch.from_numpy(data.train_targets)
    model = resolve_backend("transformer-rope")(vocab_size=256, d_model=32, n_layers=2, n_heads=2, max_seq_len=64)
    assert model.head.weight is model.embed.weight
    with torch.no_grad():
        ours = LossModule(model)(x, y)
        logits = model(x)
        want = F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum")
        scored = y != IGNORE_INDEX
        by_hand = -(logits.log_softmax(-1)[scored].gather(1, y[scored][:, None])).sum()
    torch.testing.assert_close(ours, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, by_hand, rtol=1e-5, atol=1e-5)
    # and the gradients it sends every parameter (the tied table gets the head's and the embedding's)
    params = list(model.parameters())
    g_ours = torch.autograd.grad(LossModule(model)(x, y), params)
    g_want = torch.autograd.grad(F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1), reduction="sum"), params)
    for a, b in zip(g_ours, g_want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
