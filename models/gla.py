"""`gla` (Gated Linear Attention, Yang et al. 2024) and `retnet` (Retention, Sun et al. 2023).

GLA layer: q, k (width d/2), v (width d) projections; a data-dependent per-key-channel forget gate
alpha_t = sigmoid(low-rank(x_t))^(1/16), i.e. log-decay g_t = logsigmoid(W2 W1 x_t + b) / 16 (the
paper's low-rank gate with its temperature); output o_t = W_o (RMSNorm_head(o_t) * swish(W_r x_t)).
Blocks: pre-RMSNorm residual GLA + SwiGLU MLP.

RetNet layer (multi-scale retention): q, k (width d) with the xPos-style rotation (rotary phases),
v and the swish gate of width 2d, a fixed decay per head gamma_h = 1 - 2^(-5-h), GroupNorm per
head, W_o back to d. Blocks: pre-LayerNorm residual retention + FFN (the paper's 2d-wide GELU FFN,
so a block holds about the parameters of a Transformer block).
Time mixing runs through `pytest_goni.kernels` (gla / simple_gla and their decode steps).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_goni import kernels
from pytest_goni.registry import backend

from . import fusion
from .base import MLP, CausalLM, Chain, ConfigError, ModelConfig, Residual, SeqModule, build
from .layers import HeadGroupNorm, HeadRMSNorm, heads, init_linears, rotary_bthd

Tensor = torch.Tensor


def _check_heads(name: str, width: int, n_heads: int) -> None:
    if width % n_heads:
        raise ConfigError(f"{name} width {width} is not divisible by n_heads={n_heads}")


class GLAMixer(SeqModule):
    """Gated linear attention with a low-rank data-dependent vector gate (the GLA paper's layer)."""

    def __init__(self, d: int, n_heads: int, expand_k: float = 0.5, expand_v: float = 1.0,
                 gate_rank: int = 16, gate_temperature: float = 16.0, eps: float = 1e-5):
        super().__init__()
        self.key_dim, self.value_dim, self.n_heads = int(d * expand_k), int(d * expand_v), n_heads
        _check_heads("gla key", self.key_dim, n_heads)
        _check_heads("gla value", self.value_dim, n_heads)
        self.q = nn.Linear(d, self.key_dim, bias=False)
        self.k = nn.Linear(d, self.key_dim, bias=False)
        self.v = nn.Linear(d, self.value_dim, bias=False)
        self.gate = nn.Sequential(nn.Linear(d, gate_rank, bias=False), nn.Linear(gate_rank, self.key_dim))
        self.out_gate = nn.Linear(d, self.value_dim, bias=False)
        self.norm = HeadRMSNorm(self.value_dim // n_heads, eps)
        self.out = nn.Linear(self.value_dim, d, bias=False)
        self.gate_temperature = gate_temperature

    def _inputs(self, x: Tensor) -> tuple[Tensor, ...]:
        h = self.n_heads
        g = F.logsigmoid(self.gate(x)) / self.gate_temperature
        return heads(self.q(x), h), heads(self.k(x), h), heads(self.v(x), h), heads(g, h)

    def _output(self, o: Tensor, x: Tensor) -> Tensor:
        o = self.norm(o).flatten(-2) * F.silu(self.out_gate(x))
        return self.out(o)

    def forward(self, x: Tensor) -> Tensor:
        o, _ = kernels.gla(*self._inputs(x))
        return self._output(o, x)

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        o, s = kernels.gla(*self._inputs(x), output_final_state=True)
        return self._output(o, x), s

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Any]:
        """One token: the projections, then gate, update, readout, head norm and output gate as one
        fused kernel (the state updated in place)."""
        if fusion.enabled():  # q, k, v, the gate's low-rank half and the out gate: one matmul
            return self._step_merged(fusion.split_linear(x, self, "in", self._in()), state)
        norm = self.norm.norm
        o = kernels.gla_mixer_step(self.q(x), self.k(x), self.v(x), self.gate(x), self.out_gate(x), state,
                                   norm.weight, norm.eps, self.gate_temperature)
        return self.out(o), state

    def _in(self) -> tuple[nn.Linear, ...]:
        return self.q, self.k, self.v, self.gate[0], self.out_gate

    def _step_merged(self, outs: tuple[Tensor, ...], state: Tensor) -> tuple[Tensor, Any]:
        q, k, v, low, og = outs
        norm, up = self.norm.norm, self.gate[1]
        o = kernels.gla_mixer_step(q, k, v, low, og, state, norm.weight, norm.eps, self.gate_temperature,
                                   gate_weight=up.weight, gate_bias=up.bias)  # the gate's up-projection inside
        return fusion.linear(o, self.out), state

    def step_prenorm(self, x: Tensor, pending: Tensor | None, norm: nn.Module, state: Tensor
                     ) -> tuple[Tensor, Tensor, Any]:
        """(h, step(norm(h)), state), h = x + pending: the add and norm inside the merged GEMV."""
        h, outs = fusion.norm_split_linear(x, pending, norm, self, "in", self._in())
        return (h, *self._step_merged(outs, state))


class RetentionMixer(SeqModule):
    """Multi-scale retention: rotary q/k, fixed per-head decays, GroupNorm, swish gate."""

    def __init__(self, d: int, n_heads: int, expand_v: float = 2.0, eps: float = 1e-5):
        super().__init__()
        self.n_heads, self.value_dim = n_heads, int(d * expand_v)
        _check_heads("retnet key", d, n_heads)
        _check_heads("retnet value", self.value_dim, n_heads)
        if (d // n_heads) % 2:
            raise ConfigError(f"retnet head size {d // n_heads} must be even for the rotation")
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, self.value_dim, bias=False)
        self.out_gate = nn.Linear(d, self.value_dim, bias=False)
        self.norm = HeadGroupNorm(n_heads, self.value_dim // n_heads, eps)
        self.out = nn.Linear(self.value_dim, d, bias=False)
        # gamma_h = 1 - 2^(-5 - h): the paper's multi-scale decays (a buffer: not learned)
        log_gamma = torch.log1p(-torch.pow(2.0, -5.0 - torch.arange(n_heads, dtype=torch.float32)))
        self.register_buffer("log_gamma", log_gamma, persistent=False)

    def _inputs(self, x: Tensor, start: int | Tensor) -> tuple[Tensor, ...]:
        h = self.n_heads
        q = rotary_bthd(heads(self.q(x), h), start)
        k = rotary_bthd(heads(self.k(x), h), start)
        g = self.log_gamma.to(x.dtype).expand(x.shape[0], x.shape[1], h)
        return q, k, heads(self.v(x), h), g

    def _output(self, o: Tensor, x: Tensor) -> Tensor:
        return self.out(self.norm(o).flatten(-2) * F.silu(self.out_gate(x)))

    def forward(self, x: Tensor) -> Tensor:
        o, _ = kernels.simple_gla(*self._inputs(x, 0))
        return self._output(o, x)

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        o, s = kernels.simple_gla(*self._inputs(x, 0), output_final_state=True)
        # the position is a tensor so a CUDA graph of step() advances it too
        return self._output(o, x), {"S": s, "pos": torch.full((), x.shape[1], device=x.device)}

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, Any]:
        q, k, v, g = (t[:, 0] for t in self._inputs(x[:, None], state["pos"]))
        o, s = kernels.simple_gla_step(q, k, v, g, state["S"])
        return self._output(o, x), {"S": s, "pos": state["pos"] + 1}


def _gla(cfg: ModelConfig, own: dict[str, Any]) -> CausalLM:
    d = cfg.d_model
    layers = [Chain(Residual(nn.RMSNorm(d, eps=cfg.norm_eps),
                             GLAMixer(d, cfg.n_heads, own["expand_k"], own["expand_v"], eps=cfg.norm_eps)),
                    Residual(nn.RMSNorm(d, eps=cfg.norm_eps), MLP(d, cfg.d_ff or _swiglu_width(d), "swiglu",
                                                                   bias=False)))
              for _ in range(cfg.n_layers)]
    model = CausalLM(cfg, layers, final_norm=nn.RMSNorm(d, eps=cfg.norm_eps))
    init_linears(model.layers)
    return model


def _retnet(cfg: ModelConfig, own: dict[str, Any]) -> CausalLM:
    d = cfg.d_model
    layers = [Chain(Residual(nn.LayerNorm(d, eps=cfg.norm_eps),
                             RetentionMixer(d, cfg.n_heads, own["expand_v"], eps=cfg.norm_eps)),
                    Residual(nn.LayerNorm(d, eps=cfg.norm_eps), MLP(d, cfg.d_ff or 2 * d, "gelu")))
              for _ in range(cfg.n_layers)]
    model = CausalLM(cfg, layers, final_norm=nn.LayerNorm(d, eps=cfg.norm_eps))
    init_linears(model.layers)
    return model


def _swiglu_width(d: int) -> int:
    """SwiGLU width with the parameters of a 4d GELU MLP (8d/3), rounded up to a multiple of 32."""
    return 32 * math.ceil(8 * d / 3 / 32)


@backend("gla")
def build_gla(**config: Any) -> nn.Module:
    """Gated Linear Attention LM (keys: common + expand_k=0.5, expand_v=1.0)."""
    return build("gla", config, {"expand_k": 0.5, "expand_v": 1.0}, _gla)


@backend("retnet")
def build_retnet(**config: Any) -> nn.Module:
    """RetNet LM (multi-scale retention; keys: common + expand_v=2.0)."""
    return build("retnet", config, {"expand_v": 2.0}, _retnet)
