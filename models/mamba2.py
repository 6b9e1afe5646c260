"""`mamba2` (Dao & Gu 2024, "Transformers are SSMs": the SSD layer).

Layer: one input projection to (z, x, B, C, dt); a depthwise causal conv (kernel 4) + SiLU over
(x, B, C); dt = softplus(dt + dt_bias); per-head scalar A = -exp(A_log); the SSD recurrence
h_t = exp(dt_t A) h_{t-1} + dt_t B_t^T x_t, y_t = C_t h_t + D x_t (B, C shared by all heads: one
group); then the gated RMSNorm y = RMSNorm(y * swish(z)) and the output projection. The model
stacks these mixers with pre-RMSNorm residuals and no MLP, as Mamba does.

SSD is the scalar-decay kernel with q = C, k = B, v = dt * x, g = dt * A and scale 1
(`pytest_goni.kernels.simple_gla`). Decode state: the [d_state, headdim] matrix per head and the
conv's last K-1 inputs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_goni import kernels
from pytest_goni.registry import backend

from . import fusion
from .base import CausalLM, ConfigError, ModelConfig, Residual, SeqModule, build
from .layers import ShortConv, init_linears, mamba_dt_bias

Tensor = torch.Tensor


class Mamba2Mixer(SeqModule):
    """The Mamba-2 SSD mixer (one B/C group, ``n_heads`` SSM heads over d_inner = expand * d)."""

    def __init__(self, d: int, n_heads: int, d_state: int = 64, expand: int = 2, conv_size: int = 4,
                 eps: float = 1e-5):
        super().__init__()
        self.d_inner, self.n_heads, self.d_state = expand * d, n_heads, d_state
        if self.d_inner % n_heads:
            raise ConfigError(f"mamba2 inner width {self.d_inner} is not divisible by n_heads={n_heads}")
        self.head_dim = self.d_inner // n_heads
        self.in_proj = nn.Linear(d, 2 * self.d_inner + 2 * d_state + n_heads, bias=False)
        self.conv = ShortConv(self.d_inner + 2 * d_state, conv_size, bias=True)
        self.dt_bias = nn.Parameter(mamba_dt_bias(n_heads))
        self.A_log = nn.Parameter(torch.log(torch.empty(n_heads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(n_heads))
        self.norm = nn.RMSNorm(self.d_inner, eps=eps)
        self.out_proj = nn.Linear(self.d_inner, d, bias=False)

    def _split(self, zxbcdt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z, xbc, dt = zxbcdt.split([self.d_inner, self.d_inner + 2 * self.d_state, self.n_heads], dim=-1)
        return z, xbc, dt

    def _ssd_inputs(self, xbc: Tensor, dt: Tensor) -> tuple[Tensor, ...]:
        """(q=C, k=B, v=dt*x, g=dt*A, x) in [..., H, *] from the conv output and raw dt."""
        x, b, c = xbc.split([self.d_inner, self.d_state, self.d_state], dim=-1)
        x = x.unflatten(-1, (self.n_heads, self.head_dim))
        dt = F.softplus(dt.float() + self.dt_bias)  # [..., H]
        g = (dt * -self.A_log.float().exp()).to(x.dtype)
        shape = (*b.shape[:-1], self.n_heads, self.d_state)
        q, k = c.unsqueeze(-2).expand(shape), b.unsqueeze(-2).expand(shape)
        v = (x * dt[..., None]).to(x.dtype)
        return q, k, v, g, x

    def _output(self, y: Tensor, x: Tensor, z: Tensor) -> Tensor:
        y = y + x * self.D.to(x.dtype)[:, None]
        y = self.norm(y.flatten(-2) * F.silu(z))
        return self.out_proj(y)

    def forward(self, u: Tensor) -> Tensor:
        z, xbc, dt = self._split(self.in_proj(u))
        q, k, v, g, x = self._ssd_inputs(self.conv(xbc), dt)
        y, _ = kernels.simple_gla(q, k, v, g, scale=1.0)
        return self._output(y, x, z)

    def prefill(self, u: Tensor) -> tuple[Tensor, Any]:
        z, xbc, dt = self._split(self.in_proj(u))
        xbc, conv = self.conv.prefill(xbc)
        q, k, v, g, x = self._ssd_inputs(xbc, dt)
        y, s = kernels.simple_gla(q, k, v, g, scale=1.0, output_final_state=True)
        return self._output(y, x, z), {"S": s, "conv": conv}

    def step(self, u: Tensor, state: dict[str, Any]) -> tuple[Tensor, Any]:
        """One token: in_proj, the conv step and the SSD step (+ D skip, swish(z) gate) as two fused
        kernels updating the state in place (kernels.mixer_steps), the norm, out_proj."""
        return self.step_from(self.in_proj(u), state)

    def step_from(self, zxbcdt: Tensor, state: dict[str, Any], convolved: bool = False) -> tuple[Tensor, Any]:
        """The step after in_proj (``convolved``: in_proj's GEMV ran the conv step already,
        :meth:`conv_epilogue`): the SSD step, then :meth:`output`."""
        return self.output(kernels.mamba2_ssd_step(*self.ssd_args(zxbcdt, state, convolved))), state

    def ssd_args(self, zxbcdt: Tensor, state: dict[str, Any], convolved: bool) -> tuple:
        """``kernels.mamba2_ssd_step``'s arguments from in_proj's output (the conv step run unless
        ``convolved``)."""
        z, xbc, dt = self._split(zxbcdt)
        if not convolved:
            conv = self.conv.conv
            xbc = kernels.short_conv_step(xbc, state["conv"], conv.weight[:, 0], conv.bias, self.conv.activation)
        return xbc, z, dt, state["S"], self.dt_bias, self.A_log, self.D

    def output(self, y: Tensor, blend: tuple | None = None) -> Tensor:
        """The gated norm's norm and out_proj of the SSD step's output; ``blend`` = (other, logit) (fused
        steps only): returned as lerp(other, out, sigmoid(logit)) inside the out_proj GEMV (groundthink's
        mix of its mixers; ``other`` may be (x2, w2), the other mixer's out projection, in the same kernel)."""
        if fusion.enabled():  # the norm as one kernel (CPU too), or inside the out_proj GEMV
            return fusion.norm_linear(y, self.norm, self.out_proj, blend)
        return self.out_proj(self.norm(y))

    def step_prenorm(self, x: Tensor, pending: Tensor | None, norm: nn.Module, state: dict[str, Any]
                     ) -> tuple[Tensor, Tensor, Any]:
        """(h, step(norm(h)), state), h = x + pending: the add and norm inside the in_proj GEMV, the conv
        step in its epilogue."""
        h, (zxbcdt,) = fusion.norm_split_linear(x, pending, norm, self, "in", (self.in_proj,),
                                                conv=self.conv_epilogue(state, 0))
        return (h, *self.step_from(zxbcdt, state, convolved=True))

    def conv_epilogue(self, state: dict[str, Any], start: int) -> tuple:
        """The conv step as a GEMV epilogue's ``conv`` argument, in_proj's rows starting at row ``start``
        of the GEMV's output: (state, weight [C, K], bias, activation, offset of x, B, C)."""
        conv = self.conv.conv
        return state["conv"], conv.weight[:, 0], conv.bias, self.conv.activation, start + self.d_inner


def mamba2_layers(cfg: ModelConfig, own: dict[str, Any]) -> list[SeqModule]:
    d = cfg.d_model
    return [Residual(nn.RMSNorm(d, eps=cfg.norm_eps),
                     Mamba2Mixer(d, cfg.n_heads, own["d_state"], own["expand"], own["conv_size"],
                                 cfg.norm_eps))
            for _ in range(cfg.n_layers)]


def _mamba2(cfg: ModelConfig, own: dict[str, Any]) -> CausalLM:
    model = CausalLM(cfg, mamba2_layers(cfg, own), final_norm=nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps))
    init_linears(model.layers)
    return model


MAMBA2_DEFAULTS = {"d_state": 64, "expand": 2, "conv_size": 4}


@backend("mamba2")
def build_mamba2(**config: Any) -> nn.Module:
    """Mamba-2 LM (keys: common, n_heads = SSM heads, + d_state=64, expand=2, conv_size=4)."""
    return build("mamba2", config, MAMBA2_DEFAULTS, _mamba2)
