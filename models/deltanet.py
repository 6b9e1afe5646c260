"""`deltanet` (Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule over Sequence
Length") and `gated-deltanet` (Yang et al. 2025, "Gated Delta Networks").

DeltaNet layer: q, k, v projections, each through a short causal convolution (kernel 4) + SiLU;
q and k L2-normalized per head; a per-head writing strength beta_t = sigmoid(W_b x_t); the delta
rule S_t = (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t; RMSNorm per head; W_o.

Gated DeltaNet adds Mamba2's decay alpha_t = exp(g_t), g_t = -exp(A_log) * softplus(W_a x_t +
dt_bias) (per head), and an output gate: o_t = W_o (RMSNorm_head(o_t) * swish(W_g x_t)); its value
width is expanded (expand_v, 2 in the paper's configs).
Blocks: pre-RMSNorm residual mixer + SwiGLU MLP. Decode state: the [Dk, Dv] matrix per head and the
three convolutions' last K-1 inputs.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_goni import kernels
from pytest_goni.registry import backend

from . import fusion
from .base import MLP, CausalLM, Chain, ConfigError, ModelConfig, Residual, SeqModule, build
from .gla import _swiglu_width
from .layers import HeadRMSNorm, ShortConv, heads, init_linears, mamba_dt_bias

Tensor = torch.Tensor

#: q and k reach the delta-rule operator in the projections' dtype (bf16 under autocast), as FLA's l2norm
#: kernel hands them, instead of what ``F.normalize`` returns: CUDA autocast runs the norm in float32, so
#: bf16 / float32 promotes q and k to float32 and the Triton kernels run the model's whole delta rule at
#: float32 (tf32x3 dots, twice the tile bytes): ptxas (sm_90, Triton 3.6) spills 2,988-3,016 B per thread in
#: the forward WY kernel at chunk 64 against 80 B for bf16, 1,872-2,428 B against 88-208 B in the reverse
#: walk. Off by default until the H200 rows (benchmarks/README.md, "the WY kernel at the model's dtypes")
#: show its speed and loss; ``GONI_DELTA_QK_PROJ_DTYPE=1`` starts it on. Off CUDA autocast: no change.
QK_PROJ_DTYPE = os.environ.get("GONI_DELTA_QK_PROJ_DTYPE", "0") == "1"


class DeltaNetMixer(SeqModule):
    """Delta-rule linear attention; ``gated=True`` makes it the Gated DeltaNet layer."""

    def __init__(self, d: int, n_heads: int, gated: bool, expand_v: float = 1.0, conv_size: int = 4,
                 eps: float = 1e-5):
        super().__init__()
        self.n_heads, self.gated = n_heads, gated
        self.key_dim, self.value_dim = d, int(d * expand_v)
        for what, width in (("key", self.key_dim), ("value", self.value_dim)):
            if width % n_heads:
                raise ConfigError(f"deltanet {what} width {width} is not divisible by n_heads={n_heads}")
        self.q = nn.Linear(d, self.key_dim, bias=False)
        self.k = nn.Linear(d, self.key_dim, bias=False)
        self.v = nn.Linear(d, self.value_dim, bias=False)
        self.b = nn.Linear(d, n_heads, bias=False)
        self.q_conv = ShortConv(self.key_dim, conv_size)
        self.k_conv = ShortConv(self.key_dim, conv_size)
        self.v_conv = ShortConv(self.value_dim, conv_size)
        self.norm = HeadRMSNorm(self.value_dim // n_heads, eps)
        self.out = nn.Linear(self.value_dim, d, bias=False)
        if gated:
            self.a = nn.Linear(d, n_heads, bias=False)
            self.A_log = nn.Parameter(torch.log(torch.empty(n_heads).uniform_(1, 16)))
            self.dt_bias = nn.Parameter(mamba_dt_bias(n_heads))
            self.out_gate = nn.Linear(d, self.value_dim, bias=False)

    def _gates(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        beta = torch.sigmoid(self.b(x))
        if not self.gated:
            return beta, None
        g = -self.A_log.float().exp() * F.softplus(self.a(x).float() + self.dt_bias)
        return beta, g.to(x.dtype)

    def _qkv(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.n_heads
        qn, kn = F.normalize(heads(q, h), dim=-1), F.normalize(heads(k, h), dim=-1)
        if QK_PROJ_DTYPE:  # one contiguous cast each (the operator would copy the strided conv output anyway)
            qn = qn.to(q.dtype, memory_format=torch.contiguous_format)
            kn = kn.to(k.dtype, memory_format=torch.contiguous_format)
        return qn, kn, heads(v, h)

    def _mix(self, q, k, v, beta, g, state=None, final=False):
        if self.gated:
            return kernels.gated_delta_rule(q, k, v, g, beta, initial_state=state, output_final_state=final)
        return kernels.delta_rule(q, k, v, beta, initial_state=state, output_final_state=final)

    def _output(self, o: Tensor, x: Tensor) -> Tensor:
        o = self.norm(o).flatten(-2)
        if self.gated:
            o = o * F.silu(self.out_gate(x))
        return self.out(o)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._qkv(self.q_conv(self.q(x)), self.k_conv(self.k(x)), self.v_conv(self.v(x)))
        o, _ = self._mix(q, k, v, *self._gates(x))
        return self._output(o, x)

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        (q, cq), (k, ck), (v, cv) = (self.q_conv.prefill(self.q(x)), self.k_conv.prefill(self.k(x)),
                                     self.v_conv.prefill(self.v(x)))
        o, s = self._mix(*self._qkv(q, k, v), *self._gates(x), final=True)
        return self._output(o, x), {"S": s, "conv": (cq, ck, cv)}

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, Any]:
        """One token: projections, three conv steps, then normalization, gates, the delta update,
        readout, head norm and output gate as one fused kernel (state updated in place)."""
        projs = self._in()
        if fusion.enabled():  # every projection of x as one matmul
            outs = fusion.split_linear(x, self, "in", projs)
        else:
            outs = tuple(proj(x) for proj in projs)
        return self._step_merged(outs, state)

    def _in(self) -> tuple[nn.Linear, ...]:
        return (self.q, self.k, self.v, self.b) + ((self.a, self.out_gate) if self.gated else ())

    def step_prenorm(self, x: Tensor, pending: Tensor | None, norm: nn.Module, state: dict[str, Any]
                     ) -> tuple[Tensor, Tensor, Any]:
        """(h, step(norm(h)), state), h = x + pending: the add and norm inside the merged GEMV."""
        h, outs = fusion.norm_split_linear(x, pending, norm, self, "in", self._in())
        return (h, *self._step_merged(outs, state))

    def _step_merged(self, outs: tuple[Tensor, ...], state: dict[str, Any]) -> tuple[Tensor, Any]:
        q, k, v = (kernels.short_conv_step(y, cache, conv.conv.weight[:, 0], conv.conv.bias, conv.activation)
                   for y, conv, cache in zip(outs[:3], (self.q_conv, self.k_conv, self.v_conv), state["conv"]))
        norm = self.norm.norm
        if self.gated:
            o = kernels.delta_mixer_step(q, k, v, outs[3], state["S"], norm.weight, norm.eps, a=outs[4],
                                         out_gate=outs[5], A_log=self.A_log, dt_bias=self.dt_bias)
        else:
            o = kernels.delta_mixer_step(q, k, v, outs[3], state["S"], norm.weight, norm.eps)
        return fusion.linear(o, self.out), state


def _deltanet(cfg: ModelConfig, own: dict[str, Any], gated: bool) -> CausalLM:
    d = cfg.d_model
    layers = [Chain(Residual(nn.RMSNorm(d, eps=cfg.norm_eps),
                             DeltaNetMixer(d, cfg.n_heads, gated, own["expand_v"], own["conv_size"],
                                           eps=cfg.norm_eps)),
                    Residual(nn.RMSNorm(d, eps=cfg.norm_eps),
                             MLP(d, cfg.d_ff or _swiglu_width(d), "swiglu", bias=False)))
              for _ in range(cfg.n_layers)]
    model = CausalLM(cfg, layers, final_norm=nn.RMSNorm(d, eps=cfg.norm_eps))
    init_linears(model.layers)
    return model


@backend("deltanet")
def build_deltanet(**config: Any) -> nn.Module:
    """DeltaNet LM (keys: common + expand_v=1.0, conv_size=4)."""
    return build("deltanet", config, {"expand_v": 1.0, "conv_size": 4},
                 lambda cfg, own: _deltanet(cfg, own, gated=False))


@backend("gated-deltanet")
def build_gated_deltanet(**config: Any) -> nn.Module:
    """Gated DeltaNet LM (keys: common + expand_v=2.0, conv_size=4)."""
    return build("gated-deltanet", config, {"expand_v": 2.0, "conv_size": 4},
                 lambda cfg, own: _deltanet(cfg, own, gated=True))
