"""Triton chunked forward of the (gated) delta rule.

Preparation in torch (batched, parallel over chunks): with b = cumsum(g) inside each chunk and
A_tj = beta_t exp(b_t - b_j) k_t.k_j (j < t), solve the unit lower-triangular systems
(I + A) [U | W] = beta [V | K exp(b)] (the WY / UT form). Then one Triton program per (value
block, batch*head) walks the chunks with the [Dk, BV] state in registers (impl="fused"):
  u = U - W S,   o = scale ((Q exp(b)) S + (Q K^T * exp(b_i - b_j))_{j<=i} u),
  S <- exp(b_C) S + (K exp(b_C - b))^T u.
The default impl="two_pass" splits this into a sequential pass that stores the state before each
chunk and the corrected values u, and a parallel pass for the outputs (`two_pass`).

wy="torch" (default, validated on the H100) prepares U, W with torch.linalg.solve_triangular;
wy="triton" does it in `_wy_kernel` (forward substitution per chunk, bf16 U/W for bf16 inputs).
The Triton preparation passes the interpreter tests but has NOT yet run on a GPU (the device
call that was to validate and time it was lost), so it is not the default.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import two_pass
from .common import chunk_cumsum, fused_scan

CHUNK = 64


@triton.jit
def _delta_scan_kernel(q_ptr, k_ptr, u_ptr, w_ptr, gc_ptr, o_ptr, s0_ptr, st_ptr, scale,
                       T, TP, H, DK, DV,
                       C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                       HAS_S0: tl.constexpr, STORE_S: tl.constexpr):
    iv = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    oc = tl.arange(0, C)
    mk = ok < DK
    mv = ov < DV
    sp = bh * DK * DV + ok[:, None] * DV + ov[None, :]
    if HAS_S0:
        s = tl.load(s0_ptr + sp, mask=mk[:, None] & mv[None, :], other=0.0)
    else:
        s = tl.zeros([BK, BV], dtype=tl.float32)
    causal = oc[:, None] >= oc[None, :]
    for c0 in range(0, T, C):
        t = c0 + oc
        mt = t < T
        row = (b * T + t) * H + h
        prow = bh * TP + t  # U, W are [B, H, T', D]
        mtk = mt[:, None] & mk[None, :]
        q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
        uu = tl.load(u_ptr + prow[:, None] * DV + ov[None, :], mask=mv[None, :], other=0.0).to(tl.float32)
        ww = tl.load(w_ptr + prow[:, None] * DK + ok[None, :], mask=mk[None, :], other=0.0).to(tl.float32)
        bc = tl.load(gc_ptr + (b * TP + t) * H + h)
        blast = tl.load(gc_ptr + (b * TP + c0 + C - 1) * H + h)
        u = uu - tl.dot(ww, s)
        att = tl.dot(q, tl.trans(k)) * tl.exp(tl.where(causal, bc[:, None] - bc[None, :], float("-inf")))
        o = tl.dot(q * tl.exp(bc)[:, None], s) + tl.dot(att, u)
        tl.store(o_ptr + row[:, None] * DV + ov[None, :], (o * scale).to(o_ptr.dtype.element_ty),
                 mask=mt[:, None] & mv[None, :])
        kd = k * tl.exp(blast - bc)[:, None]
        s = s * tl.exp(blast) + tl.dot(tl.trans(kd), u)
    if STORE_S:
        tl.store(st_ptr + sp, s, mask=mk[:, None] & mv[None, :])


@triton.jit
def _wy_kernel(k_ptr, v_ptr, beta_ptr, gc_ptr, u_ptr, w_ptr, T, TP, H, DK, DV,
               C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """One chunk: A = tril_{-1}(beta_i e^{b_i - b_j} k_i.k_j), X = (I + A)^-1 by forward
    substitution (row i of X = e_i - sum_{j<i} A_ij X_j), then U = X beta V, W = X beta K e^b."""
    n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    oc = tl.arange(0, C)
    ok = tl.arange(0, BK)
    ov = tl.arange(0, BV)
    mk = ok < DK
    mv = ov < DV
    t = n * C + oc
    mt = t < T
    row = (b * T + t) * H + h
    k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mt[:, None] & mk[None, :], other=0.0)
    v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :], other=0.0)
    beta = tl.load(beta_ptr + row, mask=mt, other=0.0).to(tl.float32)
    bc = tl.load(gc_ptr + (b * TP + t) * H + h)
    kf = k.to(tl.float32)
    strict = oc[:, None] > oc[None, :]
    dec = tl.exp(tl.where(strict, bc[:, None] - bc[None, :], float("-inf")))
    a = tl.dot(kf, tl.trans(kf)) * beta[:, None] * dec
    x = tl.where(oc[:, None] == oc[None, :], 1.0, 0.0)
    for i in range(1, C):
        a_i = tl.sum(tl.where(oc[:, None] == i, a, 0.0), 0)  # row i of A, indexed by column j
        x_i = tl.where(oc == i, 1.0, 0.0) - tl.sum(a_i[:, None] * x, 0)
        x = tl.where(oc[:, None] == i, x_i[None, :], x)
    u = tl.dot(x, v.to(tl.float32) * beta[:, None])
    w = tl.dot(x, kf * (beta * tl.exp(bc))[:, None])
    prow = bh * TP + t
    tl.store(u_ptr + prow[:, None] * DV + ov[None, :], u.to(u_ptr.dtype.element_ty), mask=mv[None, :])
    tl.store(w_ptr + prow[:, None] * DK + ok[None, :], w.to(w_ptr.dtype.element_ty), mask=mk[None, :])


def _wy_triton(k, v, beta, gc, chunk):
    """U [B, H, T', Dv], W [B, H, T', Dk] (float32 for fp32 inputs, else bf16) from `_wy_kernel`."""
    b, t, h, dk = k.shape
    dv = v.shape[-1]
    tp = gc.shape[1]
    dt = torch.float32 if k.dtype == torch.float32 else torch.bfloat16
    u = torch.empty(b, h, tp, dv, device=k.device, dtype=dt)
    w = torch.empty(b, h, tp, dk, device=k.device, dtype=dt)
    _wy_kernel[(tp // chunk, b * h)](k, v, beta.contiguous(), gc, u, w, t, tp, h, dk, dv, C=chunk,
                                    BK=max(16, triton.next_power_of_2(dk)),
                                    BV=max(16, triton.next_power_of_2(dv)), num_warps=4)
    return u, w


def _wy(k, v, beta, gc, chunk):
    """U [B, H, T', Dv], W [B, H, T', Dk] float32 of the chunked WY form."""
    b, t, h, dk = k.shape
    dv = v.shape[-1]
    tp = gc.shape[1]
    n = tp // chunk

    def chunks(x):  # [B, T, H, D] -> [B, H, N, C, D] float32, zero-padded
        x = x.float()
        if tp != t:
            x = torch.nn.functional.pad(x, [0, 0, 0, 0, 0, tp - t])
        return x.reshape(b, n, chunk, h, -1).permute(0, 3, 1, 2, 4)

    kc, vc = chunks(k), chunks(v)
    betac = chunks(beta[..., None])
    bc = gc.reshape(b, n, chunk, h).permute(0, 3, 1, 2)  # [B, H, N, C]
    diff = bc[..., :, None] - bc[..., None, :]
    strict = torch.ones(chunk, chunk, dtype=torch.bool, device=k.device).tril(-1)
    dec = torch.exp(diff.masked_fill(~strict, float("-inf")))
    lower = (betac * (kc @ kc.transpose(-1, -2)) * dec)
    lower.diagonal(dim1=-2, dim2=-1).fill_(1.0)
    rhs = betac * torch.cat([vc, kc * torch.exp(bc)[..., None]], -1)
    sol = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
    sol = sol.reshape(b, h, tp, dv + dk)
    return sol[..., :dv].contiguous(), sol[..., dv:].contiguous()


def gated_delta_rule_fwd(q, k, v, g, beta, scale, initial_state=None, output_final_state=False,
                         chunk=CHUNK, bv=None, impl="two_pass", wy="torch"):
    """(Gated) delta rule forward on CUDA (or under TRITON_INTERPRET=1); g None: plain delta rule."""
    b, t, h, dk = q.shape
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if g is None:
        g = torch.zeros(b, t, h, device=q.device, dtype=torch.float32)
    gc = chunk_cumsum(g, chunk)
    u, w = (_wy_triton if wy == "triton" else _wy)(k, v, beta, gc, chunk)
    if impl == "two_pass":
        hbuf, vnew, st = two_pass.delta_states(k, u, w, gc, chunk, initial_state, output_final_state, v.dtype)
        return two_pass.output(q, k, vnew, gc, None, hbuf, scale, chunk, True), st
    return fused_scan(_delta_scan_kernel, (q, k, u, w, gc), q, v, gc.shape[1], scale, chunk, initial_state,
                      output_final_state, bv)
