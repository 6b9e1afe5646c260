"""Triton forward of RWKV-7 (generalized delta rule with vector decay): a prep and segment-parallel walks.

Per chunk of C tokens, with L = log-decay summed from the chunk start and Lx = L - w (the decay
before token t), the per-token u_t = a_t S_{t-1} solve (I - A_ab) u = (a e^Lx) S_0 + A_ak V with
A_xy[t, j] = sum_d x_td e^(Lx_td - L_jd) y_jd (j < t); with N = (I - A_ab)^-1,
  u = Wa S + Mak V          (Wa = N (a e^Lx), Mak = N A_ak),
  o = scale ((r e^L) S + R_b u + R_k V)     (R_y[t, j] = sum_d r_td e^(L_td - L_jd) y_jd, j <= t),
  S <- diag(e^Lc) S + (b e^(Lc - L))^T u + (k e^(Lc - L))^T V        (Lc: the chunk's total).

The state-independent terms of a chunk (Wa, Mak, r e^L, R_b, R_k, b e^(Lc - L), k e^(Lc - L),
e^Lc) are computed once per chunk by a fully parallel prep kernel and stored in the input dtype
(`fused=True` computes them inside the walks instead: no buffers, but redone by every walk
program). The four C x C matrices are one matmul each of (x e^bx) and (y e^-L) when the chunk's
decay stays within FACTOR_LIMIT in log space (every real RWKV-7 chunk: |w| < 0.61 per step), else
column by column with the exact exponent differences (masked to -inf first, so nothing overflows
however strong the decay). N is the nilpotent product (I + A)(I + A^2)(I + A^4)... of the strictly
lower A, computed with tf32x3 dots for float32 inputs.

The walk is cut into segments (`segments.plan`). The recurrence is linear in (S, V), so a SUMMARY
walk of each segment from the extended state [I | 0] (value columns < Dk: identity, V = 0;
columns >= Dk: zero state, real V) ends at [M_seg | B_seg]; `segments.carry_matrix` turns those
into every segment's start state, and the OUTPUT walk runs all segments in parallel (the last
segment's summary is never needed: its start state is the carry's end). The summary runs as two
launches: the M columns (identity start, no value terms) and the B columns. Launches: prep,
summary M, summary B, carry, output (prep and output only when the plan gives one segment).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .. import checks
from . import segments
from .common import dot_precision, state_in, state_out, tiles

CHUNK = 16  # tokens per chunk (GONI_RWKV7_CHUNK or `chunk=` overrides: 16 or 32)
FACTOR_LIMIT = 60.0  # |L| within a chunk below which e^L and e^-L stay well inside float32


@triton.jit
def _intra_factored(r, a, b, k, L, Lx, C: tl.constexpr, WITH_R: tl.constexpr, PREC: tl.constexpr):
    """A_ab, A_ak (strict) and R_b, R_k (with diagonal) as matmuls of e^bx- and e^-L-scaled rows."""
    oc = tl.arange(0, C)
    strict = oc[:, None] > oc[None, :]
    aq = a * tl.exp(Lx)
    inv = tl.exp(-L)
    bi = b * inv
    ki = k * inv
    a_ab = tl.where(strict, tl.dot(aq, tl.trans(bi), input_precision=PREC), 0.0)
    a_ak = tl.where(strict, tl.dot(aq, tl.trans(ki), input_precision=PREC), 0.0)
    if WITH_R:
        lower = oc[:, None] >= oc[None, :]
        rq = r * tl.exp(L)
        r_b = tl.where(lower, tl.dot(rq, tl.trans(bi), input_precision=PREC), 0.0)
        r_k = tl.where(lower, tl.dot(rq, tl.trans(ki), input_precision=PREC), 0.0)
    else:
        r_b = a_ab
        r_k = a_ak
    return a_ab, a_ak, r_b, r_k


@triton.jit
def _intra_exact(r, a, b, k, L, Lx, C: tl.constexpr, WITH_R: tl.constexpr):
    """The same matrices column by column with exact exponent differences (any decay strength)."""
    oc = tl.arange(0, C)
    a_ab = tl.zeros([C, C], dtype=tl.float32)
    a_ak = tl.zeros([C, C], dtype=tl.float32)
    r_b = tl.zeros([C, C], dtype=tl.float32)
    r_k = tl.zeros([C, C], dtype=tl.float32)
    for j in range(0, C):
        row = (oc == j)[:, None]
        lj = tl.sum(tl.where(row, L, 0.0), 0)[None, :]
        bj = tl.sum(tl.where(row, b, 0.0), 0)[None, :]
        kj = tl.sum(tl.where(row, k, 0.0), 0)[None, :]
        col = (oc[None, :] == j)
        e = tl.exp(tl.where((oc > j)[:, None], Lx - lj, float("-inf")))
        a_ab = tl.where(col, tl.sum(a * bj * e, 1)[:, None], a_ab)
        a_ak = tl.where(col, tl.sum(a * kj * e, 1)[:, None], a_ak)
        if WITH_R:
            e2 = tl.exp(tl.where((oc >= j)[:, None], L - lj, float("-inf")))
            r_b = tl.where(col, tl.sum(r * bj * e2, 1)[:, None], r_b)
            r_k = tl.where(col, tl.sum(r * kj * e2, 1)[:, None], r_k)
    return a_ab, a_ak, r_b, r_k


@triton.jit
def _chunk_terms(r_ptr, w_ptr, k_ptr, a_ptr, b_ptr, kp, mtk, C: tl.constexpr, LOG2C: tl.constexpr,
                 WITH_R: tl.constexpr, LIMIT: tl.constexpr, PREC: tl.constexpr):
    """Everything of one chunk that does not depend on the state, float32 (rows of kp: tokens).

    Returns Wa, Mak, r e^L, R_b, R_k, b e^(Lc - L), k e^(Lc - L) and e^Lc (the chunk's decay).
    Without WITH_R, r is not read and the three r terms are placeholders.
    """
    oc = tl.arange(0, C)
    w = tl.load(w_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    k = tl.load(k_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    if WITH_R:
        r = tl.load(r_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    else:
        r = a
    L = tl.cumsum(w, 0)
    Lx = L - w
    last = tl.sum(w, 0)
    if tl.max(tl.max(tl.abs(L), 1), 0) <= LIMIT:
        a_ab, a_ak, r_b, r_k = _intra_factored(r, a, b, k, L, Lx, C, WITH_R, PREC)
    else:
        a_ab, a_ak, r_b, r_k = _intra_exact(r, a, b, k, L, Lx, C, WITH_R)
    # N = (I - A_ab)^-1 = (I + A)(I + A^2)(I + A^4)... (A strictly lower: A^C = 0)
    n = tl.where(oc[:, None] == oc[None, :], 1.0, 0.0).to(tl.float32) + a_ab
    p = a_ab
    for _ in tl.static_range(LOG2C - 1):
        p = tl.dot(p, p, input_precision=PREC)
        n = n + tl.dot(n, p, input_precision=PREC)
    wa = tl.dot(n, a * tl.exp(Lx), input_precision=PREC)
    mak = tl.dot(n, a_ak, input_precision=PREC)
    rq = r * tl.exp(L)
    dl = tl.exp(last[None, :] - L)
    return wa, mak, rq, r_b, r_k, b * dl, k * dl, tl.exp(last)


@triton.jit
def _rwkv7_prep_kernel(r_ptr, w_ptr, k_ptr, a_ptr, b_ptr, wa_ptr, rq_ptr, bd_ptr, kd_ptr, mat_ptr, dec_ptr,
                       T, H, DK, NCHUNK, C: tl.constexpr, LOG2C: tl.constexpr, BK: tl.constexpr,
                       LIMIT: tl.constexpr, PREC: tl.constexpr):
    """One program per (chunk, batch*head): the chunk's terms, stored head-major for the walks.

    wa, rq, bd, kd: [BH, NCHUNK*C, Dk] (input dtype); mat: [BH, NCHUNK*C, 3C] = [Mak | R_b | R_k]
    (input dtype); dec: [BH, NCHUNK, Dk] float32.
    """
    c = tl.program_id(0)
    bh = tl.program_id(1)
    bb = bh // H
    h = bh % H
    DT = wa_ptr.dtype.element_ty
    ok = tl.arange(0, BK)
    oc = tl.arange(0, C)
    mk = ok < DK
    t = c * C + oc
    mtk = (t < T)[:, None] & mk[None, :]
    kp = ((bb * T + t) * H + h).to(tl.int64)[:, None] * DK + ok[None, :]  # int64: B*T*H*D may pass 2^31
    wa, mak, rq, r_b, r_k, bd, kd, dec = _chunk_terms(r_ptr, w_ptr, k_ptr, a_ptr, b_ptr, kp, mtk, C, LOG2C,
                                                      True, LIMIT, PREC)
    prow = (bh * NCHUNK * C + t).to(tl.int64)
    pp = prow[:, None] * DK + ok[None, :]
    mp = mk[None, :] & (oc >= 0)[:, None]
    tl.store(wa_ptr + pp, wa.to(DT), mask=mp)
    tl.store(rq_ptr + pp, rq.to(DT), mask=mp)
    tl.store(bd_ptr + pp, bd.to(DT), mask=mp)
    tl.store(kd_ptr + pp, kd.to(DT), mask=mp)
    mp3 = prow[:, None] * (3 * C) + oc[None, :]
    tl.store(mat_ptr + mp3, mak.to(DT))
    tl.store(mat_ptr + mp3 + C, r_b.to(DT))
    tl.store(mat_ptr + mp3 + 2 * C, r_k.to(DT))
    tl.store(dec_ptr + (bh * NCHUNK + c) * DK + ok, dec, mask=mk)


@triton.jit
def _rwkv7_walk_kernel(r_ptr, w_ptr, k_ptr, v_ptr, a_ptr, b_ptr, wa_ptr, rq_ptr, bd_ptr, kd_ptr, mat_ptr,
                       dec_ptr, o_ptr, s0_ptr, start_ptr, last_ptr, st_ptr, ext_ptr, scale, T, H, DK, DV,
                       SEGC, NCHUNK, NSEG, COL0,
                       C: tl.constexpr, LOG2C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                       SUMMARY: tl.constexpr, IDENT: tl.constexpr, SEGMENTED: tl.constexpr, HAS_S0: tl.constexpr,
                       STORE_S: tl.constexpr, PRE: tl.constexpr, WITH_R: tl.constexpr, LIMIT: tl.constexpr,
                       PREC: tl.constexpr):
    """One program per (value block, segment, batch*head) walks the segment's chunks.

    SUMMARY: value block iv covers columns COL0 + iv*BV.. of the extended state [M | B]
    ([Dk, Dk + Dv]; IDENT: the M columns, which start from I and have no values, so the V terms
    are skipped); stores the segment's end tile into ext. Otherwise: outputs, from the segment's
    start state.
    PRE: the chunk terms come from the prep kernel's buffers, else they are computed here
    (WITH_R = not SUMMARY: whether the output terms are needed).
    """
    iv = tl.program_id(0)
    seg = tl.program_id(1)
    bh = tl.program_id(2)
    bb = bh // H
    h = bh % H
    DT = v_ptr.dtype.element_ty
    ok = tl.arange(0, BK)
    oc = tl.arange(0, C)
    mk = ok < DK
    ob = COL0 + iv * BV + tl.arange(0, BV)  # column of the (extended) state
    if SUMMARY:
        ov = ob - DK  # value column; < 0 for the identity block
        mv = (ov >= 0) & (ov < DV)
        s = tl.where(ok[:, None] == ob[None, :], 1.0, 0.0).to(tl.float32)
    else:
        ov = ob
        mv = ov < DV
        sp = bh * DK * DV + ok[:, None] * DV + ov[None, :]
        m2 = mk[:, None] & mv[None, :]
        if SEGMENTED:
            if seg == NSEG - 1:
                s = tl.load(last_ptr + sp, mask=m2, other=0.0)
            else:
                s = tl.load(start_ptr + seg * (tl.num_programs(2) * DK * DV) + sp, mask=m2, other=0.0)
        elif HAS_S0:
            s = tl.load(s0_ptr + sp, mask=m2, other=0.0)
        else:
            s = tl.zeros([BK, BV], dtype=tl.float32)
    c_lo = seg * SEGC
    c_hi = tl.minimum(c_lo + SEGC, NCHUNK)
    for c in range(c_lo, c_hi):
        t = c * C + oc
        mt = t < T
        row = ((bb * T + t) * H + h).to(tl.int64)
        if PRE:
            prow = (bh * NCHUNK * C + t).to(tl.int64)
            pp = prow[:, None] * DK + ok[None, :]
            mp = mk[None, :] & (oc >= 0)[:, None]
            mp3 = prow[:, None] * (3 * C) + oc[None, :]
            wa = tl.load(wa_ptr + pp, mask=mp, other=0.0)
            bd = tl.load(bd_ptr + pp, mask=mp, other=0.0)
            kd = tl.load(kd_ptr + pp, mask=mp, other=0.0)
            mak = tl.load(mat_ptr + mp3)
            dec = tl.load(dec_ptr + (bh * NCHUNK + c) * DK + ok, mask=mk, other=1.0)
            if SUMMARY:
                rq = wa
                r_b = mak
                r_k = mak
            else:
                rq = tl.load(rq_ptr + pp, mask=mp, other=0.0)
                r_b = tl.load(mat_ptr + mp3 + C)
                r_k = tl.load(mat_ptr + mp3 + 2 * C)
        else:
            kp = row[:, None] * DK + ok[None, :]
            mtk = mt[:, None] & mk[None, :]
            wa, mak, rq, r_b, r_k, bd, kd, dec = _chunk_terms(r_ptr, w_ptr, k_ptr, a_ptr, b_ptr, kp, mtk, C,
                                                              LOG2C, WITH_R, LIMIT, PREC)
        if IDENT:
            u = tl.dot(wa.to(DT), s.to(DT))
        else:
            v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :], other=0.0)
            u = tl.dot(wa.to(DT), s.to(DT)) + tl.dot(mak.to(DT), v)
        ud = u.to(DT)
        if not SUMMARY:
            o = tl.dot(rq.to(DT), s.to(DT)) + tl.dot(r_b.to(DT), ud) + tl.dot(r_k.to(DT), v)
            tl.store(o_ptr + row[:, None] * DV + ov[None, :], (o * scale).to(o_ptr.dtype.element_ty),
                     mask=mt[:, None] & mv[None, :])
        if IDENT:
            s = s * dec[:, None] + tl.dot(tl.trans(bd.to(DT)), ud)
        else:
            s = s * dec[:, None] + tl.dot(tl.trans(bd.to(DT)), ud) + tl.dot(tl.trans(kd.to(DT)), v)
    if SUMMARY:
        if IDENT:
            end = DK  # a block past Dk must not overwrite B columns
        else:
            end = DK + DV
        ep = ((seg * tl.num_programs(2) + bh) * DK + ok[:, None]) * (DK + DV) + ob[None, :]
        tl.store(ext_ptr + ep, s, mask=mk[:, None] & (ob < end)[None, :])
    elif STORE_S:
        if seg == NSEG - 1:
            tl.store(st_ptr + sp, s, mask=m2)


def _chunk(chunk: int | None) -> int:
    if chunk is None:
        chunk = int(os.environ.get("GONI_RWKV7_CHUNK", CHUNK))
    if chunk not in (16, 32):  # 64 needs more shared memory than an H100 has (Triton 3.6)
        raise ValueError(f"rwkv7 chunk must be 16 or 32, got {chunk!r}")
    return chunk


def _prep(inputs, t: int, h: int, dk: int, nchunk: int, c: int, bk: int, common: dict) -> tuple:
    """The chunk terms of every chunk, once (the walks then only load them)."""
    r, w, k, v, a, b = inputs
    bh = r.shape[0] * h
    wa, rq, bd, kd = (torch.empty(bh, nchunk * c, dk, device=r.device, dtype=r.dtype) for _ in range(4))
    mat = torch.empty(bh, nchunk * c, 3 * c, device=r.device, dtype=r.dtype)
    dec = torch.empty(bh, nchunk, dk, device=r.device, dtype=torch.float32)
    _rwkv7_prep_kernel[(nchunk, bh)](r, w, k, a, b, wa, rq, bd, kd, mat, dec, t, h, dk, nchunk, C=c,
                                     LOG2C=common["LOG2C"], BK=bk, LIMIT=common["LIMIT"], PREC=common["PREC"],
                                     num_warps=8)
    return wa, rq, bd, kd, mat, dec


def rwkv7_fwd(r, w, k, v, a, b, scale, initial_state=None, output_final_state=False,
              segment_chunks: int | None = None, bv: int | None = None, num_warps: int | None = None,
              chunk: int | None = None, fused: bool | None = None):
    """RWKV-7 forward on CUDA (or under TRITON_INTERPRET=1): (o [B, T, H, Dv], final state or None).

    w: log-decay [B, T, H, Dk]. Options for benchmark sweeps: `segment_chunks` (chunks per segment,
    0 = one segment; see segments.plan), `bv` (value block), `num_warps`, `chunk` (16, 32;
    env GONI_RWKV7_CHUNK), `fused` (compute the chunk terms inside the walks instead of once in a
    prep kernel; env GONI_RWKV7_FUSED=1).
    """
    bs, t, h, dk = r.shape
    dv = v.shape[-1]
    scale = checks.scale(scale, dk)
    c = _chunk(chunk)
    if fused is None:
        fused = os.environ.get("GONI_RWKV7_FUSED", "0") == "1"
    bh = bs * h
    r, w, k, v, a, b = (x.contiguous() for x in (r, w, k, v, a, b))
    bk, bv = tiles(dk, dv, bv, 128)  # 128 (8 warps): fastest at 2k-128k on the H100
    prec = dot_precision(r.dtype)
    nchunk = triton.cdiv(t, c)
    segc, nseg = segments.plan(t, c, bh * triton.cdiv(dv, bv), r.device, segment_chunks, programs_per_sm=1,
                               min_chunks=1024 // c)  # five launches: a short sequence is better in few segments
    o = torch.empty_like(v, dtype=r.dtype)
    s0, has_s0 = state_in(initial_state, o)
    st = state_out(output_final_state, bs, h, dk, dv, r)
    common = dict(C=c, LOG2C=c.bit_length() - 1, BK=bk, HAS_S0=has_s0, LIMIT=FACTOR_LIMIT,
                  PREC=prec, PRE=not fused, num_warps=num_warps or (8 if bv >= 64 else 4))
    inputs = (r, w, k, v, a, b)
    terms = (o,) * 6 if fused else _prep(inputs, t, h, dk, nchunk, c, bk, common)
    start = last = o  # placeholders for pointers a mode does not read
    if nseg > 1:
        ext = torch.empty(nseg - 1, bh, dk, dk + dv, device=r.device, dtype=torch.float32)
        for ident, col0, width in ((True, 0, dk), (False, dk, dv)):
            grid = (triton.cdiv(width, bv), nseg - 1, bh)
            _rwkv7_walk_kernel[grid](*inputs, *terms, o, o, o, o, o, ext, scale, t, h, dk, dv, segc, nchunk,
                                     nseg - 1, col0, BV=bv, SUMMARY=True, IDENT=ident, SEGMENTED=False,
                                     STORE_S=False, WITH_R=False, **common)
        last = torch.empty(bh, dk, dv, device=r.device, dtype=torch.float32)
        start = segments.carry_matrix(ext, s0 if has_s0 else None, last)
    grid = (triton.cdiv(dv, bv), nseg, bh)
    _rwkv7_walk_kernel[grid](*inputs, *terms, o, s0, start, last,
                             st if st is not None else o, o, scale, t, h, dk, dv, segc, nchunk, nseg, 0,
                             BV=bv, SUMMARY=False, IDENT=False, SEGMENTED=nseg > 1, STORE_S=st is not None, WITH_R=True,
                             **common)
    return o, st
