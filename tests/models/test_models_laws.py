"""The laws every backend obeys (issue 4), checked on CPU at tiny sizes for every registered backend.

- prefill + repeated step reproduces forward logits (fp32, tight tolerance) at several split points,
  the total length 83 being a multiple of no kernel chunk size (16, 64);
- gradients reach every parameter; loss falls on a tiny overfit batch;
- state_bytes grows linearly with context for attention, stays constant for recurrent models;
- the same seed gives the same weights, another seed other weights.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytest_goni.kernels import chunked
from pytest_goni.models import builtin_backends

from pytest_goni.registry import load_builtins, resolve_backend

load_builtins()

TINY = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2, "max_seq_len": 128}
BACKENDS = builtin_backends()  # every registered backend obeys the laws
ATTENTION = {"gpt2", "transformer-rope", "transformer-vanilla"}
RECURRENT = {"lstm", "gru", "gla", "retnet", "deltanet", "gated-deltanet", "rwkv6", "rwkv7", "mamba2",
             "groundthink"}
TOTAL = 83
SPLITS = (1, 16, 67)  # prefill lengths: 1 token, exactly one vector chunk, past a scalar chunk


def make(name: str, **over) -> torch.nn.Module:
    return resolve_backend(name)(**{**TINY, **over})


def tokens(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, TINY["vocab_size"], (b, t), generator=g)


def test_every_backend_of_the_issue_is_registered():
    assert ATTENTION | RECURRENT <= set(BACKENDS)


def test_total_length_is_a_multiple_of_no_chunk_size():
    for chunk in (chunked.VECTOR_CHUNK, chunked.SCALAR_CHUNK):
        assert TOTAL % chunk and 67 % chunk


@pytest.mark.parametrize("name", BACKENDS)
def test_prefill_then_steps_reproduce_forward(name):
    model = make(name)
    x = tokens(2, TOTAL)
    with torch.no_grad():
        full = model(x)
        assert full.shape == (2, TOTAL, TINY["vocab_size"]) and full.dtype == torch.float32
        for split in SPLITS:
            logits, state = model.prefill(x[:, :split], logits="all")
            torch.testing.assert_close(logits, full[:, :split], atol=2e-5, rtol=1e-5)
            end = min(TOTAL, split + 17)  # each run of steps crosses a chunk boundary
            for t in range(split, end):
                step_logits, state = model.step(x[:, t], state)
                torch.testing.assert_close(
                    step_logits, full[:, t], atol=2e-5, rtol=1e-5,
                    msg=lambda m, t=t, s=split: f"step at t={t} after prefill {s}: {m}")


@pytest.mark.parametrize("name", BACKENDS)
def test_gradients_reach_every_parameter(name):
    model = make(name).train()
    x = tokens(2, 40, seed=1)
    loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
    loss.backward()
    dead = [n for n, p in model.named_parameters()
            if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not dead, f"{name}: no (finite, non-zero) gradient for {dead}"


@pytest.mark.parametrize("name", BACKENDS)
def test_loss_falls_on_a_tiny_overfit_batch(name):
    model = make(name).train()
    x = tokens(4, 33, seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"


@pytest.mark.parametrize("name", BACKENDS)
def test_state_bytes_follow_the_architecture(name):
    model = make(name)
    x = tokens(1, 64, seed=3)
    with torch.no_grad():
        _, s16 = model.prefill(x[:, :16])
        b16 = model.state_bytes(s16)
        _, s32 = model.prefill(x[:, :32])
        b32 = model.state_bytes(s32)
        _, s33 = model.step(x[:, 32], s32)
        b33 = model.state_bytes(s33)
    assert b16 > 0
    growth = model.state_growth
    if name in ATTENTION | RECURRENT:  # backends added later declare their own
        assert growth == ("linear" if name in ATTENTION else "constant")
    if growth == "linear":  # a KV cache: bytes per token times tokens
        assert b32 == 2 * b16 and b33 == b32 + b16 // 16
    elif growth == "constant":  # a recurrent state: the same size whatever the context
        assert b16 == b32 == b33
    else:  # bounded (a window): never shrinks as context grows
        assert growth == "bounded" and b16 <= b32 <= b33


@pytest.mark.parametrize("name", BACKENDS)
def test_same_seed_same_weights(name):
    a, b, c = make(name, seed=7), make(name, seed=7), make(name, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", BACKENDS)
def test_building_leaves_the_global_rng_alone(name):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make(name)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", BACKENDS)
def test_bfloat16_runs_all_three_forms(name):
    """The GPU benchmark runs bf16: every form must accept it (values are checked in fp32 above)."""
    model = make(name, dtype="bfloat16")
    x = tokens(1, 20, seed=4)
    with torch.no_grad():
        full = model(x)
        logits, state = model.prefill(x[:, :19])
        step_logits, state = model.step(x[:, 19], state)
    assert full.dtype == logits.dtype == step_logits.dtype == torch.bfloat16
    assert torch.isfinite(full).all() and torch.isfinite(step_logits).all()
    # bf16 keeps ~3 significant digits: prefill+step agree with forward to that precision
    torch.testing.assert_close(step_logits.float(), full[:, 19].float(), atol=0.1, rtol=0.05)


@pytest.mark.parametrize("name", BACKENDS)
def test_num_params_counts_unique_parameters(name):
    model = make(name)
    unique = {id(p): p.numel() for p in model.parameters()}
    assert model.num_params() == sum(unique.values())
    emb = model.num_params(embedding=False)
    assert 0 < emb < model.num_params()
    # the token table is the only vocab-sized thing left out for the untied-free stacks
    assert model.num_params() - emb >= TINY["vocab_size"] * TINY["d_model"]
