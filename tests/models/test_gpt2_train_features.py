"""GPT-2's plain training forward (``train_features``) against transformers' forward (``features``)
at the same weights: values and every parameter's gradient, float64 (to rounding) and bf16
autocast, dropout off and on (the same random masks for the same seed), T not a power of two; and
the padded LM head composes with it (same loss and gradients)."""

from __future__ import annotations

import pytest
import torch
from pytest_goni.models.gpt2 import build_gpt2

from pytest_goni.losses import compilable_linear_cross_entropy, linear_cross_entropy

TINY = {"vocab_size": 61, "d_model": 32, "n_layers": 2, "n_heads": 4, "max_seq_len": 64}


def perturbed(dtype: torch.dtype = torch.float64, dropout: float = 0.0) -> torch.nn.Module:
    """A tiny GPT-2 in train mode with every parameter moved off its init (biases and LayerNorm
    gains are 0 and 1 at init, which would hide a missing or swapped one)."""
    torch.manual_seed(0)
    model = build_gpt2(**TINY).to(dtype).train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = dropout
    return model


def values_and_grads(model: torch.nn.Module, fn, x: torch.Tensor, seed: int = 7, autocast: bool = False):
    """``fn(x)`` and d(sum(fn(x) * R))/d(every parameter), R fixed; the RNG seeded before the call."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = fn(x)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (out.double() * r).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_float64_values_and_gradients_equal_transformers_forward(dropout):
    model = perturbed(dropout=dropout)
    x = torch.randint(0, TINY["vocab_size"], (3, 37), generator=torch.Generator().manual_seed(2))
    ref, ref_g = values_and_grads(model, model.features, x)
    out, g = values_and_grads(model, model.train_features, x)
    assert out.shape == (3, 37, 32) and out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert set(g) == set(ref_g) and len(g) == 4 + 12 * 2  # wte wpe ln_f (2); 12 tensors per block
    for name in ref_g:
        torch.testing.assert_close(g[name], ref_g[name], rtol=1e-11, atol=1e-12, msg=name)
    if dropout:  # dropout really ran: another seed gives other values, eval mode none
        other, _ = values_and_grads(model, model.train_features, x, seed=8)
        assert (other - out).abs().max() > 1e-3
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model.train_features(x), model.features(x), rtol=1e-12, atol=1e-12)


def test_bf16_autocast_matches_transformers_forward_within_bf16_rounding():
    model = perturbed(torch.float32)
    x = torch.randint(0, TINY["vocab_size"], (2, 45), generator=torch.Generator().manual_seed(3))
    ref, ref_g = values_and_grads(model, model.features, x, autocast=True)
    out, g = values_and_grads(model, model.train_features, x, autocast=True)
    assert out.dtype == ref.dtype
    torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)
    for name in ref_g:
        scale = ref_g[name].abs().max().clamp_min(1e-6)
        assert (g[name] - ref_g[name]).abs().max() / scale < 3e-2, name


@pytest.mark.parametrize("form", ["eager", "compilable"])
def test_padded_head_composes_with_the_plain_forward(form):
    """Loss and gradients of plain forward + head padded to a multiple of 64 equal transformers'
    forward + unpadded head (float64)."""
    model = perturbed()
    x = torch.randint(0, TINY["vocab_size"], (2, 29), generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, TINY["vocab_size"], (2, 29), generator=torch.Generator().manual_seed(5))
    y[:, :3] = -100
    loss_fn = linear_cross_entropy if form == "eager" else compilable_linear_cross_entropy

    def loss(features, pad: int):
        model.zero_grad(set_to_none=True)
        value = loss_fn(features(x), model.head.weight, y, chunk=16, pad_vocab=pad)
        value.backward()
        return value.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    ref, ref_g = loss(model.features, 0)
    out, g = loss(model.train_features, 64)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for name in ref_g:
        torch.testing.assert_close(g[name], ref_g[name], rtol=1e-11, atol=1e-12, msg=name)


def test_checks_its_input_like_features():
    model = perturbed()
    with pytest.raises(ValueError, match="past max_seq_len"):
        model.train_features(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError):
        model.train_features(torch.full((1, 4), 61))


def test_refuses_transformers_switches_it_does_not_reproduce():
    model = perturbed()
    model.hf.config.add_cross_attention = True
    with pytest.raises(ValueError, match="plain_forward=False"):
        model.train_features(torch.zeros(1, 4, dtype=torch.long))


def sdpa_calls(fn, *args) -> list[dict]:
    """The keyword arguments of every SDPA call in the graph dynamo captures of ``fn(*args)``."""
    calls: list[dict] = []

    def backend(gm, inputs):
        for node in gm.graph.nodes:
            if node.target is torch.nn.functional.scaled_dot_product_attention:
                calls.append({"attn_mask": node.kwargs.get("attn_mask", node.args[3] if len(node.args) > 3 else None),
                              "is_causal": node.kwargs.get("is_causal", False)})
        return gm.forward

    torch._dynamo.reset()
    try:
        torch.compile(fn, backend=backend, fullgraph=True)(*args)
    finally:
        torch._dynamo.reset()
    return calls


def test_compiled_plain_forward_calls_causal_sdpa_without_a_mask():
    """Under torch.compile transformers builds a [B, 1, T, T] mask and calls SDPA with it and
    is_causal=False (its masking_utils skip the mask only eager, or compiled on torch >= 2.14),
    which rules out the flash kernel and its causal block skipping on CUDA. The plain forward's
    graph must call SDPA with is_causal=True and no mask, in every layer."""
    model = perturbed(torch.float32)
    x = torch.randint(0, TINY["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(6))
    calls = sdpa_calls(model.train_features, x)
    assert calls == [{"attn_mask": None, "is_causal": True}] * TINY["n_layers"]
