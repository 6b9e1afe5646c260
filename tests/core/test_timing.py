"""Timers: sample counts, interleaving order, the repetition budget, memory probes."""

from __future__ import annotations

import time

import pytest
import torch

from pytest_goni.timing import (
    Budget,
    cpu_peak_probe_kind,
    last_level_cache_bytes,
    peak_memory,
    time_fn,
    time_interleaved,
)


def _sleeper(seconds: float, log: list | None = None, name: str = ""):
    def fn():
        if log is not None:
            log.append(name)
        time.sleep(seconds)

    return fn


def test_time_fn_returns_one_sample_per_rep_in_seconds():
    samples = time_fn(_sleeper(0.002), "cpu", warmup=1, reps=5)
    assert len(samples) == 5
    assert all(0.002 <= s < 0.5 for s in samples)


def test_inner_calls_are_averaged_into_one_sample():
    calls = []
    samples = time_fn(_sleeper(0.001, calls, "x"), "cpu", warmup=0, reps=3, inner=4)
    assert len(calls) == 12 and len(samples) == 3
    assert all(0.001 <= s < 0.25 for s in samples)


def test_interleaved_runs_a_b_a_b_and_pairs_samples():
    log: list[str] = []
    out = time_interleaved({"a": _sleeper(0.0, log, "a"), "b": _sleeper(0.003, log, "b")}, "cpu",
                           warmup=2, reps=4)
    assert log == ["a", "b"] * 6
    assert set(out) == {"a", "b"} and len(out["a"]) == len(out["b"]) == 4
    # b sleeps 3 ms, a does nothing (a preempted round may still make one `a` sample slow)
    assert all(sb >= 0.003 for sb in out["b"])
    assert sorted(out["a"])[1] < 0.003


def test_min_time_extends_rounds_and_max_reps_caps_them():
    log: list[str] = []
    t0 = time.perf_counter()
    out = time_fn(_sleeper(0.002, log, "x"), "cpu", warmup=0, reps=2, min_time_s=0.05)
    assert time.perf_counter() - t0 >= 0.05
    assert len(out) > 2 and len(log) == len(out)
    assert sum(out[:-1]) < 0.05  # it stopped at the first round that reached the budget
    capped = time_fn(_sleeper(0.002), "cpu", warmup=0, reps=2, min_time_s=10.0, max_reps=5)
    assert len(capped) == 5


def test_budget_is_monotonic():
    b = Budget(reps=3, min_time_s=1.0, max_reps=10)
    assert b.more(0, 5.0) and b.more(2, 5.0)  # fewer than reps: always more
    assert b.more(3, 0.5) and not b.more(3, 1.0)  # then only while under min_time_s
    assert not b.more(10, 0.0)  # never past max_reps
    # once it says stop for some (done, spent), it says stop for any later point
    for done in range(3, 12):
        for spent in (1.0, 2.0):
            assert not b.more(done, spent)


@pytest.mark.parametrize("kwargs", [dict(reps=0), dict(min_time_s=-1.0), dict(reps=5, max_reps=2)])
def test_budget_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Budget(**kwargs)


def test_check_is_called_every_round_and_can_stop_timing():
    rounds = []

    def check():
        rounds.append(1)
        if len(rounds) > 3:
            raise TimeoutError("deadline")

    with pytest.raises(TimeoutError):
        time_fn(lambda: None, "cpu", warmup=0, reps=10, check=check)
    assert len(rounds) == 4


def test_flush_runs_between_reps_on_cpu():
    assert last_level_cache_bytes("cpu") > 0
    assert len(time_fn(lambda: None, "cpu", warmup=0, reps=3, flush_l2=True)) == 3


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="at least one"):
        time_interleaved({}, "cpu")
    with pytest.raises(ValueError, match="CUDA"):
        time_fn(lambda: None, "cpu", cuda_graph=True)
    with pytest.raises(ValueError, match="inner"):
        time_fn(lambda: None, "cpu", inner=0)


def test_cpu_peak_memory_sees_a_touched_allocation():
    nbytes = 96 << 20

    def alloc():
        t = torch.ones(nbytes // 4)  # ones: every page touched
        return float(t[-1])

    peak = peak_memory(alloc, "cpu")
    if cpu_peak_probe_kind() == "vmhwm":
        assert 0.8 * nbytes <= peak <= 1.5 * nbytes
    else:  # ru_maxrss never resets: it only sees growth past the lifetime peak
        assert peak >= 0
    assert peak_memory(lambda: None, "cpu") < 8 << 20


# ----------------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("flush", [False, True])
def test_cuda_event_timing(graph, flush):
    a = torch.randn(2048, 2048, device="cuda")
    out = torch.empty_like(a)
    samples = time_fn(lambda: torch.matmul(a, a, out=out), "cuda", warmup=2, reps=7,
                      cuda_graph=graph, flush_l2=flush)
    assert len(samples) == 7
    # 17 GFLOP: at least ~0.1 us, under a second on any GPU this suite targets
    assert all(1e-7 < s < 1.0 for s in samples)
    torch.testing.assert_close(out, a @ a, rtol=1e-4, atol=1e-3)  # cuBLAS may pick another algorithm


@pytest.mark.gpu
def test_cuda_interleaved_ratio_sees_the_larger_op():
    small = torch.randn(512, 512, device="cuda")
    big = torch.randn(4096, 4096, device="cuda")
    out = time_interleaved({"small": lambda: small @ small, "big": lambda: big @ big}, "cuda",
                           warmup=2, reps=5)
    assert all(b > s for s, b in zip(out["small"], out["big"]))


@pytest.mark.gpu
def test_cuda_peak_memory_counts_the_allocation():
    nbytes = 256 << 20
    peak = peak_memory(lambda: torch.empty(nbytes, dtype=torch.uint8, device="cuda"), "cuda")
    assert nbytes <= peak <= nbytes + (4 << 20)
    assert last_level_cache_bytes("cuda:0") >= 1 << 20
