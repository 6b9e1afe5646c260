"""Decoder-only Transformers: `transformer-rope` (rotary positions, RMSNorm, SwiGLU, LLaMA style) and
`transformer-vanilla` (learned absolute positions, LayerNorm, GELU MLP, GPT style).

Attention runs through torch's scaled_dot_product_attention (flash / cuDNN / memory-efficient
kernels on a GPU). Decoding appends to a preallocated KV cache that grows geometrically, so a step
costs one attention over the cache, not a copy of it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_goni.registry import backend

from .base import MLP, CausalLM, Chain, ModelConfig, Residual, SeqModule, build

Tensor = torch.Tensor


class KVCache:
    """Keys and values [B, H, T, D] in a buffer with spare room; ``length`` tokens are valid."""

    def __init__(self, k: Tensor, v: Tensor, extra: int = 256):
        b, h, t, d = k.shape
        self.k = k.new_empty(b, h, t + extra, d)
        self.v = v.new_empty(b, h, t + extra, v.shape[-1])
        self.k[:, :, :t] = k
        self.v[:, :, :t] = v
        self.length = t

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add one token's k, v [B, H, 1, D]; returns views of all valid keys and values."""
        if self.length == self.k.shape[2]:
            grow = max(256, self.length // 4)
            self.k = torch.cat([self.k, self.k.new_empty(*self.k.shape[:2], grow, self.k.shape[3])], 2)
            self.v = torch.cat([self.v, self.v.new_empty(*self.v.shape[:2], grow, self.v.shape[3])], 2)
        self.k[:, :, self.length: self.length + 1] = k
        self.v[:, :, self.length: self.length + 1] = v
        self.length += 1
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def state_nbytes(self) -> int:
        """The valid part only: what a KV cache of this context holds (spare room is not state)."""
        per_token = (self.k[:, :, :1].numel() * self.k.element_size()
                     + self.v[:, :, :1].numel() * self.v.element_size())
        return per_token * self.length


def rotary(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate pairs (i, i + D/2) of x [B, H, T, D] by position * base^(-2i/D) (RoFormer, NeoX layout)."""
    d = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # [T, D/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(SeqModule):
    """Multi-head causal self-attention; rotary on q, k when ``rope``."""

    def __init__(self, d_model: int, n_heads: int, rope: bool, bias: bool):
        super().__init__()
        self.n_heads, self.head_dim, self.rope = n_heads, d_model // n_heads, rope
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def _qkv(self, x: Tensor, start: int) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rope:
            pos = torch.arange(start, start + t, device=x.device)
            q, k = rotary(q, pos), rotary(k, pos)
        return q, k, v

    def _merge(self, o: Tensor) -> Tensor:
        b, _, t, _ = o.shape
        return self.out(o.transpose(1, 2).reshape(b, t, -1))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._qkv(x, 0)
        return self._merge(F.scaled_dot_product_attention(q, k, v, is_causal=True))

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        q, k, v = self._qkv(x, 0)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self._merge(o), KVCache(k, v)

    def step(self, x: Tensor, state: KVCache) -> tuple[Tensor, Any]:
        q, k, v = self._qkv(x[:, None], state.length)
        k_all, v_all = state.append(k, v)
        o = F.scaled_dot_product_attention(q, k_all, v_all)  # one query sees every cached key
        return self._merge(o)[:, 0], state


def _transformer(cfg: ModelConfig, rope: bool) -> CausalLM:
    d, d_ff = cfg.d_model, cfg.d_ff or 4 * cfg.d_model
    if rope:  # LLaMA-style: RMSNorm, SwiGLU with ~the same parameters as a 4d GELU MLP, no biases
        def norm() -> nn.Module:
            return nn.RMSNorm(d, eps=cfg.norm_eps)
        mlp_width = cfg.d_ff or int(2 * d_ff / 3)
        make_mlp = lambda: MLP(d, mlp_width, "swiglu", bias=False)  # noqa: E731
    else:  # GPT-style
        def norm() -> nn.Module:
            return nn.LayerNorm(d, eps=cfg.norm_eps)
        make_mlp = lambda: MLP(d, d_ff, "gelu", bias=True)  # noqa: E731
    layers = [
        Chain(Residual(norm(), Attention(d, cfg.n_heads, rope=rope, bias=not rope)),
              Residual(norm(), make_mlp()))
        for _ in range(cfg.n_layers)
    ]
    model = CausalLM(cfg, layers, final_norm=norm(), learned_positions=not rope, state_growth="linear")
    _scale_residual_init(model, cfg.n_layers)
    return model


def _scale_residual_init(model: nn.Module, n_layers: int, std: float = 0.02) -> None:
    """GPT-2 init: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2L)."""
    for name, p in model.named_parameters():
        if p.dim() == 2 and "embed" not in name and "head" not in name:
            scale = (2 * n_layers) ** -0.5 if name.endswith(("out.weight", "down.weight")) else 1.0
            nn.init.normal_(p, std=std * scale)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


@backend("transformer-rope")
def build_transformer_rope(**config: Any) -> nn.Module:
    """Decoder-only Transformer with rotary positions (RMSNorm, SwiGLU, SDPA attention, KV cache)."""
    return build("transformer-rope", config, None, lambda cfg, own: _transformer(cfg, rope=True))


@backend("transformer-vanilla")
def build_transformer_vanilla(**config: Any) -> nn.Module:
    """Decoder-only Transformer with learned absolute positions (LayerNorm, GELU, SDPA, KV cache)."""
    return build("transformer-vanilla", config, None, lambda cfg, own: _transformer(cfg, rope=False))
