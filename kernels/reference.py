"""Naive float64 references: each operator as its step-by-step recurrence.

These are the ground truth the chunked torch forms and the Triton kernels are tested against.
Everything is computed in float64, one token at a time, so they are slow: tests only.

Layout: inputs [B, T, H, D]; the state S is [B, H, Dk, Dv] (keys index rows, values columns);
row vectors q_t, k_t in R^Dk, v_t in R^Dv.

Definitions (checked against the papers; notation of the [Dk, Dv] state):

- GLA (Yang et al. 2024, "Gated Linear Attention Transformers with Hardware-Efficient Training"):
  S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,   o_t = scale * q_t S_t,  g_t <= 0 per key channel.
- Scalar decay ("simple GLA"; RetNet with a fixed per-head decay, Mamba2 SSD with a data-dependent
  one): S_t = exp(g_t) S_{t-1} + k_t^T v_t,  o_t = scale * q_t S_t,  g_t a scalar per head and step.
- Delta rule (DeltaNet, Schlag et al. 2021 / Yang et al. 2024): in the paper's [Dv, Dk] form
  S_t = S_{t-1}(I - beta_t k_t k_t^T) + beta_t v_t k_t^T; in the [Dk, Dv] layout used here
  S_t = (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t,  o_t = scale * q_t S_t.
- Gated delta rule (Gated DeltaNet, Yang et al. 2025): alpha_t = exp(g_t) scalar per head,
  S_t = alpha_t (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t,  o_t = scale * q_t S_t.
- RWKV-6 "Finch" (Peng et al. 2024): wkv_t = diag(u) k_t^T v_t + sum_{i<t} diag(prod_{j=i+1}^{t-1}
  w_j) k_i^T v_i, i.e. with w_t = exp(lw_t) (lw the log-decay argument `w`):
  o_t = scale * r_t (S_{t-1} + diag(u) k_t^T v_t),  S_t = diag(exp(lw_t)) S_{t-1} + k_t^T v_t.
- RWKV-7 "Goose" (Peng et al. 2025): in the paper's [Dv, Dk] form
  S_t = S_{t-1} (diag(w_t) + a_t^T b_t) + v_t^T k_t, o_t = S_t r_t^T, with the model passing
  a = -kappa_hat, b = kappa_hat * a_iclr. In the [Dk, Dv] layout (w given as log-decay):
  S_t = diag(exp(w_t)) S_{t-1} + b_t^T (a_t S_{t-1}) + k_t^T v_t,  o_t = scale * r_t S_t.
- Sliding-window attention: o_t = sum_{s=t-W+1..t, s>=0} softmax_s(scale q_t . k_s) v_s
  (the window counts the current token: W keys at most).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def _start(q: Tensor, v: Tensor, initial_state: Tensor | None, scale: float | None) -> tuple[int, Tensor, float]:
    """T, the float64 state S_0 (zeros, or a copy of initial_state) and the scale, for q [B, T, H, Dk]."""
    b, t, h, dk = q.shape
    if initial_state is None:
        s = torch.zeros(b, h, dk, v.shape[-1], dtype=torch.float64, device=q.device)
    else:
        s = initial_state.to(torch.float64).clone()
    return t, s, _scale(scale, dk)


def _scale(scale: float | None, dk: int) -> float:
    return dk**-0.5 if scale is None else float(scale)


def _d(x: Tensor) -> Tensor:
    return x.to(torch.float64)


def gla_ref(q, k, v, g, scale=None, initial_state=None):
    """GLA: S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t; o_t = scale q_t S_t. Returns (o, S) float64."""
    q, k, v, g = map(_d, (q, k, v, g))
    t, s, sc = _start(q, v, initial_state, scale)
    out = []
    for i in range(t):
        s = torch.exp(g[:, i])[..., None] * s + k[:, i, :, :, None] * v[:, i, :, None, :]
        out.append(sc * torch.einsum("bhk,bhkv->bhv", q[:, i], s))
    return torch.stack(out, 1), s


def simple_gla_ref(q, k, v, g, scale=None, initial_state=None):
    """Scalar decay: S_t = exp(g_t) S_{t-1} + k_t^T v_t, g [B, T, H]."""
    return gla_ref(q, k, v, _d(g)[..., None].expand(q.shape), scale, initial_state)


def gated_delta_rule_ref(q, k, v, g, beta, scale=None, initial_state=None):
    """S_t = exp(g_t) (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t; o_t = scale q_t S_t."""
    q, k, v, g, beta = map(_d, (q, k, v, g, beta))
    t, s, sc = _start(q, v, initial_state, scale)
    out = []
    for i in range(t):
        ki, bi = k[:, i], beta[:, i][..., None]
        s = torch.exp(g[:, i])[..., None, None] * s
        kS = torch.einsum("bhk,bhkv->bhv", ki, s)
        s = s + ki[..., :, None] * (bi * (v[:, i] - kS))[..., None, :]
        out.append(sc * torch.einsum("bhk,bhkv->bhv", q[:, i], s))
    return torch.stack(out, 1), s


def delta_rule_ref(q, k, v, beta, scale=None, initial_state=None):
    """S_t = (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t."""
    return gated_delta_rule_ref(q, k, v, torch.zeros_like(_d(beta)), beta, scale, initial_state)


def rwkv6_ref(r, k, v, w, u, scale=None, initial_state=None):
    """RWKV-6: o_t = scale r_t (S_{t-1} + diag(u) k_t^T v_t); S_t = diag(exp(w_t)) S_{t-1} + k_t^T v_t."""
    r, k, v, w, u = map(_d, (r, k, v, w, u))
    t, s, sc = _start(r, v, initial_state, scale)
    out = []
    for i in range(t):
        kv = k[:, i, :, :, None] * v[:, i, :, None, :]
        out.append(sc * torch.einsum("bhk,bhkv->bhv", r[:, i], s + u[None, :, :, None] * kv))
        s = torch.exp(w[:, i])[..., None] * s + kv
    return torch.stack(out, 1), s


def rwkv7_ref(r, w, k, v, a, b, scale=None, initial_state=None):
    """RWKV-7: S_t = diag(exp(w_t)) S_{t-1} + b_t^T (a_t S_{t-1}) + k_t^T v_t; o_t = scale r_t S_t."""
    r, w, k, v, a, b = map(_d, (r, w, k, v, a, b))
    t, s, sc = _start(r, v, initial_state, scale)
    out = []
    for i in range(t):
        aS = torch.einsum("bhk,bhkv->bhv", a[:, i], s)
        s = (torch.exp(w[:, i])[..., None] * s + b[:, i, :, :, None] * aS[..., None, :]
             + k[:, i, :, :, None] * v[:, i, :, None, :])
        out.append(sc * torch.einsum("bhk,bhkv->bhv", r[:, i], s))
    return torch.stack(out, 1), s


def sliding_window_attention_ref(q, k, v, window: int, scale=None):
    """Causal softmax attention where token t sees keys t-window+1 .. t. Float64, O(T^2) memory."""
    q, k, v = map(_d, (q, k, v))
    t, dk = q.shape[1], q.shape[-1]
    sc = _scale(scale, dk)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) * sc
    i = torch.arange(t, device=q.device)
    allowed = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("bhij,bjhd->bihd", torch.softmax(scores, -1), v)
