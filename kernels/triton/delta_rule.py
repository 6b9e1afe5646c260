"""Triton chunked forward of the (gated) delta rule, sequence-parallel over segments.

1. `wy.wy` (parallel over chunks): U = (I + A)^-1 beta V and W = (I + A)^-1 beta exp(b) K.
2. `_walk_kernel`, one program per (value block, segment, batch*head), walks its segment's chunks
   with the state in float32 registers:
     u = U - W S,   o = scale ((Q exp(b)) S + (Q K^T * exp(b_i - b_j))_{j<=i} u),
     S <- exp(b_C) S + (K exp(b_C - b))^T u.
   With one segment (short T) this is the only other launch: it starts from the initial state and
   stores the final one. With several (`segments.plan`), a SUMMARY walk first runs every segment
   from the extended state [I | 0] with values [0 | U] ([Dk, Dk + Dv]; the recurrence is linear
   in (S, U)) and stores [M_seg | B_seg]; `segments.carry_matrix` turns those into each segment's
   start state (and the final state); then the OUTPUT walk runs all segments in parallel.

Dots take operands in the input dtype with float32 accumulation (the state is cast for its dots,
like FLA); float32 inputs use tf32x3 dots so they keep float32 accuracy.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import checks
from . import segments, wy
from .common import chunk_log_decay, decayed_scores, dot_precision, dot_width, state_in, state_out, tiles

CHUNK = 64
BV = 32  # default value block of the walks


@triton.jit
def _walk_kernel(q_ptr, k_ptr, u_ptr, w_ptr, g_ptr, att_ptr, o_ptr, s_in_ptr, ext_ptr, st_ptr, scale,
                 T, H, DK, DV, L, NT,
                 C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, SUMMARY: tl.constexpr,
                 HAS_G: tl.constexpr, HAS_S_IN: tl.constexpr, STORE_S: tl.constexpr,
                 PRE_ATT: tl.constexpr, PRECISION: tl.constexpr):
    iv = tl.program_id(0)
    seg = tl.program_id(1)
    bh = tl.program_id(2)
    BH = tl.num_programs(2)
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)  # columns of the state ([Dk, Dk + Dv] extended in SUMMARY)
    oc = tl.arange(0, C)
    mk = ok < DK
    if SUMMARY:
        ou = ov - DK  # the value column of each state column; < 0 for the identity part
        mcol = ov < DK + DV
        s = tl.where((ok[:, None] == ov[None, :]) & mk[:, None], 1.0, 0.0)
    else:
        ou = ov
        mcol = ov < DV
        if HAS_S_IN:
            sp = (seg * BH + bh) * DK * DV + ok[:, None] * DV + ov[None, :]
            s = tl.load(s_in_ptr + sp, mask=mk[:, None] & mcol[None, :], other=0.0)
        else:
            s = tl.zeros([BK, BV], dtype=tl.float32)
    mu = (ou >= 0) & (ou < DV)
    causal = oc[:, None] >= oc[None, :]
    n0 = seg * L
    n1 = tl.minimum(n0 + L, NT)
    if SUMMARY and not HAS_S_IN:
        # the carry multiplies segment 0's transition by a zero start state: skip blocks that only
        # hold its identity columns (they store I, finite, instead of M_0)
        n1 = tl.where((seg == 0) & (iv * BV + BV <= DK), n0, n1)
    for n in range(n0, n1):
        t = n * C + oc
        mt = t < T
        row = (b * T + t) * H + h
        mtk = mt[:, None] & mk[None, :]
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        ww = tl.load(w_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        uu = tl.load(u_ptr + row[:, None] * DV + ou[None, :], mask=mt[:, None] & mu[None, :], other=0.0)
        bc, blast = chunk_log_decay(g_ptr, row, mt, HAS_G, C)
        sd = s.to(k.dtype)
        u = uu.to(tl.float32) - tl.dot(ww, sd, input_precision=PRECISION)
        ud = u.to(k.dtype)
        if not SUMMARY:
            q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
            if PRE_ATT:
                att = tl.load(att_ptr + row[:, None] * C + oc[None, :], mask=mt[:, None], other=0.0)
            else:
                att = decayed_scores(q, k, bc, causal, PRECISION)
            o = tl.dot(q, sd, input_precision=PRECISION) * tl.exp(bc)[:, None]
            o += tl.dot(att.to(k.dtype), ud, input_precision=PRECISION)
            tl.store(o_ptr + row[:, None] * DV + ov[None, :], (o * scale).to(o_ptr.dtype.element_ty),
                     mask=mt[:, None] & mcol[None, :])
        kd = (k.to(tl.float32) * tl.exp(blast - bc)[:, None]).to(k.dtype)
        s = s * tl.exp(blast) + tl.dot(tl.trans(kd), ud, input_precision=PRECISION)
    if SUMMARY:
        width = DK + DV
        tl.store(ext_ptr + ((seg * BH + bh) * DK + ok[:, None]) * width + ov[None, :], s,
                 mask=mk[:, None] & mcol[None, :])
    if STORE_S:
        tl.store(st_ptr + bh * DK * DV + ok[:, None] * DV + ov[None, :], s, mask=mk[:, None] & mcol[None, :])


def gated_delta_rule_fwd(q, k, v, g, beta, scale, initial_state=None, output_final_state=False,
                         chunk=CHUNK, segment_chunks=None, bv=None, num_warps=None, precompute_att=False,
                         inv_precision=None):
    """(Gated) delta rule forward on CUDA (or under TRITON_INTERPRET=1); g None: plain delta rule.

    Returns (o [B, T, H, Dv] in q's dtype, final state [B, H, Dk, Dv] float32 or None).
    segment_chunks: chunks per segment (0: one segment; None: `segments.plan` decides);
    bv: value-block width of the walks (power of two >= 16, default 32; float32: raised to 16 per warp
    group, see `common.dot_width`); num_warps: of the walks (default 4); precompute_att: the WY launch
    also stores each chunk's decayed Q K^T ([B, T, H, C]) so the output walk reads it instead of
    recomputing it for every value block;
    inv_precision: tl.dot precision of the WY inverse's float32 products (`wy.wy`).
    """
    scale = checks.scale(scale, q.shape[-1])
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    bk, bv = tiles(dk, dv, bv, BV)
    u, w, att = wy.wy(k, v, g, beta, chunk, inv_precision, q=q if precompute_att else None)
    # 4 warps: ptxas (Triton 3.9) reports a small spill at BV=32, yet on the H100 (Triton 3.6) it ran
    # 1.7-1.9x faster than 8 warps at 8k-128k (benchmarks/results/kernels-sweep-2026-11-23-h100.jsonl)
    num_warps = num_warps or 4
    if q.dtype == torch.float32:  # a [C, BV] tf32 dot over two warp groups at BV 16 is an N = 8 wgmma (`dot_width`)
        bv = max(bv, dot_width(bv, num_warps))
    prec = dot_precision(q.dtype)
    gp = g.contiguous() if g is not None else beta
    o = torch.empty(b, t, h, dv, device=q.device, dtype=q.dtype)
    st = state_out(output_final_state, b, h, dk, dv, q)
    s0, has_s0 = state_in(initial_state, q)
    nt = triton.cdiv(t, chunk)
    per_segment = b * h * triton.cdiv(dv, bv)
    # the matrix carry costs a [Dk, Dk] product per segment: segments of >= 16 chunks (2k: 2 segments)
    seg_len, nseg = segments.plan(t, chunk, per_segment, q.device, segment_chunks, min_chunks=16)
    # float32 tiles with 2 stages overflow the H100's shared memory
    stages = 1 if q.dtype == torch.float32 else 2
    common = dict(C=chunk, BK=bk, BV=bv, HAS_G=g is not None, PRECISION=prec, num_warps=num_warps,
                  num_stages=stages)

    def walk(grid, s_in, ext, summary, has_s_in, store_s):  # SUMMARY: has_s_in = the initial state is given
        _walk_kernel[grid](q, k, u, w, gp, att if att is not None else o, o, s_in, ext, st if store_s else o, scale,
                           t, h, dk, dv, seg_len, nt, SUMMARY=summary, HAS_S_IN=has_s_in, STORE_S=store_s,
                           PRE_ATT=att is not None, **common)

    if nseg == 1:
        walk((triton.cdiv(dv, bv), 1, b * h), s0, o, False, has_s0, st is not None)
        return o, st
    # the last segment's summary only feeds the final state
    nsum = nseg if st is not None else nseg - 1
    ext = torch.empty(nseg, b * h, dk, dk + dv, device=q.device, dtype=torch.float32)
    if nsum < nseg:
        ext[nsum:].zero_()  # read by the carry's last step, whose result is dropped
    walk((triton.cdiv(dk + dv, bv), nsum, b * h), o, ext, True, has_s0, False)
    start = segments.carry_matrix(ext, s0 if has_s0 else None, st)
    walk((triton.cdiv(dv, bv), nseg, b * h), start, o, False, True, False)
    return o, st
