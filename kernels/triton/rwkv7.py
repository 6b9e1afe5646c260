"""Triton chunked forward of RWKV-7 (generalized delta rule with vector decay), chunks of 16.

With L = log-decay summed from the chunk start and Lx = L - w (decay before token t), the
per-token u_t = a_t S_{t-1} solves (I - A_ab) u = (a exp(Lx)) S_0 + A_ak V with
A_xy[t, j] = sum_d x_td exp(Lx_td - L_jd) y_jd (j < t). `intra.pairwise` builds A_ab, A_ak and
R_b, R_k (R_y[t, j] = sum_d r_td exp(L_td - L_jd) y_jd, j <= t); torch solves the 16x16
triangular systems once for all chunks, giving Wa = (I - A_ab)^-1 (a exp(Lx)) and
Mak = (I - A_ab)^-1 A_ak. One program per (value block, batch*head) then walks the chunks:
  u = Wa S + Mak V,   o = scale ((r exp(L)) S + R_b u + R_k V),
  S <- diag(exp(L_C)) S + (b exp(L_C - L))^T u + (k exp(L_C - L))^T V.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import chunk_cumsum, fused_scan
from .intra import SUB, pairwise

CHUNK = SUB


@triton.jit
def _rwkv7_scan_kernel(r_ptr, k_ptr, v_ptr, b_ptr, l_ptr, wa_ptr, mak_ptr, rb_ptr, rk_ptr,
                       o_ptr, s0_ptr, st_ptr, scale, T, TP, H, DK, DV,
                       C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                       HAS_S0: tl.constexpr, STORE_S: tl.constexpr):
    iv = tl.program_id(0)
    bh = tl.program_id(1)
    bb = bh // H
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
    for c0 in range(0, T, C):
        t = c0 + oc
        mt = t < T
        row = (bb * T + t) * H + h
        prow = (bb * TP + t) * H + h
        hrow = bh * TP + t
        mtk = mt[:, None] & mk[None, :]
        r = tl.load(r_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
        v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :],
                    other=0.0).to(tl.float32)
        lc = tl.load(l_ptr + prow[:, None] * DK + ok[None, :], mask=mk[None, :], other=0.0)
        last = tl.load(l_ptr + ((bb * TP + c0 + C - 1) * H + h) * DK + ok, mask=mk, other=0.0)
        wa = tl.load(wa_ptr + hrow[:, None] * DK + ok[None, :], mask=mk[None, :], other=0.0)
        mak = tl.load(mak_ptr + hrow[:, None] * C + oc[None, :])
        rb = tl.load(rb_ptr + hrow[:, None] * C + oc[None, :])
        rk = tl.load(rk_ptr + hrow[:, None] * C + oc[None, :])
        u = tl.dot(wa, s) + tl.dot(mak, v)
        o = tl.dot(r * tl.exp(lc), s) + tl.dot(rb, u) + tl.dot(rk, v)
        tl.store(o_ptr + row[:, None] * DV + ov[None, :], (o * scale).to(o_ptr.dtype.element_ty),
                 mask=mt[:, None] & mv[None, :])
        dec = tl.exp(last[None, :] - lc)
        s = s * tl.exp(last)[:, None] + tl.dot(tl.trans(b * dec), u) + tl.dot(tl.trans(k * dec), v)
    if STORE_S:
        tl.store(st_ptr + sp, s, mask=mk[:, None] & mv[None, :])


def rwkv7_fwd(r, w, k, v, a, b, scale, initial_state=None, output_final_state=False, bv=None):
    """RWKV-7 forward on CUDA (or under TRITON_INTERPRET=1). w: log-decay [B, T, H, Dk]."""
    bs, t, h, dk = r.shape
    c = CHUNK
    r, k, v, a, b = (x.contiguous() for x in (r, k, v, a, b))
    lc = chunk_cumsum(w, c)
    tp = lc.shape[1]
    wp = torch.zeros_like(lc)
    wp[:, :t] = w
    lx = lc - wp
    a_ab = pairwise(a, b, lx, lc, c, strict=True)
    a_ak = pairwise(a, k, lx, lc, c, strict=True)
    r_b = pairwise(r, b, lc, lc, c, strict=False)
    r_k = pairwise(r, k, lc, lc, c, strict=False)
    ap = torch.zeros_like(lc)
    ap[:, :t] = a
    a_dec = (ap * torch.exp(lx)).permute(0, 2, 1, 3)  # [B, H, T', Dk]
    n = tp // c
    eye = torch.eye(c, device=r.device, dtype=torch.float32)
    lower = eye - a_ab.reshape(bs, h, n, c, c)
    rhs = torch.cat([a_ak.reshape(bs, h, n, c, c), a_dec.reshape(bs, h, n, c, dk)], -1)
    sol = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
    sol = sol.reshape(bs, h, tp, c + dk)
    mak, wa = sol[..., :c].contiguous(), sol[..., c:].contiguous()
    return fused_scan(_rwkv7_scan_kernel, (r, k, v, b, lc, wa, mak, r_b, r_k), r, v, tp, scale, c, initial_state,
                      output_final_state, bv)
