"""`rwkv6` ("Finch", Peng et al. 2024, "Eagle and Finch") and `rwkv7` ("Goose", Peng et al. 2025).

RWKV-6 time mixing: data-dependent token shift (ddlerp: a shared low-rank tanh map gives each of
w, k, v, r, g its own mix of x_t and x_{t-1}); r, k, v, g projections; a data-dependent decay
w_t = exp(-exp(d + tanh(x_w A) B)) per channel; the bonus u for the current token; GroupNorm per
head, times swish(g), W_o. Channel mixing: token shift, sigmoid(W_r x_r) * W_v relu(W_k x_k)^2.

RWKV-7 time mixing: static token-shift lerps; r, k, v projections; decay w_t = exp(-e^-0.5
sigmoid(w0 + tanh(x_w W1) W2)); in-context learning rate a_t = sigmoid(a0 + x_a A1 A2); the
removal key kk = normalize(k * k_k) and the update S_t = S_{t-1}(diag(w_t) - kk^T (kk * a_t)) +
v_t^T k_t with k scaled by (1 + (a - 1) k_a); value residual from the first layer's v (lerped by
sigmoid(v0 + x_v V1 V2)); output GroupNorm per head + the (r * k * r_k) v bonus, times the gate
sigmoid(x_g G1) G2, W_o. Channel mixing: W_v relu(W_k x_k)^2.
Blocks are pre-LayerNorm residuals, with LayerNorm ln0 on the embeddings, as in both papers.
The recurrences run through `pytest_goni.kernels.rwkv6` / `rwkv7` (scale 1) and their steps.
Initialisation follows the reference implementations' layer-dependent schedules, except that the
first factor of each low-rank map is small random (not zero) so every parameter gets a gradient.
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
from .base import CausalLM, Chain, ConfigError, ModelConfig, Residual, SeqModule, build
from .layers import HeadGroupNorm, heads, init_linears, token_shift

Tensor = torch.Tensor


def _ratios(layer: int, n_layers: int) -> tuple[float, float]:
    r0 = layer / max(1, n_layers - 1)  # 0 -> 1 over depth
    r1 = 1.0 - layer / n_layers  # 1 -> ~0 over depth
    return r0, r1


def _lora_width(d: int, factor: float, power: float = 0.5) -> int:
    return max(32, int(round(factor * d**power / 32)) * 32)


def _small(*shape: int, std: float = 0.01) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std)


def _shifted(x: Tensor, last: Tensor | None) -> Tensor:
    return token_shift(x, last) - x


def _check(name: str, d: int, n_heads: int) -> int:
    if d % n_heads:
        raise ConfigError(f"{name}: d_model={d} is not divisible by n_heads={n_heads}")
    return d // n_heads


class TimeMix6(SeqModule):
    """RWKV-6 time mixing (ddlerp token shift, data-dependent decay, bonus u)."""

    def __init__(self, d: int, n_heads: int, layer: int, n_layers: int, mix_rank: int = 32,
                 decay_rank: int = 64):
        super().__init__()
        self.n_heads, n = n_heads, _check("rwkv6", d, n_heads)
        r0, r1 = _ratios(layer, n_layers)
        ddd = torch.arange(d, dtype=torch.float32) / d
        self.maa_x = nn.Parameter(1.0 - ddd.pow(r1))
        self.maa = nn.Parameter(torch.stack([1.0 - ddd.pow(r1), 1.0 - ddd.pow(r1),  # w, k
                                             1.0 - (ddd.pow(r1) + 0.3 * r0), 1.0 - ddd.pow(0.5 * r1),  # v, r
                                             1.0 - ddd.pow(0.5 * r1)]))  # g
        self.maa_w1 = _small(d, 5 * mix_rank, std=1e-2)
        self.maa_w2 = _small(5, mix_rank, d, std=1e-2)
        idx = torch.arange(d, dtype=torch.float32) / max(1, d - 1)
        self.decay = nn.Parameter(-6.0 + 5.0 * idx.pow(0.7 + 1.3 * r0))
        self.decay_w1 = _small(d, decay_rank, std=1e-2)
        self.decay_w2 = _small(decay_rank, d, std=1e-2)
        zigzag = ((torch.arange(d) + 1) % 3 - 1).float() * 0.1
        self.bonus = nn.Parameter((r0 * (1.0 - idx) + zigzag).view(n_heads, n))
        self.r = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.g = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.ln_x = HeadGroupNorm(n_heads, n, eps=64e-5)
        self.mix_rank = mix_rank

    def _mixed(self, x: Tensor, last: Tensor | None, stacked: bool = False) -> Any:
        """The ddlerp token shift: (xw, xk, xv, xr, xg), each [B, T, d], x_i = x + (x_prev - x) *
        (maa_i + lora_i(x)); the five lerps as one broadcast op (a decode step's launches).
        ``stacked``: the one [5, B, T, d] tensor they are views of."""
        prev = token_shift(x, last)
        lora = torch.tanh(torch.lerp(x, prev, self.maa_x.to(x.dtype)) @ self.maa_w1).unflatten(-1, (5, self.mix_rank))
        m = torch.einsum("btfr,frd->fbtd", lora, self.maa_w2)
        mixed = torch.lerp(x, prev, (self.maa[:, None, None, :] + m).to(x.dtype))
        return mixed if stacked else mixed.unbind(0)

    def _decay_lora(self, xw: Tensor) -> Tensor:
        return torch.tanh(xw @ self.decay_w1) @ self.decay_w2

    def _inputs(self, x: Tensor, last: Tensor | None) -> tuple[Tensor, ...]:
        xw, xk, xv, xr, xg = self._mixed(x, last)
        h = self.n_heads
        log_w = -torch.exp(self.decay + self._decay_lora(xw))
        return (heads(self.r(xr), h), heads(self.k(xk), h), heads(self.v(xv), h), heads(log_w, h),
                F.silu(self.g(xg)))

    def _output(self, o: Tensor, g: Tensor) -> Tensor:
        return self.out(self.ln_x(o).flatten(-2) * g)

    def forward(self, x: Tensor) -> Tensor:
        r, k, v, w, g = self._inputs(x, None)
        o, _ = kernels.rwkv6(r, k, v, w, self.bonus.to(x.dtype), scale=1.0)
        return self._output(o, g)

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        r, k, v, w, g = self._inputs(x, None)
        o, s = kernels.rwkv6(r, k, v, w, self.bonus.to(x.dtype), scale=1.0, output_final_state=True)
        return self._output(o, g), {"shift": x[:, -1], "S": s}

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, Any]:
        """One token: token shift and projections in torch, then decay, the wkv update and readout,
        GroupNorm and the swish(g) gate as one fused kernel (state["S"] updated in place)."""
        mixed = self._mixed(x[:, None], state["shift"], stacked=True)[:, :, 0]  # [5, B, d]: w, k, v, r, g
        if fusion.enabled():  # k, v, r, g: four projections of four inputs as one batched matmul
            w = fusion.stacked_weight(self, "kvrg", (self.k, self.v, self.r, self.g))
            k, v, r, g = torch.bmm(mixed[1:], w).unbind(0)
        else:
            k, v, r, g = self.k(mixed[1]), self.v(mixed[2]), self.r(mixed[3]), self.g(mixed[4])
        norm = self.ln_x.norm
        o = kernels.rwkv6_mixer_step(r, k, v, self._decay_lora(mixed[0]), self.decay, g, self.bonus, state["S"],
                                     norm.weight, norm.bias, norm.eps)
        return fusion.linear(o, self.out), {"shift": x, "S": state["S"]}

    def step_prenorm(self, x: Tensor, pending: Tensor | None, norm: nn.Module, state: dict[str, Any]
                     ) -> tuple[Tensor, Tensor, Any]:
        """(h, step(norm(h)), state), h = x + pending, in four launches (the fused GEMVs,
        ``fusion.DECODE_GEMV``): the add, norm, lerp and the mix LoRA's down-projection + tanh as one
        GEMV (``kernels.shift_linear``); :meth:`shifted_step`; the out projection."""
        if fusion.norm_args(norm, x) is None:  # another norm: the add+norm kernel, then the step
            h, n = fusion.add_norm(x, pending, norm)
            return (h, *self.step(n, state))
        h, xn, (low,) = fusion.shift_split_linear(x, pending, norm, state["shift"], self, "maa_w1",
                                                  [(self.maa_w1.t(), self.maa_x)], tanh_groups=(0,))
        return h, fusion.linear(self.shifted_step(xn, low, state), self.out), {"shift": xn, "S": state["S"]}

    def shifted_step(self, xn: Tensor, low: Tensor, state: dict[str, Any]) -> Tensor:
        """The step from its normed input xn [B, d] and the mix LoRA's hidden ``low`` = tanh(lerp(xn,
        prev, maa_x) @ maa_w1) [B, 5R], to the output before ``out``, in two launches: :meth:`mixer_args`,
        then the mixer step with the decay LoRA's up-projection inside."""
        args = self.mixer_args(xn, low, state)
        return kernels.rwkv6_mixer_step(*args[:12], lora_weight=args[12])

    def mixer_args(self, xn: Tensor, low: Tensor, state: dict[str, Any]) -> tuple:
        """``kernels.rwkv6_mixer_step``'s arguments (its ``rwkv6_mamba2_step`` tuple) from one grouped GEMV:
        the five ddlerp mixes (maa + low-rank term) with the decay LoRA's down-projection (+ tanh) and
        the k, v, r, g projections; the decay LoRA's up-projection is left to the mixer step."""
        groups = [(self.decay_w1.t(), self.maa[0]), (self.k.weight, self.maa[1]), (self.v.weight, self.maa[2]),
                  (self.r.weight, self.maa[3]), (self.g.weight, self.maa[4])]
        mix_up = fusion.merged_rows(self, "maa_w2", [self.maa_w2.flatten(0, 1)]).view_as(self.maa_w2)  # matmul dtype
        _, _, (wl, k, v, r, g) = fusion.shift_split_linear(xn, None, None, state["shift"], self, "wkvrg", groups,
                                                           lora=(low, mix_up), tanh_groups=(0,))
        norm = self.ln_x.norm
        return (r, k, v, wl, self.decay, g, self.bonus, state["S"], norm.weight, norm.bias, norm.eps, 1.0,
                fusion.merged_rows(self, "decay_w2", [self.decay_w2.t()]))


class ChannelMix(SeqModule):
    """RWKV channel mixing: token shift, squared-ReLU key; RWKV-6 gates with a receptance."""

    def __init__(self, d: int, d_ff: int, layer: int, n_layers: int, receptance: bool):
        super().__init__()
        _, r1 = _ratios(layer, n_layers)
        ddd = torch.arange(d, dtype=torch.float32) / d
        self.maa_k = nn.Parameter(1.0 - ddd.pow(r1))
        self.key = nn.Linear(d, d_ff, bias=False)
        self.value = nn.Linear(d_ff, d, bias=False)
        if receptance:
            self.maa_r = nn.Parameter(1.0 - ddd.pow(r1))
            self.receptance = nn.Linear(d, d, bias=False)
        else:
            self.receptance = None

    def _mix(self, x: Tensor, last: Tensor | None) -> Tensor:
        prev = token_shift(x, last)
        kv = self.value(torch.relu(self.key(torch.lerp(x, prev, self.maa_k.to(x.dtype)))).square())
        if self.receptance is None:
            return kv
        return torch.sigmoid(self.receptance(torch.lerp(x, prev, self.maa_r.to(x.dtype)))) * kv

    def forward(self, x: Tensor) -> Tensor:
        return self._mix(x, None)

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        return self._mix(x, None), x[:, -1]

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Any]:
        """x [B, d]; fused: relu(k)^2 and sigmoid(r) x kv one kernel each (kernels.silu_mul's acts), or
        both inside the value GEMV (``fusion.relu2_linear``)."""
        if not fusion.enabled():
            return self._mix(x[:, None], state)[:, 0], x
        prev = state.to(x.dtype)
        k = fusion.linear(torch.lerp(x, prev, self.maa_k.to(x.dtype)), self.key)
        r = None if self.receptance is None else fusion.linear(torch.lerp(x, prev, self.maa_r.to(x.dtype)),
                                                               self.receptance)
        return fusion.relu2_linear(k, self.value, r), x

    def step_prenorm(self, x: Tensor, pending: Tensor | None, norm: nn.Module, state: Tensor
                     ) -> tuple[Tensor, Tensor, Any]:
        """(h, step(norm(h)), state), h = x + pending, in two launches (the fused GEMVs): the add, norm,
        both token-shift lerps and the key and receptance projections as one grouped GEMV
        (``kernels.shift_linear``), then relu^2, the value projection and the receptance gate as one."""
        if fusion.norm_args(norm, x) is None:
            h, n = fusion.add_norm(x, pending, norm)
            return (h, *self.step(n, state))
        groups = [(self.key.weight, self.maa_k)]
        if self.receptance is not None:
            groups.append((self.receptance.weight, self.maa_r))
        h, xn, (k, *r) = fusion.shift_split_linear(x, pending, norm, state, self, "key_receptance", groups)
        return h, fusion.relu2_linear(k, self.value, r[0] if r else None), xn


class TimeMix7(nn.Module):
    """RWKV-7 time mixing; ``first`` layers produce v_first, later ones lerp towards it."""

    def __init__(self, d: int, n_heads: int, layer: int, n_layers: int):
        super().__init__()
        self.n_heads, n = n_heads, _check("rwkv7", d, n_heads)
        self.first = layer == 0
        r0, r1 = _ratios(layer, n_layers)
        ddd = torch.arange(d, dtype=torch.float32) / d
        powers = (0.2, 0.9, 0.7, 0.7, 0.9, 0.2)  # r, w, k, v, a, g
        self.x_mix = nn.Parameter(torch.stack([1.0 - ddd.pow(p * r1) for p in powers]))
        idx = torch.arange(d, dtype=torch.float32) / max(1, d - 1)
        self.w0 = nn.Parameter(-7.0 + 5.0 * idx.pow(0.85 + r0**0.5) + 0.5)
        dw, da, dv, dg = (_lora_width(d, 1.8), _lora_width(d, 1.8), _lora_width(d, 1.3),
                          _lora_width(d, 0.6, 0.8))
        self.w1, self.w2 = _small(d, dw), _small(dw, d, std=0.1)
        self.a0, self.a1, self.a2 = nn.Parameter(torch.zeros(d)), _small(d, da), _small(da, d, std=0.1)
        if not self.first:
            self.v0, self.v1, self.v2 = nn.Parameter(torch.ones(d)), _small(d, dv), _small(dv, d, std=0.1)
        self.g1, self.g2 = _small(d, dg), _small(dg, d, std=0.1)
        self.k_k = nn.Parameter(torch.full((d,), 0.85))
        self.k_a = nn.Parameter(torch.ones(d))
        self.r_k = nn.Parameter(torch.randn(n_heads, n) * 0.1)
        self.r = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.ln_x = HeadGroupNorm(n_heads, n, eps=64e-5)

    def _inputs(self, x: Tensor, last: Tensor | None, v_first: Tensor | None) -> tuple[Tensor, ...]:
        xx = _shifted(x, last)
        xr, xw, xk, xv, xa, xg = (x + xx * self.x_mix[i] for i in range(6))
        h = self.n_heads
        r, k, v = self.r(xr), self.k(xk), self.v(xv)
        log_w = -math.exp(-0.5) * torch.sigmoid(self.w0 + torch.tanh(xw @ self.w1) @ self.w2)
        if self.first:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = F.normalize(heads(k * self.k_k, h), dim=-1)
        k = k * (1 + (a - 1) * self.k_a)
        a_h = heads(a, h)
        return (heads(r, h), heads(log_w, h), heads(k, h), heads(v, h), -kk, kk * a_h, g, v_first)

    def _output(self, o: Tensor, r: Tensor, k: Tensor, v: Tensor, g: Tensor) -> Tensor:
        bonus = (r * k * self.r_k).sum(-1, keepdim=True) * v
        return self.out((self.ln_x(o) + bonus).flatten(-2) * g)

    def forward(self, x: Tensor, v_first: Tensor | None, last: Tensor | None = None,
                state: Tensor | None = None, final: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        r, w, k, v, a, b, g, v_first = self._inputs(x, last, v_first)
        o, s = kernels.rwkv7(r, w, k, v, a, b, scale=1.0, initial_state=state, output_final_state=final)
        return self._output(o, r, k, v, g), v_first, s

    def step(self, x: Tensor, v_first: Tensor | None, last: Tensor, state: Tensor
             ) -> tuple[Tensor, Tensor, Tensor]:
        r, w, k, v, a, b, g, v_first = self._inputs(x[:, None], last, None if v_first is None
                                                     else v_first[:, None])
        r, w, k, v, a, b, g = (t[:, 0] for t in (r, w, k, v, a, b, g))
        o, s = kernels.rwkv7_step(r, w, k, v, a, b, state, scale=1.0)
        return self._output(o, r, k, v, g), v_first[:, 0], s


class RWKV7Stack(SeqModule):
    """All RWKV-7 blocks as one layer, because the value residual carries v_first across depth."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, d_ff = cfg.d_model, cfg.d_ff or 4 * cfg.d_model
        self.att_norms = nn.ModuleList(nn.LayerNorm(d, eps=cfg.norm_eps) for _ in range(cfg.n_layers))
        self.atts = nn.ModuleList(TimeMix7(d, cfg.n_heads, i, cfg.n_layers) for i in range(cfg.n_layers))
        self.ffns = nn.ModuleList(
            Residual(nn.LayerNorm(d, eps=cfg.norm_eps),
                     ChannelMix(d, d_ff, i, cfg.n_layers, receptance=False))
            for i in range(cfg.n_layers))

    def forward(self, x: Tensor) -> Tensor:
        v_first = None
        for norm, att, ffn in zip(self.att_norms, self.atts, self.ffns):
            y, v_first, _ = att(norm(x), v_first)
            x = ffn(x + y)
        return x

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        v_first, states = None, []
        for norm, att, ffn in zip(self.att_norms, self.atts, self.ffns):
            xn = norm(x)
            y, v_first, s = att(xn, v_first, final=True)
            x, ffn_state = ffn.prefill(x + y)
            states.append({"shift": xn[:, -1], "S": s, "ffn": ffn_state})
        return x, states

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        v_first, new = None, []
        for norm, att, ffn, s in zip(self.att_norms, self.atts, self.ffns, state):
            xn = norm(x)
            y, v_first, S = att.step(xn, v_first, s["shift"], s["S"])
            x, ffn_state = ffn.step(x + y, s["ffn"])
            new.append({"shift": xn, "S": S, "ffn": ffn_state})
        return x, new


def _rwkv6(cfg: ModelConfig, own: dict[str, Any]) -> CausalLM:
    d, d_ff = cfg.d_model, cfg.d_ff or 32 * math.ceil(3.5 * cfg.d_model / 32)
    layers = [Chain(Residual(nn.LayerNorm(d, eps=cfg.norm_eps), TimeMix6(d, cfg.n_heads, i, cfg.n_layers)),
                    Residual(nn.LayerNorm(d, eps=cfg.norm_eps),
                             ChannelMix(d, d_ff, i, cfg.n_layers, receptance=True)))
              for i in range(cfg.n_layers)]
    model = CausalLM(cfg, layers, embed_norm=nn.LayerNorm(d, eps=cfg.norm_eps))
    init_linears(model.layers)
    return model


def _rwkv7(cfg: ModelConfig, own: dict[str, Any]) -> CausalLM:
    model = CausalLM(cfg, [RWKV7Stack(cfg)], embed_norm=nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps))
    init_linears(model.layers)
    return model


@backend("rwkv6")
def build_rwkv6(**config: Any) -> nn.Module:
    """RWKV-6 "Finch" LM (n_heads = wkv heads; d_ff default 3.5 d)."""
    return build("rwkv6", config, None, _rwkv6)


@backend("rwkv7")
def build_rwkv7(**config: Any) -> nn.Module:
    """RWKV-7 "Goose" LM (n_heads = wkv heads; d_ff default 4 d)."""
    return build("rwkv7", config, None, _rwkv7)
