"""The parity law for the deployment paths (models/decoding.py): prefill + steps through a StepRunner
(static buffers; a CUDA graph on the GPU) reproduce forward, for every backend. CPU runs the same
runner eagerly (the static KV cache, the in-buffer state copies, the host counters); tests marked
gpu capture and replay the graphs.
"""

from __future__ import annotations

import pytest
import torch
from pytest_goni.models import builtin_backends, kv_cache
from pytest_goni.models.cost import decode_cost, prefill_cost
from pytest_goni.models.decoding import PrefillRunner, StepRunner, clone_state

from pytest_goni.registry import load_builtins, resolve_backend

load_builtins()
TINY = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2, "max_seq_len": 128}
BACKENDS = builtin_backends()


def make(name: str, **over) -> torch.nn.Module:
    return resolve_backend(name)(**{**TINY, **over})


def tokens(b: int, t: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, TINY["vocab_size"], (b, t), generator=g).to(device)


def teacher_forced(model, x, split, steps, **runner_kw):
    """Logits of steps split..split+steps-1 through a StepRunner fed the true tokens."""
    _, state = model.prefill(x[:, :split])
    runner = StepRunner(model, x[:, split], state, max_steps=steps, **runner_kw)
    out = []
    for t in range(split, split + steps):
        out.append(runner.step().clone())
        if t + 1 < split + steps:
            runner.set_token(x[:, t + 1])
    return torch.stack(out, 1), runner


@pytest.mark.parametrize("name", BACKENDS)
def test_static_runner_reproduces_forward(name):
    model = make(name)
    x = tokens(2, 40)
    with torch.no_grad():
        full = model(x)
        got, runner = teacher_forced(model, x, 19, 12, graph=False)
    assert runner.mode == "eager (static buffers)"
    torch.testing.assert_close(got, full[:, 19:31], atol=2e-5, rtol=1e-5)
    state = runner.state
    if isinstance(state, dict) and "pos" in state and isinstance(state["pos"], int):
        assert state["pos"] == 31


def test_kv_cache_grows_when_full_and_counts_only_valid_tokens(monkeypatch):
    monkeypatch.setattr(kv_cache, "RESERVE", 2)
    model = make("transformer-rope")
    x = tokens(1, 70, seed=1)
    with torch.no_grad():
        full = model(x)
        _, state = model.prefill(x[:, :5])
        cache = state["layers"][0][0]
        assert cache.capacity == 64 and cache.n == 5 and int(cache.length) == 5  # 5 + 2, rounded up to 64
        for t in range(5, 70):
            logits, state = model.step(x[:, t], state)
            torch.testing.assert_close(logits, full[:, t], atol=2e-5, rtol=1e-5)
    assert cache.n == int(cache.length) == 70 and cache.capacity == 128  # grew once, by a quarter, rounded
    assert model.state_bytes(state) == 70 * 2 * 2 * 16 * 4 * 2  # tokens x (k+v) x heads x D x fp32 x layers


@pytest.mark.parametrize("name", ["transformer-vanilla", "gla"])
def test_greedy_generation_is_the_argmax_chain(name):
    model = make(name)
    x = tokens(2, 10, seed=2)
    with torch.no_grad():
        _, state = model.prefill(x)
        runner = StepRunner(model, x[:, -1], clone_state(state), max_steps=8, greedy=True, graph=False)
        got = runner.generate(8)
        tok, want = x[:, -1], []
        for _ in range(8):
            logits, state = model.step(tok, state)
            tok = logits.argmax(-1)
            want.append(tok)
    assert torch.equal(got, torch.stack(want, 1))
    with pytest.raises(RuntimeError, match="sized for 8 steps"):
        runner.step()


@pytest.mark.parametrize("name", ["gpt2", "transformer-rope", "mamba2"])
def test_prefill_returns_last_position_logits_by_default(name):
    model = make(name)
    x = tokens(2, 21, seed=3)
    with torch.no_grad():
        last, _ = model.prefill(x)
        every, _ = model.prefill(x, logits="all")
        again, _ = PrefillRunner(model, x, graph=False)()
    assert last.shape == (2, 1, TINY["vocab_size"]) and every.shape == (2, 21, TINY["vocab_size"])
    torch.testing.assert_close(last, every[:, -1:], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(again, last)
    with pytest.raises(ValueError, match="logits must be one of"):
        model.prefill(x, logits="first")


def test_floors_follow_the_state():
    attn, rec = make("transformer-rope"), make("gla")
    x = tokens(1, 64, seed=4)
    with torch.no_grad():
        _, s_attn16 = attn.prefill(x[:, :16])
        _, s_attn64 = attn.prefill(x)
        _, s_rec = rec.prefill(x)
    d16, d64 = decode_cost(attn, s_attn16), decode_cost(attn, s_attn64)
    kv_per_token = attn.state_bytes(s_attn64) // 64
    assert d64.bytes - d16.bytes == pytest.approx(48 * kv_per_token)
    weights = (attn.num_params(embedding=False) + 64 * 32) * 4
    assert d16.bytes >= weights and d16.flops >= 2 * (attn.num_params(embedding=False) + 64 * 32)
    r = decode_cost(rec, s_rec)
    assert r.bytes >= 2 * rec.state_bytes(s_rec)
    p = prefill_cost(attn, s_attn64, 1, 64)
    assert p.flops > 64 * d16.flops / 2 and p.floor_s(1e12, 1e12) == max(p.flops, p.bytes) / 1e12
    assert prefill_cost(attn, s_attn64, 1, 64, logits="all").bytes > p.bytes


# --------------------------------------------------------------------------- on the GPU


#: mincut-gated's step reads its position as a host int (rotary phases, window bookkeeping), so a
#: replay would reuse the captured position: it is decoded eagerly, not graphed.
GRAPHED = [b for b in BACKENDS if b != "mincut-gated"]


@pytest.mark.gpu
@pytest.mark.parametrize("name", GRAPHED)
def test_graphed_runner_reproduces_forward_on_cuda(name):
    model = make(name, d_model=64).to("cuda")
    x = tokens(2, 40, device="cuda")
    with torch.inference_mode():
        full = model(x).float()
        got, runner = teacher_forced(model, x, 19, 12, context=torch.inference_mode)
    assert runner.mode == "cuda graph"
    torch.testing.assert_close(got.float(), full[:, 19:31], atol=5e-3, rtol=5e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["transformer-rope", "gpt2", "gla", "gated-deltanet", "mamba2", "rwkv6",
                                  "groundthink"])
def test_graphed_greedy_equals_eager_greedy_on_cuda(name):
    model = make(name, d_model=64).to("cuda")
    x = tokens(1, 50, seed=5, device="cuda")
    with torch.inference_mode():
        _, state = model.prefill(x)
        eager = StepRunner(model, x[:, -1], clone_state(state), max_steps=20, greedy=True, graph=False)
        graphed = StepRunner(model, x[:, -1], state, max_steps=20, greedy=True, graph=True,
                             context=torch.inference_mode)
        a, b = eager.generate(20), graphed.generate(20)
    assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["transformer-rope", "gla", "mamba2"])
def test_graphed_prefill_equals_eager_on_cuda(name):
    model = make(name, d_model=64).to("cuda", torch.bfloat16)
    x = tokens(1, 300, seed=6, device="cuda")
    with torch.inference_mode():
        want, _ = model.prefill(x)
        runner = PrefillRunner(model, x, context=torch.inference_mode)
        got, _ = runner()
    assert runner.mode == "cuda graph"
    torch.testing.assert_close(got.float(), want.float(), atol=1e-2, rtol=1e-2)
