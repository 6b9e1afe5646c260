"""The transformer backends' attention against a float64 reference written from the definitions
(issue 17: is attention on MQAR faithful or buggy?). The kernel-level RoPE test checks ``rotate``;
these check the layer the model trains: which dims and positions are rotated, that v is not, that
positions start at 0 for every sequence, the 1/sqrt(head_dim) scale and the causal mask."""

from __future__ import annotations

import math

import pytest
import torch
from pytest_goni.models.transformer import Attention


def _rope_reference(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoFormer rotation in the NeoX half-split layout: the pair (x_i, x_{i+D/2}) at position t is
    the complex number x_i + j x_{i+D/2} times exp(j t base^(-2i/D)); x [B, H, T, D]."""
    d, t = x.shape[-1], x.shape[-2]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    phase = torch.polar(torch.ones(t, d // 2, dtype=torch.float64),
                        torch.arange(t, dtype=torch.float64)[:, None] * theta[None, :])
    z = torch.complex(x[..., : d // 2], x[..., d // 2:]) * phase
    return torch.cat([z.real, z.imag], dim=-1)


def _attention_reference(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh) + causal mask) v, heads split as (3, H, Dh) of the qkv output."""
    b, t, d = x.shape
    h, dh = attn.n_heads, d // attn.n_heads
    w, bias = attn.qkv.weight.double(), None if attn.qkv.bias is None else attn.qkv.bias.double()
    qkv = torch.nn.functional.linear(x, w, bias).view(b, t, 3, h, dh)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [B, H, T, Dh]
    if attn.rope:
        q, k = _rope_reference(q), _rope_reference(k)
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    future = torch.ones(t, t, dtype=torch.bool).triu(1)
    o = scores.masked_fill(future, -math.inf).softmax(-1) @ v  # [B, H, T, Dh]
    out_b = None if attn.out.bias is None else attn.out.bias.double()
    return torch.nn.functional.linear(o.transpose(1, 2).reshape(b, t, d), attn.out.weight.double(), out_b)


@pytest.mark.parametrize("rope", [True, False], ids=["rope", "vanilla"])
@pytest.mark.parametrize("heads", [1, 4])
def test_attention_forward_equals_the_definition(rope: bool, heads: int) -> None:
    torch.manual_seed(0)
    attn = Attention(32, heads, rope=rope, bias=not rope).double()
    for p in attn.parameters():  # weights large enough that the softmax is far from uniform
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, 11, 32, dtype=torch.float64)
    tol = 1e-5 if rope else 1e-9  # rotary angles are taken in float32 by design (kernels/kv_attention.py)
    torch.testing.assert_close(attn(x), _attention_reference(attn, x), rtol=tol, atol=tol)


def test_rope_scores_depend_on_offset_only_and_positions_restart_per_sequence() -> None:
    """A sequence S and the same S after a prefix P: the q.k scores among S's tokens are equal
    (rotation by relative offset, positions 0.. for every call), v is the same (not rotated),
    and q itself differs (it is rotated)."""
    torch.manual_seed(1)
    attn = Attention(16, 2, rope=True, bias=False).double()
    s, prefix = torch.randn(1, 6, 16, dtype=torch.float64), torch.randn(1, 5, 16, dtype=torch.float64)
    q1, k1, v1 = attn._qkv(s, 0)
    q2, k2, v2 = (t[:, :, 5:] for t in attn._qkv(torch.cat([prefix, s], dim=1), 0))
    torch.testing.assert_close(q1 @ k1.transpose(-1, -2), q2 @ k2.transpose(-1, -2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-12)  # not bit-exact: BLAS blocks 6 and 11 rows differently
    assert (q1 - q2).abs().max() > 1e-3
    q3, _, _ = attn._qkv(s, 0)  # a second call starts at position 0 again
    torch.testing.assert_close(q1, q3, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["transformer-rope", "transformer-vanilla"])
def test_model_output_at_t_ignores_later_tokens(name: str) -> None:
    from pytest_goni.registry import load_builtins, resolve_backend

    load_builtins()
    model = resolve_backend(name)(vocab_size=40, d_model=16, n_layers=2, n_heads=2, max_seq_len=16)
    x = torch.randint(0, 40, (1, 12))
    y = x.clone()
    y[0, 7:] = (y[0, 7:] + 1) % 40
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=0)
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-6
