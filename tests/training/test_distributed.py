"""Data-parallel training on the CPU: two gloo processes reproduce the one-process run."""

from __future__ import annotations

import pytest
import torch

from pytest_goni import distributed
from pytest_goni.lm_data import WindowBatches
from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.training import HeldOut, OptimConfig, train

load_builtins()
TINY = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2}
IDS = torch.randint(0, 64, (6000,), generator=torch.Generator().manual_seed(1))


def test_two_gloo_processes_match_one_at_equal_global_batch():
    cfg = OptimConfig(lr=1e-2, warmup=2)
    val = [(IDS[:64].view(2, 32), IDS[1:65].view(2, 32))]
    runs = {}
    for gpus in (1, 2):
        model = resolve_backend("gla")(**TINY)
        res = train(model, WindowBatches(IDS, 32, 8, seed=0), 8, cfg, gpus=gpus, log_every=3,
                    evaluate=HeldOut(val), eval_every=4)
        runs[gpus] = (res, model)
    (one, m1), (two, m2) = runs[1], runs[2]
    assert two.world_size == 2 and two.devices == ["cpu", "cpu"] and one.world_size == 1
    assert two.tokens == one.tokens == 8 * 8 * 32  # the global batch, counted once
    assert len(two.losses) == 8 and max(abs(a - b) for a, b in zip(one.losses, two.losses)) < 1e-5
    assert [s for s, _ in two.eval_points] == [4]
    assert abs(one.eval_points[0][1] - two.eval_points[0][1]) < 1e-5
    for p, q in zip(m1.parameters(), m2.parameters()):  # the caller's model holds rank 0's weights
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_a_batch_that_does_not_split_is_an_error_before_any_process_starts():
    with pytest.raises(ValueError, match="8 rows does not split over gpus: 3"):
        train(resolve_backend("gla")(**TINY), WindowBatches(IDS, 32, 8, seed=0), 2, OptimConfig(), gpus=3)


def test_xdist_workers_own_blocks_of_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    cuda = torch.device("cuda", 1)
    assert [d.index for d in distributed.rank_devices(2, cuda)] == [2, 3]
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert [d.index for d in distributed.rank_devices(2, cuda)] == [0, 1]
    with pytest.raises(ValueError, match="gpus: 8 asked, but 4 CUDA device"):
        distributed.rank_devices(8, cuda)
    assert distributed.rank_devices(2, torch.device("cpu")) == [torch.device("cpu")] * 2


def test_torchrun_is_recognised_from_its_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not distributed.launched_by_torchrun()
    monkeypatch.setenv("RANK", "1")
    assert distributed.launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not distributed.launched_by_torchrun()
