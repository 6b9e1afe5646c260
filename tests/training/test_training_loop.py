"""The shared training loop: chunked head loss, deferred loss reads, bit-for-bit CPU reproducibility,
compile fallback, and the timing split (first step apart from tokens/s)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytest_goni.models import builtin_backends

from pytest_goni import training
from pytest_goni.lm_data import WindowBatches
from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.training import (
    IGNORE_INDEX,
    HeldOut,
    LossModule,
    OptimConfig,
    evaluate_loss,
    has_chunked_head,
    train,
)

load_builtins()
TINY = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2, "max_seq_len": 64}
IDS = torch.randint(0, 64, (6000,), generator=torch.Generator().manual_seed(0))
CFG = OptimConfig(lr=1e-2, warmup=3)


def tiny(name: str = "gla") -> torch.nn.Module:
    return resolve_backend(name)(**TINY)


@pytest.mark.parametrize("name", builtin_backends())
def test_every_backend_scores_its_head_in_chunks(name):
    model = tiny(name)
    x = IDS[:3 * 20].view(3, 20)
    y = IDS[1:3 * 20 + 1].view(3, 20).clone()
    y[:, :4] = IGNORE_INDEX
    assert has_chunked_head(model)
    with torch.no_grad():
        logits = model(x)
        torch.testing.assert_close(model.head(model.features(x)), logits)
        ref = F.cross_entropy(logits.reshape(-1, 64), y.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum")
        torch.testing.assert_close(LossModule(model)(x, y), ref, rtol=1e-5, atol=1e-4)


def run(log_every: int, steps: int = 12, name: str = "gla", **kw) -> training.TrainResult:
    torch.manual_seed(0)
    return train(tiny(name), WindowBatches(IDS, 32, 4, seed=0), steps, CFG, log_every=log_every, **kw)


def test_cpu_training_is_bit_for_bit_reproducible_whatever_the_read_interval():
    first, again, every_step = run(5), run(5), run(1)
    assert first.losses == again.losses and first.grad_norms == again.grad_norms
    assert first.losses == every_step.losses  # reading losses later changes nothing they hold
    assert len(first.losses) == len(first.lrs) == len(first.grad_norms) == first.steps == 12
    assert first.tokens == 12 * 4 * 32 and first.timed_tokens == 11 * 4 * 32
    assert first.first_step_seconds > 0 and first.train_seconds > 0 and first.tokens_per_second > 0
    assert first.world_size == 1 and not first.compiled and first.compile_error is None


def test_a_non_finite_loss_stops_the_run_at_that_step():
    model = tiny()
    seen = []

    def poison() -> None:  # the deadline hook runs before each step's batch
        seen.append(1)
        if len(seen) == 4:
            with torch.no_grad():
                model.norm.weight.fill_(math.nan)

    res = train(model, WindowBatches(IDS, 32, 4, seed=0), 40, CFG, check=poison, log_every=2)
    assert res.steps == 4 and len(res.lrs) == 4 and res.tokens == 4 * 128
    assert all(math.isfinite(v) for v in res.losses[:3]) and math.isnan(res.losses[3])
    assert len(seen) < 40  # stopped within two read intervals, not at the end


def test_a_failing_compile_falls_back_to_eager(monkeypatch):
    def broken(fn, *a, **k):
        def call(*args, **kwargs):
            raise RuntimeError("backend compiler failed\nsecond line")
        return call

    monkeypatch.setattr(training.torch, "compile", broken)
    res = run(4, steps=5, compile=True)  # compile_loss follows compile: the whole forward fails to compile
    assert not res.compiled and res.compile_error == "RuntimeError: backend compiler failed\nsecond line"
    assert res.loss == "chunked, linear_cross_entropy (eager, torch chunk; features eager)"
    monkeypatch.undo()
    assert res.losses == run(4, steps=5).losses


def test_compile_default_is_on_only_for_long_cuda_runs():
    res = run(4, steps=2)
    assert res.compiled is False  # CPU: never by default
    assert res.loss == "chunked, linear_cross_entropy (eager, Triton chunk kernel on CUDA; features eager)"


def test_the_loss_compiles_with_the_features_whenever_the_loop_compiles(monkeypatch):
    """``compile_loss`` defaults to ``compile``: one compiled function, features + head + loss
    (the H200's faster step); ``compile_loss=False`` keeps the eager loss beside compiled features."""
    seen = []

    def record(fn, *a, **k):
        seen.append(getattr(fn, "__name__", type(fn).__name__))
        return fn  # run eagerly: which function the loop compiles is the point here

    monkeypatch.setattr(training.torch, "compile", record)
    res = run(4, steps=3, name="gpt2", compile=True)
    assert seen == ["model_loss"] and res.compiled
    assert res.loss == "chunked, compilable_linear_cross_entropy (in one graph with the features)"
    seen.clear()
    res = run(4, steps=3, name="gpt2", compile=True, compile_loss=False)
    assert seen == ["train_features"] and res.compiled  # GPT-2's plain forward, compiled alone
    assert res.loss == "chunked, linear_cross_entropy (eager, Triton chunk kernel on CUDA; features compiled)"
    seen.clear()
    res = run(4, steps=3, name="gpt2", compile=True, compile_loss=False, plain_forward=False)
    assert seen == ["features"] and res.forward == "GPT2Backend.features"


def test_evaluation_is_timed_apart_and_matches_evaluate_loss():
    val = [(IDS[:64].view(2, 32), IDS[1:65].view(2, 32))]
    torch.manual_seed(0)
    model = tiny()
    res = train(model, WindowBatches(IDS, 32, 4, seed=0), 6, CFG, evaluate=HeldOut(val), eval_every=2)
    assert [s for s, _ in res.eval_points] == [2, 4]
    assert math.isclose(HeldOut(val)(model), evaluate_loss(model, val, device="cpu"))


def test_compile_loss_eager_trains_as_the_default_loop_and_is_reproducible():
    """``compile_loss`` without compilation runs the torch-only chunked loss: the same run as the
    default loop up to rounding, and bit-for-bit the same run twice (the reproducibility gates)."""
    base = run(4, steps=6, name="gpt2")
    ours, again = run(4, steps=6, name="gpt2", compile_loss=True), run(4, steps=6, name="gpt2", compile_loss=True)
    assert ours.losses == again.losses and ours.grad_norms == again.grad_norms
    assert not ours.compiled and ours.compile_error is None
    torch.testing.assert_close(ours.losses, base.losses, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.grad_norms, base.grad_norms, rtol=1e-4, atol=1e-6)


def test_compile_loss_traces_one_graph_and_stays_bit_for_bit_reproducible(monkeypatch):
    """Features, head and chunked loss as ONE graph (no break, no recompile; dynamo traces the
    loss's autograd.Function), two runs equal bit for bit, and the eager loop's run up to rounding.
    Dynamo + AOTAutograd without Inductor (``aot_eager``): Inductor's C++ build costs ~40 s cold on
    the CPU; its code for the loss is checked in test_losses.py (marked slow)."""
    import functools

    from torch._dynamo.utils import counters

    monkeypatch.setattr(training.torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    torch._dynamo.reset()
    counters.clear()
    first = run(4, steps=4, name="gpt2", compile=True, compile_loss=True)
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    again = run(4, steps=4, name="gpt2", compile=True, compile_loss=True)
    torch._dynamo.reset()
    assert first.compiled and first.compile_error is None and (graphs, breaks) == (1, 0)
    assert first.forward == "GPT2Backend.train_features"  # the plain forward, the default
    assert first.losses == again.losses and first.grad_norms == again.grad_norms
    monkeypatch.undo()
    eager = run(4, steps=4, name="gpt2")
    torch.testing.assert_close(first.losses, eager.losses, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first.grad_norms, eager.grad_norms, rtol=1e-4, atol=1e-6)


def test_gpt2_trains_through_its_plain_forward_reproducibly_and_as_transformers_does():
    """The loop's default for GPT-2 is ``train_features`` (the plain forward over transformers'
    weights): bit-for-bit the same run twice, the transformers-forward run (``plain_forward=False``)
    up to float32 rounding, and evaluation untouched; other backends train through ``features``."""
    plain, again = run(4, steps=6, name="gpt2"), run(4, steps=6, name="gpt2")
    hf = run(4, steps=6, name="gpt2", plain_forward=False)
    assert plain.forward == "GPT2Backend.train_features" and hf.forward == "GPT2Backend.features"
    assert plain.losses == again.losses and plain.grad_norms == again.grad_norms
    torch.testing.assert_close(plain.losses, hf.losses, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain.grad_norms, hf.grad_norms, rtol=1e-4, atol=1e-6)
    assert run(4, steps=2).forward == "CausalLM.features"  # gla: no plain forward of its own


def test_plain_gpt2_loss_is_one_dynamo_graph_without_breaks():
    """``torch._dynamo.explain`` of the function the loop compiles (features through the plain
    forward, head, chunked loss): one graph, no break."""
    from pytest_goni.training import model_loss

    model = tiny("gpt2").train()
    x, y = IDS[:2 * 37].view(2, 37), IDS[1:2 * 37 + 1].view(2, 37)
    torch._dynamo.reset()
    try:
        info = torch._dynamo.explain(model_loss)(model, x, y, True, True)
    finally:
        torch._dynamo.reset()
    assert (info.graph_count, info.graph_break_count) == (1, 0), info.break_reasons


class Scripted:
    """A stub ``evaluate``: the next of a scripted list of validation accuracies per call."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.calls = list(values), 0

    def __call__(self, model: torch.nn.Module) -> float:
        self.calls += 1
        return self.values[self.calls - 1]


def test_stop_at_ends_the_run_at_the_first_evaluation_that_reaches_it():
    """Early stopping: the run stops after the first evaluation at or above ``stop_at`` (step 6 of
    12, evaluated every 2), and the steps it ran are exactly the full run's first steps (same data,
    same order, same schedule); without ``stop_at`` the run is the one it always was."""
    full = run(4, steps=12, evaluate=Scripted([0.5, 0.98, 0.99, 1.0, 1.0]), eval_every=2)
    plain = run(4, steps=12)
    stop = run(4, steps=12, evaluate=Scripted([0.5, 0.98, 0.99, 1.0, 1.0]), eval_every=2, stop_at=0.99)
    assert full.stopped_at is None and full.steps == 12 and [s for s, _ in full.eval_points] == [2, 4, 6, 8, 10]
    assert plain.losses == full.losses and plain.lrs == full.lrs  # evaluating changes nothing either
    assert stop.stopped_at == 6 and stop.steps == 6 and stop.eval_points == [(2, 0.5), (4, 0.98), (6, 0.99)]
    assert stop.losses == full.losses[:6] and stop.lrs == full.lrs[:6] and stop.grad_norms == full.grad_norms[:6]
    assert stop.tokens == 6 * 4 * 32
    never = run(4, steps=12, evaluate=Scripted([0.5] * 5), eval_every=2, stop_at=0.99)
    assert never.stopped_at is None and never.losses == full.losses


def test_stop_at_needs_an_evaluation():
    with pytest.raises(ValueError, match="stop_at needs an evaluate function"):
        run(4, steps=2, stop_at=0.99)
