"""A recurrent mixer's whole decode step between its input and output projections, as one kernel.

The operator steps (`kernels.ops.*_step`) fuse the state update and readout; a layer's step also
runs its gates (decays, softplus, sigmoid), norms and output gate as a dozen small torch ops around
them, and at batch 1 each op costs a launch. These operators fold all of it into one launch per
layer on CUDA (`kernels.triton.mixer_steps`); here are their definitions in plain torch (the CPU
path and the tests' reference). Every one updates its state buffers in place (fixed buffers: a
CUDA graph of the step replays without copies) and returns the mixer's output before its output
projection, in the dtype of its gate input.

- ``short_conv_step``: depthwise causal conv of the last K inputs (+ SiLU), Mamba-2 / DeltaNet;
- ``mamba2_ssd_step``: dt = softplus(dt + dt_bias), the SSD update with q = C, k = B, v = dt x,
  decay exp(-dt exp(A_log)), the D skip and the swish(z) gate (the gated RMSNorm's norm, over all
  heads, stays outside);
- ``rwkv6_mixer_step``: decay exp(-exp(decay + lora)) (the lora's up-projection too, optionally), the
  bonus u, GroupNorm per head, swish(g);
- ``rwkv6_mamba2_step``: groundthink's RWKV-6 and Mamba-2 steps above in one launch;
- ``gla_mixer_step``: log-decay logsigmoid(gate) / temperature, RMSNorm per head, swish(out gate);
- ``delta_mixer_step``: L2-normalized q, k, beta = sigmoid(b), the (gated) delta rule with
  g = -exp(A_log) softplus(a + dt_bias), RMSNorm per head, swish(out gate) when gated.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F

from . import checks, ops

Tensor = torch.Tensor


def _triton(fn: str):
    return getattr(importlib.import_module("pytest_goni.kernels.triton.mixer_steps"), fn)


def _state(state: Tensor, b: int, h: int) -> tuple[int, int]:
    checks.tensor("state", state, 4)
    if tuple(state.shape[:2]) != (b, h) or state.dtype != torch.float32 or not state.is_contiguous():
        raise ValueError(f"state must be a contiguous float32 [B={b}, H={h}, Dk, Dv] tensor, "
                         f"got {tuple(state.shape)} {state.dtype}")
    return state.shape[2], state.shape[3]


def _acc(buffer: Tensor) -> torch.dtype:
    """The dtype the plain-torch definitions compute in: float32, or float64 for a float64 reference."""
    return torch.promote_types(buffer.dtype, torch.float32)


def _rows(name: str, x: Tensor, b: int, width: int) -> None:
    checks.tensor(name, x, 2)
    checks.same(name, x, (b, width), "[B, width]")
    if x.stride(-1) != 1:
        raise ValueError(f"{name} must have a unit stride in its last dim")


# --------------------------------------------------------------------------- short conv


def short_conv_step_torch(x: Tensor, conv_state: Tensor, weight: Tensor, bias: Tensor | None,
                          activation: bool) -> Tensor:
    acc = _acc(conv_state)
    window = torch.cat([conv_state.to(acc), x.to(acc)[..., None]], dim=-1)  # [B, C, K]
    y = (window * weight.to(acc)).sum(-1)
    if bias is not None:
        y = y + bias.to(acc)
    conv_state.copy_(window[..., 1:])
    return (F.silu(y) if activation else y).to(x.dtype)


def short_conv_step(x: Tensor, conv_state: Tensor, weight: Tensor, bias: Tensor | None = None,
                    activation: bool = True, backend: str | None = None) -> Tensor:
    """x [B, C] -> act(conv over the K-1 cached inputs and x) [B, C]; conv_state [B, C, K-1] is
    shifted in place; weight [C, K], bias [C]."""
    checks.tensor("conv_state", conv_state, 3)
    b, c, km1 = conv_state.shape
    _rows("x", x, b, c)
    checks.tensor("weight", weight, 2)
    checks.same("weight", weight, (c, km1 + 1), "[C, K]")
    if ops.use_triton(backend, x):
        return _triton("short_conv_step")(x, conv_state, weight, bias, activation)
    return short_conv_step_torch(x, conv_state, weight, bias, activation)


# --------------------------------------------------------------------------- Mamba-2


def mamba2_ssd_step_torch(xbc: Tensor, z: Tensor, dt: Tensor, state: Tensor, dt_bias: Tensor,
                          A_log: Tensor, D: Tensor) -> Tensor:
    acc = _acc(state)
    b, h, n, p = state.shape
    x, bb, cc = xbc.to(acc).split([h * p, n, n], dim=-1)
    x = x.view(b, h, p)
    dt = F.softplus(dt.to(acc) + dt_bias.to(acc))  # [B, H]
    decay = torch.exp(-dt * A_log.to(acc).exp())
    s = decay[..., None, None] * state + bb[:, None, :, None] * (x * dt[..., None])[:, :, None, :]
    state.copy_(s)
    y = torch.einsum("bn,bhnp->bhp", cc, s) + x * D.to(acc)[:, None]
    return (y.flatten(1) * F.silu(z.to(acc))).to(z.dtype)


def _check_mamba2(xbc: Tensor, z: Tensor, dt: Tensor, state: Tensor) -> None:
    checks.tensor("dt", dt, 2)
    b, h = dt.shape
    n, p = _state(state, b, h)
    _rows("xbc", xbc, b, h * p + 2 * n)
    _rows("z", z, b, h * p)


def mamba2_ssd_step(xbc: Tensor, z: Tensor, dt: Tensor, state: Tensor, dt_bias: Tensor, A_log: Tensor,
                    D: Tensor, backend: str | None = None) -> Tensor:
    """Mamba-2's SSD step from the conv output xbc [B, H*P + 2N] (x, B, C), z [B, H*P], raw dt
    [B, H]; state [B, H, N, P] float32 in place. Returns (C S + D x) * swish(z) [B, H*P]."""
    _check_mamba2(xbc, z, dt, state)
    if ops.use_triton(backend, z):
        return _triton("mamba2_ssd_step")(xbc, z, dt, state, dt_bias, A_log, D)
    return mamba2_ssd_step_torch(xbc, z, dt, state, dt_bias, A_log, D)


# --------------------------------------------------------------------------- RWKV-6


def rwkv6_mixer_step_torch(r: Tensor, k: Tensor, v: Tensor, w_lora: Tensor, decay: Tensor, g: Tensor,
                           bonus: Tensor, state: Tensor, ln_weight: Tensor, ln_bias: Tensor, eps: float,
                           scale: float) -> Tensor:
    acc = _acc(state)
    b, h, dk, dv = state.shape
    r, k, v = r.to(acc).view(b, h, dk), k.to(acc).view(b, h, dk), v.to(acc).view(b, h, dv)
    kv = k[..., :, None] * v[..., None, :]
    o = scale * torch.einsum("bhk,bhkv->bhv", r, state + bonus.to(acc)[None, :, :, None] * kv)
    log_w = -torch.exp(decay.to(acc) + w_lora.to(acc)).view(b, h, dk)
    state.copy_(torch.exp(log_w)[..., None] * state + kv)
    mean, var = o.mean(-1, keepdim=True), o.var(-1, unbiased=False, keepdim=True)
    o = ((o - mean) * torch.rsqrt(var + eps)).flatten(1) * ln_weight.to(acc) + ln_bias.to(acc)
    return (o * F.silu(g.to(acc))).to(g.dtype)


def _low_rank(name: str, low: Tensor, weight: Tensor, b: int, width: int) -> None:
    """A low-rank input low [B, R] whose up-projection weight [width, R] runs inside the kernel."""
    checks.tensor(f"{name}_weight", weight, 2)
    if weight.shape[0] != width:
        raise ValueError(f"{name}_weight must be [H*Dk={width}, R], got {tuple(weight.shape)}")
    checks.tensor(name, low, 2)
    checks.same(name, low, (b, weight.shape[1]), f"[B, R]: the low-rank {name}'s input")
    if low.stride(-1) != 1:
        raise ValueError(f"{name} must have a unit stride in its last dim")


def _check_rwkv6(r: Tensor, k: Tensor, v: Tensor, w_lora: Tensor, g: Tensor, bonus: Tensor, state: Tensor,
                 lora_weight: Tensor | None) -> None:
    checks.tensor("r", r, 2)
    b = r.shape[0]
    h = bonus.shape[0]
    dk, dv = _state(state, b, h)
    if lora_weight is not None:
        _low_rank("w_lora", w_lora, lora_weight, b, h * dk)
    for name, x, w in (("r", r, dk), ("k", k, dk), ("w_lora", w_lora, dk if lora_weight is None else None),
                       ("v", v, dv), ("g", g, dv)):
        if w is not None:
            _rows(name, x, b, h * w)


def rwkv6_mixer_step(r: Tensor, k: Tensor, v: Tensor, w_lora: Tensor, decay: Tensor, g: Tensor, bonus: Tensor,
                     state: Tensor, ln_weight: Tensor, ln_bias: Tensor, eps: float, scale: float = 1.0,
                     backend: str | None = None, lora_weight: Tensor | None = None) -> Tensor:
    """RWKV-6 time mixing after its projections: r, k, w_lora [B, H*Dk], v, g [B, H*Dv] (flat),
    decay [H*Dk], bonus [H, Dk], state [B, H, Dk, Dv] float32 in place, GroupNorm per head
    (ln_weight, ln_bias [H*Dv]). Returns GroupNorm(o) * swish(g) [B, H*Dv]. With ``lora_weight``
    [H*Dk, R], ``w_lora`` is the decay LoRA's hidden [B, R] and its up-projection runs in the kernel."""
    _check_rwkv6(r, k, v, w_lora, g, bonus, state, lora_weight)
    if ops.use_triton(backend, g):
        return _triton("rwkv6_mixer_step")(r, k, v, w_lora, decay, g, bonus, state, ln_weight, ln_bias, eps,
                                           scale, lora_weight)
    if lora_weight is not None:
        w_lora = F.linear(w_lora, lora_weight)
    return rwkv6_mixer_step_torch(r, k, v, w_lora, decay, g, bonus, state, ln_weight, ln_bias, eps, scale)


def rwkv6_mamba2_step(rwkv: tuple, mamba: tuple, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """``rwkv6_mixer_step(*rwkv)`` and ``mamba2_ssd_step(*mamba)`` in one launch on CUDA (groundthink's two
    mixers, independent steps side by side: the programs of one grid split between them). ``rwkv``: r, k,
    v, w_lora, decay, g, bonus, state, ln_weight, ln_bias, eps, scale, lora_weight (None or [H*Dk, R]);
    ``mamba``: xbc, z, dt, state, dt_bias, A_log, D. Returns (RWKV-6's output, Mamba-2's)."""
    r, k, v, w_lora, decay, g, bonus, state, ln_weight, ln_bias, eps, scale, lora_weight = rwkv
    _check_rwkv6(r, k, v, w_lora, g, bonus, state, lora_weight)
    _check_mamba2(*mamba[:4])
    if ops.use_triton(backend, g):
        return _triton("rwkv6_mamba2_step")(rwkv, mamba)
    return (rwkv6_mixer_step(*rwkv[:12], backend="torch", lora_weight=lora_weight),
            mamba2_ssd_step(*mamba, backend="torch"))


# --------------------------------------------------------------------------- GLA


def _head_rms(o: Tensor, weight: Tensor, eps: float) -> Tensor:
    return o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + eps) * weight.to(o.dtype)


def gla_mixer_step_torch(q: Tensor, k: Tensor, v: Tensor, gate: Tensor, out_gate: Tensor, state: Tensor,
                         norm_weight: Tensor, eps: float, temperature: float, scale: float) -> Tensor:
    acc = _acc(state)
    b, h, dk, dv = state.shape
    q, k, v = q.to(acc).view(b, h, dk), k.to(acc).view(b, h, dk), v.to(acc).view(b, h, dv)
    g = (F.logsigmoid(gate.to(acc)) / temperature).view(b, h, dk)
    s = torch.exp(g)[..., None] * state + k[..., :, None] * v[..., None, :]
    state.copy_(s)
    o = scale * torch.einsum("bhk,bhkv->bhv", q, s)
    return (_head_rms(o, norm_weight, eps).flatten(1) * F.silu(out_gate.to(acc))).to(out_gate.dtype)


def gla_mixer_step(q: Tensor, k: Tensor, v: Tensor, gate: Tensor, out_gate: Tensor, state: Tensor,
                   norm_weight: Tensor, eps: float, temperature: float, scale: float | None = None,
                   backend: str | None = None, gate_weight: Tensor | None = None,
                   gate_bias: Tensor | None = None) -> Tensor:
    """GLA after its projections: q, k, gate (pre-logsigmoid) [B, H*Dk], v, out_gate [B, H*Dv],
    state [B, H, Dk, Dv] float32 in place, RMSNorm per head (norm_weight [Dv]). Returns
    RMSNorm(o) * swish(out_gate) [B, H*Dv]. With ``gate_weight`` [H*Dk, R] (and ``gate_bias``
    [H*Dk]), ``gate`` is the low-rank gate's input [B, R] and its up-projection runs in the kernel."""
    checks.tensor("q", q, 2)
    b, h = q.shape[0], state.shape[1]
    dk, dv = _state(state, b, h)
    gate_width = dk if gate_weight is None else None
    if gate_weight is not None:
        _low_rank("gate", gate, gate_weight, b, h * dk)
        if gate_bias is not None and tuple(gate_bias.shape) != (h * dk,):
            raise ValueError(f"gate_bias must have shape ({h * dk},), got {tuple(gate_bias.shape)}")
    for name, x, w in (("q", q, dk), ("k", k, dk), ("gate", gate, gate_width), ("v", v, dv),
                       ("out_gate", out_gate, dv)):
        if w is not None:
            _rows(name, x, b, h * w)
    sc = checks.scale(scale, dk)
    if ops.use_triton(backend, q):
        return _triton("gla_mixer_step")(q, k, v, gate, out_gate, state, norm_weight, eps, temperature, sc,
                                         gate_weight, gate_bias)
    if gate_weight is not None:
        gate = F.linear(gate, gate_weight, gate_bias)
    return gla_mixer_step_torch(q, k, v, gate, out_gate, state, norm_weight, eps, temperature, sc)


# --------------------------------------------------------------------------- (Gated) DeltaNet


def delta_mixer_step_torch(q: Tensor, k: Tensor, v: Tensor, b: Tensor, a: Tensor | None, out_gate: Tensor | None,
                           state: Tensor, A_log: Tensor | None, dt_bias: Tensor | None, norm_weight: Tensor,
                           eps: float, scale: float) -> Tensor:
    acc = _acc(state)
    bs, h, dk, dv = state.shape
    out_dtype = v.dtype if out_gate is None else out_gate.dtype
    q = F.normalize(q.to(acc).view(bs, h, dk), dim=-1)
    k = F.normalize(k.to(acc).view(bs, h, dk), dim=-1)
    v = v.to(acc).view(bs, h, dv)
    beta = torch.sigmoid(b.to(acc))
    s = state
    if a is not None:
        g = -A_log.to(acc).exp() * F.softplus(a.to(acc) + dt_bias.to(acc))
        s = torch.exp(g)[..., None, None] * s
    ks = torch.einsum("bhk,bhkv->bhv", k, s)
    s = s + k[..., :, None] * (beta[..., None] * (v - ks))[..., None, :]
    state.copy_(s)
    o = _head_rms(scale * torch.einsum("bhk,bhkv->bhv", q, s), norm_weight, eps).flatten(1)
    if out_gate is not None:
        o = o * F.silu(out_gate.to(acc))
    return o.to(out_dtype)


def delta_mixer_step(q: Tensor, k: Tensor, v: Tensor, b: Tensor, state: Tensor, norm_weight: Tensor, eps: float,
                     a: Tensor | None = None, out_gate: Tensor | None = None, A_log: Tensor | None = None,
                     dt_bias: Tensor | None = None, scale: float | None = None, backend: str | None = None
                     ) -> Tensor:
    """(Gated) DeltaNet after its convs: q, k [B, H*Dk] (normalized here), v [B, H*Dv], b [B, H]
    (pre-sigmoid), and for the gated rule a [B, H] with A_log, dt_bias [H] and out_gate [B, H*Dv];
    state [B, H, Dk, Dv] float32 in place. Returns RMSNorm(o) (* swish(out_gate)) [B, H*Dv]."""
    checks.tensor("b", b, 2)
    bs, h = b.shape
    dk, dv = _state(state, bs, h)
    for name, x, w in (("q", q, dk), ("k", k, dk), ("v", v, dv)):
        _rows(name, x, bs, h * w)
    if (a is None) != (A_log is None) or (a is None) != (dt_bias is None):
        raise ValueError("the gated rule needs a, A_log and dt_bias together")
    if out_gate is not None:
        _rows("out_gate", out_gate, bs, h * dv)
    sc = checks.scale(scale, dk)
    if ops.use_triton(backend, v):
        return _triton("delta_mixer_step")(q, k, v, b, a, out_gate, state, A_log, dt_bias, norm_weight, eps, sc)
    return delta_mixer_step_torch(q, k, v, b, a, out_gate, state, A_log, dt_bias, norm_weight, eps, sc)
