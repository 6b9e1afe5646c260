"""prefill / decode / memory / context_scaling kinds on tiny models, OOM as a data point, crossovers."""

from __future__ import annotations

import math

import pytest

from pytest_goni.inference import fixed_shape_state, parse_entries, sdpa_backends_used
from pytest_goni.measurements.context_scaling import _interpolate
from pytest_goni.measurements.memory import parse_cap
from pytest_goni.plots import plot_latency_vs_context

TF = {"backend": "transformer-rope", "d_model": 32, "n_layers": 1, "n_heads": 2, "vocab_size": 64}
TOY = {"backend": "sys02-test-recurrent", "d_model": 16, "vocab_size": 64}


def test_model_entries_and_labels():
    entries = parse_entries(["a", {"model": "b", "sdpa": "math"}, {"model": "b", "label": "bb"}])
    assert [e.label for e in entries] == ["a", "b_math", "bb"] and entries[1].sdpa == "math"
    with pytest.raises(ValueError, match="unique"):
        parse_entries(["a", {"model": "a"}])


def test_prefill_every_metric_with_unit_and_sdpa_backend_recorded(make_ctx, run_kind):
    ctx = make_ctx({"tf": TF, "toy": TOY}, "pf")
    out = run_kind("prefill", ctx, {"models": ["toy", "tf", {"model": "tf", "sdpa": "math"}],
                                    "contexts": [16, 64], "batch_sizes": [1, 2], "reps": 3})
    for key, m in out.items():
        assert all(math.isfinite(s) and s >= 0 for s in m.samples), key
    lat, tps = out["tf.64.b2.latency"], out["tf.64.b2.tok_s"]
    assert len(lat.samples) == 3
    assert tps.samples == pytest.approx([2 * 64 / s for s in lat.samples])
    assert out["tf.64.latency"].meta["sdpa_backends"]  # the transformer ran some SDPA backend
    assert out["tf_math.64.latency"].meta["sdpa_backends"] == ["math"]
    assert out["toy.64.latency"].meta["sdpa_backends"] == []
    assert out["tf.64.peak_mem"].value() > 0


@pytest.mark.parametrize("kind", ["prefill", "decode"])
def test_an_oom_is_a_data_point_and_the_other_models_go_on(make_ctx, run_kind, kind):
    models = {"small": {"backend": "sys02-test-fails-above", "limit": 64, "vocab_size": 64}, "toy": TOY}
    out = run_kind(kind, make_ctx(models, kind), {"models": ["small", "toy"], "contexts": [32, 128, 256],
                                                  "reps": 2})
    assert math.isfinite(out["small.32.latency"].value())
    assert out["small.32.latency"].meta["interleaved_with"] == ["small", "toy"]
    assert math.isnan(out["small.128.latency"].value()) and out["small.128.latency"].note.startswith("OOM at 128")
    assert out["small.256.latency"].note.startswith("not run: OOM at 128")
    assert all(math.isfinite(out[f"toy.{t}.latency"].value()) for t in (32, 128, 256))
    assert out["toy.256.latency"].meta["interleaved_with"] == ["toy"]


def test_prefill_best_of_picks_the_fastest_label(make_ctx, run_kind):
    models = {"slow": {"backend": "sys02-test-sleep", "linear": 1e-3, "vocab_size": 16},
              "fast": {"backend": "sys02-test-sleep", "linear": 1e-5, "vocab_size": 16}}
    out = run_kind("prefill", make_ctx(models, "best"),
                   {"models": ["slow", "fast"], "contexts": [64], "reps": 2, "memory": False,
                    "best_of": {"best": ["slow", "fast"]}})
    assert out["best.64.latency"].meta["chosen"] == "fast"
    assert out["best.64.latency"].samples == out["fast.64.latency"].samples


def test_a_forced_sdpa_backend_that_cannot_run_is_recorded(make_ctx, run_kind):
    out = run_kind("prefill", make_ctx({"tf": TF}, "cudnn"),
                   {"models": ["tf", {"model": "tf", "sdpa": "cudnn"}], "contexts": [32, 64], "reps": 2,
                    "memory": False, "best_of": {"best": ["tf", "tf_cudnn"]}})
    if math.isfinite(out["tf_cudnn.32.latency"].value()):
        pytest.skip("cuDNN attention ran here")
    assert out["tf_cudnn.32.latency"].note.startswith("SDPA backend unavailable at 32 tokens")
    assert not out["tf_cudnn.32.latency"].meta["oom"]
    assert out["tf_cudnn.64.latency"].note.startswith("not run: SDPA backend unavailable")
    assert out["best.64.latency"].meta["chosen"] == "tf" and math.isfinite(out["tf.64.latency"].value())


def test_decode_state_grows_for_attention_and_not_for_recurrence(make_ctx, run_kind):
    ctx = make_ctx({"tf": TF, "toy": TOY}, "dec")
    out = run_kind("decode", ctx, {"models": ["tf", "toy"], "contexts": [32, 128], "reps": 4, "warmup": 1})
    for label in ("tf", "toy"):  # one step's kernel launches, counted, with what was counted
        n = out[f"{label}.32.launches"]
        assert n.value() > 0 and n.value() == out[f"{label}.128.launches"].value() and "aten" in n.note
    assert out["tf.128.state_bytes"].value() == 4 * out["tf.32.state_bytes"].value()
    assert out["toy.128.state_bytes"].value() == out["toy.32.state_bytes"].value() > 0
    assert out["tf.128.tok_s"].samples == pytest.approx([1 / s for s in out["tf.128.latency"].samples])
    assert out["toy.32.latency"].meta["step_mode"] == "eager (CPU)"


def test_fixed_shape_state_tells_recurrent_from_kv_cache():
    import torch

    s = {"pos": 3, "layers": [torch.zeros(2, 4), [torch.zeros(3)]]}
    assert fixed_shape_state(s, {"pos": 4, "layers": [torch.ones(2, 4), [torch.ones(3)]]})
    assert not fixed_shape_state(s, {"pos": 4, "layers": [torch.ones(2, 5), [torch.ones(3)]]})
    assert not fixed_shape_state({"kv": object()}, {"kv": object()})


def test_memory_oom_is_a_data_point_and_later_contexts_are_skipped(make_ctx, run_kind, tmp_path):
    alloc = {"backend": "sys02-test-alloc", "bytes_per_token2": 4.0, "vocab_size": 64}
    ctx = make_ctx({"quad": alloc, "toy": TOY}, "mem")
    # scores of 4*T^2 B: 4 MiB at 1024, 64 MiB at 4096, 1 GiB at 16384; cap 32 MiB
    out = run_kind("memory", ctx, {"models": ["quad", "toy"], "contexts": [256, 1024, 4096, 16384],
                                   "memory_cap": "32 MiB"})
    assert out["quad.1024.peak_mem"].value() >= 4 * 1024 * 1024
    oom = out["quad.4096.peak_mem"]
    assert oom.meta["oom"] and oom.note.startswith("OOM at 4096 tokens")
    assert oom.value() >= 64 * 2**20  # the memory at the moment of failure: the measured peak
    assert math.isnan(out["quad.16384.peak_mem"].value())
    assert "not run" in out["quad.16384.peak_mem"].note
    assert out["quad.oom_context"].value() == 4096 and out["quad.max_context_ok"].value() == 1024
    assert out["quad.oom_bytes"].value() == oom.value()
    # the next model still ran every context: the failure did not leak
    assert out["toy.max_context_ok"].value() == 16384 and math.isnan(out["toy.oom_context"].value())
    assert "no OOM up to 16384" in out["toy.oom_context"].note
    assert (tmp_path / "artifacts" / "sys02test.mem.peak-memory-vs-context.png").read_bytes()[:4] == b"\x89PNG"


def test_memory_guard_refuses_a_context_far_past_the_cap(make_ctx, run_kind):
    alloc = {"backend": "sys02-test-alloc", "bytes_per_token2": 4.0, "vocab_size": 64}
    # 65536 tokens would need 16 GiB: the address-space guard refuses it; still a data point
    out = run_kind("memory", make_ctx({"quad": alloc}, "mem2"),
                   {"models": ["quad"], "contexts": [512, 65536], "memory_cap": "16 MiB"})
    assert out["quad.oom_context"].value() == 65536
    assert out["quad.max_context_ok"].value() == 512


def test_memory_cap_parsing():
    assert parse_cap("512 MiB") == 512 * 2**20 and parse_cap(1000) == 1000 and parse_cap(None) is None
    with pytest.raises(ValueError, match="amount of memory"):
        parse_cap("5 ms")


def _sleepers(cand: dict, base: dict) -> dict:
    return {"cand": {"backend": "sys02-test-sleep", "vocab_size": 16, **cand},
            "base": {"backend": "sys02-test-sleep", "vocab_size": 16, **base}}


def test_context_scaling_finds_and_refines_the_crossover(make_ctx, run_kind, tmp_path):
    # candidate 60 us/token, baseline 60 ns/token^2: equal at T = 1000 (sleeps long enough that the
    # toy model's own microseconds and a busy 2-core CI host do not move the crossover much; from 512
    # tokens: the baseline's 3.9 ms sleep at 256 read 1.7x long in a loaded run, its exponent 1.72)
    models = _sleepers({"linear": 6e-5}, {"quadratic": 6e-8})
    params = {"candidate": "cand", "baseline": "base", "contexts": [512, 1024, 2048, 4096], "reps": 2,
              "refine_steps": 2, "round_to": 16}
    out = run_kind("context_scaling", make_ctx(models, "cs"), params)
    cross = out["crossover"]
    assert 700 < cross.value() < 1400, cross.note
    lo, hi = cross.meta["bracket"]
    assert 512 <= lo < hi <= 1024 and hi - lo < 1024 - 512  # bisection narrowed the bracket
    assert len(cross.meta["probes"]) == 2
    assert out["cand.exponent"].value() == pytest.approx(1.0, abs=0.2)
    assert out["base.exponent"].value() == pytest.approx(2.0, abs=0.2)
    assert out["speedup_at_max"].value() == pytest.approx(4.0, rel=0.3)
    assert (tmp_path / "artifacts" / "sys02test.cs.latency-vs-context.png").read_bytes()[:4] == b"\x89PNG"


def test_context_scaling_without_crossover_is_a_result(make_ctx, run_kind):
    # candidate slower everywhere, by 60x at 256 tokens: a busy 2-core host's sleep overshoot (a few
    # ms) must not make the baseline's 0.26 ms sleep read slower than the candidate's 16 ms
    models = _sleepers({"quadratic": 2.5e-7}, {"linear": 1e-6})
    out = run_kind("context_scaling", make_ctx(models, "cs2"),
                   {"candidate": "cand", "baseline": "base", "contexts": [256, 1024], "reps": 2})
    assert math.isnan(out["crossover"].value())
    assert out["crossover"].note.startswith("no crossover in range")
    assert out["speedup_at_max"].value() < 1


def test_context_scaling_counts_an_oom_baseline_as_infinitely_slow_from_there_on(make_ctx, run_kind):
    models = {"cand": {"backend": "sys02-test-recurrent", "vocab_size": 16},
              "base": {"backend": "sys02-test-fails-above", "vocab_size": 16, "limit": 512}}
    out = run_kind("context_scaling", make_ctx(models, "cs3"),
                   {"candidate": "cand", "baseline": "base", "contexts": [256, 512, 1024, 2048], "reps": 2})
    for t in (1024, 2048):
        lat = out[f"base.{t}.latency"]
        assert math.isnan(lat.value()) and lat.meta["oom"] and "1024" in lat.note
    assert out["base.512.latency"].value() > 0 and out["cand.2048.latency"].value() > 0
    assert out["crossover"].value() <= 1024  # the candidate wins outright where the baseline failed
    assert out["speedup_at_max"].value() == math.inf  # the baseline could not run at the longest context


def test_crossover_through_an_oom_is_the_first_context_where_the_baseline_failed():
    assert _interpolate(1024, 0.5, 4096, -math.inf) == 4096
    assert _interpolate(1000, math.log(2), 4000, -math.log(2)) == pytest.approx(2000)


def test_sdpa_backend_detection_sees_math():
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 2, 8, 4)
    with sdpa_kernel([SDPBackend.MATH]):
        used = sdpa_backends_used(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert used == ["math"]


def test_latency_plot_without_crossover(tmp_path):
    p = plot_latency_vs_context({"a": ([1, 2, 4], [1.0, 2.0, math.nan])}, tmp_path / "x.png",
                                crossover=math.nan, oom={"a": 4})
    assert p.read_bytes()[:4] == b"\x89PNG"


def test_cpu_threads_is_restored():
    import torch

    from pytest_goni.device import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1, "cpu"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with cpu_threads(None, "cpu"):
        assert torch.get_num_threads() == before
