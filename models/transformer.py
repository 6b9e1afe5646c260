"""Decoder-only Transformers: `transformer-rope` (rotary positions, RMSNorm, SwiGLU, LLaMA style) and
`transformer-vanilla` (learned absolute positions, LayerNorm, GELU MLP, GPT style).

Prefill attention runs through torch's scaled_dot_product_attention (flash / cuDNN kernels on a
GPU). Decoding writes into a static, preallocated KV cache (models/kv_cache.py) and attends one
query over it with `kernels.kv_decode` (fused rotary + append, masked SDPA): no copy per token, no
host sync, fixed shapes, so the whole step can be replayed from a CUDA graph.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pytest_goni.kernels.kv_attention import kv_decode, rotary_inv_freq, rotate
from torch import nn

from pytest_goni.registry import backend

from . import fusion
from .base import MLP, CausalLM, Chain, ModelConfig, Residual, SeqModule, build
from .kv_cache import KVCache

Tensor = torch.Tensor


class Attention(SeqModule):
    """Multi-head causal self-attention; rotary on q, k when ``rope``."""

    def __init__(self, d_model: int, n_heads: int, rope: bool, bias: bool):
        super().__init__()
        self.n_heads, self.head_dim, self.rope = n_heads, d_model // n_heads, rope
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)
        self._inv_freq: Tensor | None = None  # float32 always (a buffer would follow .to(bf16))

    def inv_freq(self, device: torch.device) -> Tensor | None:
        if not self.rope:
            return None
        if self._inv_freq is None or self._inv_freq.device != device:
            self._inv_freq = rotary_inv_freq(self.head_dim, device=device)
        return self._inv_freq

    def _qkv(self, x: Tensor, start: int) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rope:
            pos = torch.arange(start, start + t, device=x.device)
            inv = self.inv_freq(x.device)
            q, k = rotate(q, pos, inv), rotate(k, pos, inv)
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
        return self._step_from(self.qkv(x), state)

    def step_prenorm(self, x: Tensor, pending: Tensor | None, norm: nn.Module, state: KVCache
                     ) -> tuple[Tensor, Tensor, Any]:
        """(h, step(norm(h)), state), h = x + pending: the add and norm inside the qkv GEMV."""
        h, (qkv,) = fusion.norm_split_linear(x, pending, norm, self, "qkv", (self.qkv,))
        return (h, *self._step_from(qkv, state))

    def _step_from(self, qkv: Tensor, state: KVCache) -> tuple[Tensor, Any]:
        b = qkv.shape[0]
        q, k, v = qkv.view(b, 3, self.n_heads, self.head_dim).unbind(1)  # [B, H, D] each
        state.before_step()
        o = kv_decode(q, k, v, state.k, state.v, state.length, inv_freq=self.inv_freq(qkv.device))
        return fusion.linear(o.reshape(b, -1), self.out), state


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
