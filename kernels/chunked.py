"""Chunked torch forms of the recurrent operators: matmul-based, autograd-capable, any device.

This is the CPU path and the training path. The sequence is cut into chunks of C tokens: inside a
chunk the operator is a masked (decayed) attention-like matmul; across chunks only the [Dk, Dv]
state is carried (a short Python loop over chunks of small matmuls). Arithmetic is float32
whatever the input dtype; outputs come back in the input dtype, states in float32.

Decays are applied in log space and always as exp(non-positive) where it matters:
- scalar decays (simple GLA, gated delta rule) build the [C, C] matrix exp(b_i - b_j), masked
  before the exp;
- vector decays (GLA, RWKV-6, RWKV-7) build the pairwise term sum_d x_id y_jd exp(bx_id - by_jd)
  as one matmul of (x e^bx) and (y e^-by) when the decay summed over a chunk (C = 16) stays
  within FACTOR_LIMIT in log space, else explicitly over [C, C, D], so no factor can overflow
  however strong the decay.
The definitions are in `pytest_goni.kernels.reference`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

VECTOR_CHUNK = 16
SCALAR_CHUNK = 64


def _to_chunks(x: Tensor, c: int) -> Tensor:
    """[B, T, H, *D] float -> [B, H, N, C, *D] float32, zero-padded to N*C tokens."""
    t = x.shape[1]
    n = -(-t // c)
    x = x.float()
    if n * c != t:
        pad = [0, 0] * (x.dim() - 2) + [0, n * c - t]
        x = F.pad(x, pad)
    x = x.reshape(x.shape[0], n, c, *x.shape[2:])
    return x.movedim(3, 1) if x.dim() == 5 else x.permute(0, 3, 1, 2)


def _from_chunks(x: Tensor, t: int, dtype: torch.dtype) -> Tensor:
    """[B, H, N, C, D] -> [B, T, H, D] in `dtype`."""
    b, h, n, c, d = x.shape
    return x.permute(0, 2, 3, 1, 4).reshape(b, n * c, h, d)[:, :t].to(dtype)


def _state0(initial_state: Tensor | None, b: int, h: int, dk: int, dv: int, ref: Tensor) -> Tensor:
    if initial_state is None:
        return ref.new_zeros(b, h, dk, dv, dtype=torch.float32)
    return initial_state.float()


FACTOR_LIMIT = 60.0  # |log-decay summed over a chunk| below which exp(+-b) stays inside float32


def _pairwise(x: Tensor, y: Tensor, bx: Tensor, by: Tensor, strict: bool) -> Tensor:
    """A_ij = sum_d x_id y_jd exp(bx_id - by_jd) for j <= i (j < i if strict), else 0.

    x, y, bx, by: [..., C, D]. When every |bx|, |by| <= FACTOR_LIMIT the exponent splits into
    (x e^bx)(y e^-by)^T, one matmul whose factors cannot overflow; otherwise (very strong decays)
    the [C, C, D] differences are formed explicitly, masked with -inf before the exp, so masked
    entries are exact zeros and nothing overflows.
    """
    c = x.shape[-2]
    keep = torch.ones(c, c, dtype=torch.bool, device=x.device).tril(-1 if strict else 0)
    with torch.no_grad():
        factor_ok = bool((torch.maximum(bx.abs().amax(), by.abs().amax()) <= FACTOR_LIMIT).item())
    if factor_ok:
        a = (x * torch.exp(bx)) @ (y * torch.exp(-by)).transpose(-1, -2)
        return a.masked_fill(~keep, 0.0)
    diff = bx[..., :, None, :] - by[..., None, :, :]
    diff = diff.masked_fill(~keep[:, :, None], float("-inf"))
    return (x[..., :, None, :] * y[..., None, :, :] * torch.exp(diff)).sum(-1)


def _scan_states(decay: Tensor, update: Tensor, s0: Tensor) -> tuple[Tensor, Tensor]:
    """S_n = decay_n * S_{n-1} + update_n over chunks; returns (states before each chunk, last).

    decay: [B, H, N, Dk, 1] or [B, H, N, 1, 1]; update: [B, H, N, Dk, Dv].
    """
    states = []
    s = s0
    for n in range(update.shape[2]):
        states.append(s)
        s = decay[:, :, n] * s + update[:, :, n]
    return torch.stack(states, 2), s


def _vector_decay(q, k, v, g, scale, initial_state, output_final_state, u=None, chunk=VECTOR_CHUNK):
    """GLA (u None) or RWKV-6 (u [H, Dk]: query sees S_{t-1} plus the bonus u)."""
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    qc, kc, vc, gc = (_to_chunks(x, chunk) for x in (q, k, v, g))
    qc = qc * scale
    bk = gc.cumsum(-2)  # [B, H, N, C, Dk] log decay from chunk start through token i
    bq = bk - gc if u is not None else bk  # RWKV-6 queries read the state before token i
    last = bk[..., -1:, :]
    attn = _pairwise(qc, kc, bq, bk, strict=u is not None)
    o = attn @ vc
    if u is not None:
        o = o + (qc * u.float()[None, :, None, None, :] * kc).sum(-1, keepdim=True) * vc
    update = (kc * torch.exp(last - bk)).transpose(-1, -2) @ vc
    s0 = _state0(initial_state, b, h, dk, dv, q)
    before, s = _scan_states(torch.exp(last).transpose(-1, -2), update, s0)
    o = o + (qc * torch.exp(bq)) @ before
    return _from_chunks(o, t, q.dtype), (s if output_final_state else None)


def gla_chunked(q, k, v, g, scale, initial_state=None, output_final_state=False):
    """GLA, chunked. g: log-decay [B, T, H, Dk]."""
    return _vector_decay(q, k, v, g, scale, initial_state, output_final_state)


def rwkv6_chunked(r, k, v, w, u, scale, initial_state=None, output_final_state=False):
    """RWKV-6, chunked. w: log-decay [B, T, H, Dk]; u: bonus [H, Dk]."""
    return _vector_decay(r, k, v, w, scale, initial_state, output_final_state, u=u)


def _decay_matrix(bcum: Tensor) -> Tensor:
    """exp(b_i - b_j) for j <= i, else 0; bcum [..., C] -> [..., C, C]."""
    c = bcum.shape[-1]
    diff = bcum[..., :, None] - bcum[..., None, :]
    keep = torch.ones(c, c, dtype=torch.bool, device=bcum.device).tril()
    return torch.exp(diff.masked_fill(~keep, float("-inf")))


def simple_gla_chunked(q, k, v, g, scale, initial_state=None, output_final_state=False,
                       chunk=SCALAR_CHUNK):
    """Scalar decay per head and step (RetNet, Mamba2 SSD), chunked. g: [B, T, H]."""
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    qc, kc, vc = (_to_chunks(x, chunk) for x in (q, k, v))
    bc = _to_chunks(g[..., None], chunk)[..., 0].cumsum(-1)  # [B, H, N, C]
    qc = qc * scale
    o = ((qc @ kc.transpose(-1, -2)) * _decay_matrix(bc)) @ vc
    last = bc[..., -1:]
    update = (kc * torch.exp(last - bc)[..., None]).transpose(-1, -2) @ vc
    s0 = _state0(initial_state, b, h, dk, dv, q)
    before, s = _scan_states(torch.exp(last)[..., None], update, s0)
    o = o + (qc * torch.exp(bc)[..., None]) @ before
    return _from_chunks(o, t, q.dtype), (s if output_final_state else None)


def gated_delta_rule_chunked(q, k, v, g, beta, scale, initial_state=None, output_final_state=False,
                             chunk=SCALAR_CHUNK):
    """Gated delta rule (g None: plain delta rule), chunked with the WY / UT form.

    Inside a chunk, with b = cumsum(g), the per-token "new values" u_t = beta_t (v_t - alpha_t k_t
    S_{t-1}) solve the unit lower-triangular system (I + A) u = beta (V - (K e^b) S_0), with
    A_tj = beta_t e^{b_t - b_j} k_t.k_j for j < t; then o = (Q e^b) S_0 + (Q K^T * D) u and
    S_C = e^{b_C} S_0 + (K e^{b_C - b})^T u.
    """
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    qc, kc, vc = (_to_chunks(x, chunk) for x in (q, k, v))
    betac = _to_chunks(beta[..., None], chunk)  # [B, H, N, C, 1]
    if g is None:
        bc = torch.zeros_like(betac[..., 0])
    else:
        bc = _to_chunks(g[..., None], chunk)[..., 0].cumsum(-1)
    qc = qc * scale
    dmat = _decay_matrix(bc)
    eye = torch.eye(chunk, device=q.device, dtype=torch.float32)
    lower = eye + (betac * (kc @ kc.transpose(-1, -2)) * dmat).tril(-1)
    rhs = betac * torch.cat([vc, kc * torch.exp(bc)[..., None]], -1)
    sol = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
    u0, wk = sol[..., :dv], sol[..., dv:]  # u = u0 - wk @ S_0
    attn = (qc @ kc.transpose(-1, -2)) * dmat
    qdec = qc * torch.exp(bc)[..., None]
    last = bc[..., -1:]
    kdec = (kc * torch.exp(last - bc)[..., None]).transpose(-1, -2)
    decay = torch.exp(last)[..., None]
    s = _state0(initial_state, b, h, dk, dv, q)
    outs = []
    for n in range(qc.shape[2]):
        un = u0[:, :, n] - wk[:, :, n] @ s
        outs.append(qdec[:, :, n] @ s + attn[:, :, n] @ un)
        s = decay[:, :, n] * s + kdec[:, :, n] @ un
    o = torch.stack(outs, 2)
    return _from_chunks(o, t, q.dtype), (s if output_final_state else None)


def delta_rule_chunked(q, k, v, beta, scale, initial_state=None, output_final_state=False):
    """Delta rule (DeltaNet), chunked."""
    return gated_delta_rule_chunked(q, k, v, None, beta, scale, initial_state, output_final_state)


def rwkv7_chunked(r, w, k, v, a, b, scale, initial_state=None, output_final_state=False,
                  chunk=VECTOR_CHUNK):
    """RWKV-7 (generalized delta rule, vector decay), chunked.

    With L = cumsum(w) in the chunk and Lx = L - w (decay before token t), the per-token
    u_t = a_t S_{t-1} solve (I - A_ab) u = (a e^{Lx}) S_0 + A_ak V, where
    A_xy[t, j] = sum_d x_td e^{Lx_td - L_jd} y_jd for j < t. Then
    o = (r e^L) S_0 + R_b u + R_k V  (R_y[t, j] = sum_d r_td e^{L_td - L_jd} y_jd, j <= t) and
    S_C = e^{L_C} S_0 + (b e^{L_C - L})^T u + (k e^{L_C - L})^T V.
    """
    bs, t, h, dk = r.shape
    dv = v.shape[-1]
    rc, wc, kc, vc, ac, bc = (_to_chunks(x, chunk) for x in (r, w, k, v, a, b))
    rc = rc * scale
    lc = wc.cumsum(-2)
    lx = lc - wc
    a_ab = _pairwise(ac, bc, lx, lc, strict=True)
    a_ak = _pairwise(ac, kc, lx, lc, strict=True)
    r_b = _pairwise(rc, bc, lc, lc, strict=False)
    r_k = _pairwise(rc, kc, lc, lc, strict=False)
    eye = torch.eye(chunk, device=r.device, dtype=torch.float32)
    rhs = torch.cat([a_ak @ vc, ac * torch.exp(lx)], -1)
    sol = torch.linalg.solve_triangular(eye - a_ab, rhs, upper=False, unitriangular=True)
    u0, ua = sol[..., :dv], sol[..., dv:]  # u = u0 + ua @ S_0
    rdec = rc * torch.exp(lc)
    last = lc[..., -1:, :]
    bdec = (bc * torch.exp(last - lc)).transpose(-1, -2)
    kv = (kc * torch.exp(last - lc)).transpose(-1, -2) @ vc
    rkv = r_k @ vc
    decay = torch.exp(last).transpose(-1, -2)
    s = _state0(initial_state, bs, h, dk, dv, r)
    outs = []
    for n in range(rc.shape[2]):
        un = u0[:, :, n] + ua[:, :, n] @ s
        outs.append(rdec[:, :, n] @ s + r_b[:, :, n] @ un + rkv[:, :, n])
        s = decay[:, :, n] * s + bdec[:, :, n] @ un + kv[:, :, n]
    o = torch.stack(outs, 2)
    return _from_chunks(o, t, r.dtype), (s if output_final_state else None)
