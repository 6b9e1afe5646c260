"""Single-token decode steps in torch (the CPU path): inputs [B, H, D], state [B, H, Dk, Dv] fp32.

Each returns (o [B, H, Dv] in the input dtype, new state float32); the input state is not modified.
Definitions as in `pytest_goni.kernels.reference`.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def _outer(k: Tensor, v: Tensor) -> Tensor:
    return k.float()[..., :, None] * v.float()[..., None, :]


def _read(q: Tensor, s: Tensor, scale: float) -> Tensor:
    return scale * torch.einsum("bhk,bhkv->bhv", q.float(), s)


def gla_step_torch(q, k, v, g, state, scale):
    s = torch.exp(g.float())[..., None] * state.float() + _outer(k, v)
    return _read(q, s, scale).to(q.dtype), s


def simple_gla_step_torch(q, k, v, g, state, scale):
    s = torch.exp(g.float())[..., None, None] * state.float() + _outer(k, v)
    return _read(q, s, scale).to(q.dtype), s


def gated_delta_rule_step_torch(q, k, v, g, beta, state, scale):
    s = state.float()
    if g is not None:
        s = torch.exp(g.float())[..., None, None] * s
    kf = k.float()
    ks = torch.einsum("bhk,bhkv->bhv", kf, s)
    s = s + kf[..., :, None] * (beta.float()[..., None] * (v.float() - ks))[..., None, :]
    return _read(q, s, scale).to(q.dtype), s


def delta_rule_step_torch(q, k, v, beta, state, scale):
    return gated_delta_rule_step_torch(q, k, v, None, beta, state, scale)


def rwkv6_step_torch(r, k, v, w, u, state, scale):
    kv = _outer(k, v)
    s = state.float()
    o = _read(r, s + u.float()[None, :, :, None] * kv, scale)
    return o.to(r.dtype), torch.exp(w.float())[..., None] * s + kv


def rwkv7_step_torch(r, w, k, v, a, b, state, scale):
    s = state.float()
    a_s = torch.einsum("bhk,bhkv->bhv", a.float(), s)
    s = torch.exp(w.float())[..., None] * s + b.float()[..., :, None] * a_s[..., None, :] + _outer(k, v)
    return _read(r, s, scale).to(r.dtype), s
