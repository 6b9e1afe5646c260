"""Chunked backward of RWKV-7: the forward's prep, a state walk, a reverse walk, a chunk kernel.

Forward per chunk (see `rwkv7`), S the state before it, with the prep's terms
Wa = N (a e^Lx), Mak = N A_ak, N = (I - A_ab)^-1, rq = r e^L, R_b, R_k, bd = b e^(Lc - L),
kd = k e^(Lc - L), dec = e^Lc:
  u = Wa S + Mak V,   o = scale (rq S + R_b u + R_k V),   S' = dec S + bd^T u + kd^T V.
Reverse walk (last chunk first), g = scale dO, dS the gradient of S':
  du = R_b^T g + bd dS,   dV = R_k^T g + Mak^T du + kd dS,
  d rq = g S^T, d Wa = du S^T, d bd = u dS^T, d kd = V dS^T,
  d R_b = g u^T, d R_k = g V^T, d Mak = du V^T,      dS <- dec dS + rq^T g + Wa^T du.
Chunk kernel (all chunks in parallel) through the prep's algebra:
  dN = dWa (a e^Lx)^T + dMak A_ak^T,  dA_ab = N^T dN N^T,  dA_ak = N^T dMak  (strictly lower),
  da = (N^T dWa) e^Lx + pairwise terms, dr = d rq e^L + ..., db = d bd e^(Lc - L) + ..., dk likewise,
where each pairwise matrix P_ij = sum_d x_id y_jd e^(bx_id - by_jd) gives dx = (dP (y e^-by)) e^bx and
dy = (dP^T (x e^bx)) e^-by (factorized as in the forward while the chunk's |L| <= FACTOR_LIMIT,
else column by column with exact exponent differences).
The decay needs no chain of its own: with S~_t = e^{-B_t} S_t (B the cumsum of w per channel) the
recurrence has no decay and reads r e^B, a e^(B_{t-1}), b e^-B, k e^-B, so per channel
dL/dB_t = r dr - b db - k dk + a_{t+1} da_{t+1}, and dw_t is its sum over the rest of t's chunk plus
dL/dB summed over all later tokens, which is sum_v(S dS) over the state entering the next chunk
(scaling that state by e^d per channel is adding d to B from there on; sum_v(S_T dS_T) for the last
chunk). Summing over all of T instead cancels: the dots' bf16 rounding grows with T (dw 3e-2 at T 1000).

Stored and recomputed: the forward keeps only its inputs. The backward reruns the prep kernel
(chunk terms, input dtype), walks once forward storing the state before every chunk
([B*H, N, Dk, Dv] float32, freed on return: 4 Dk Dv bytes per 16 tokens and head) and u, then the
reverse walk, one program per (value block, batch*head) over the whole sequence (no segments: the
reverse carry of a full transition is a matrix product, not written).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import rwkv7
from .common import chunk_reverse_cumsum, dot_precision, tiles
from .rwkv7 import _intra_exact, _intra_factored

# value block 32 with 8 warps: ptxas (sm_90, Triton 3.9) reports 0.6 KB of spill in the reverse walk at
# Dk = 128 (BV = 64: 2-3 KB)
BV, WARPS = 32, 8


@triton.jit
def _add(ptr, x, mask, ATOMIC: tl.constexpr):
    if ATOMIC:
        tl.atomic_add(ptr, x, mask=mask)
    else:
        tl.store(ptr, x, mask=mask)


@triton.jit
def _state_walk_kernel(v_ptr, wa_ptr, bd_ptr, kd_ptr, mat_ptr, dec_ptr, s0_ptr, states_ptr, u_ptr, st_ptr,
                       T, H, DK, DV, NCHUNK, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                       HAS_S0: tl.constexpr):
    """Forward over all chunks: the state before each chunk (float32), u per token, the final state."""
    iv = tl.program_id(0)
    bh = tl.program_id(1)
    bb = bh // H
    h = bh % H
    DT = v_ptr.dtype.element_ty
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    oc = tl.arange(0, C)
    mk = ok < DK
    mv = ov < DV
    m2 = mk[:, None] & mv[None, :]
    sp = ok[:, None] * DV + ov[None, :]
    if HAS_S0:
        s = tl.load(s0_ptr + bh * DK * DV + sp, mask=m2, other=0.0)
    else:
        s = tl.zeros([BK, BV], dtype=tl.float32)
    for c in range(0, NCHUNK):
        t = c * C + oc
        mt = t < T
        row = ((bb * T + t) * H + h).to(tl.int64)
        prow = (bh * NCHUNK * C + t).to(tl.int64)
        pp = prow[:, None] * DK + ok[None, :]
        mp = mk[None, :] & (oc >= 0)[:, None]
        tl.store(states_ptr + (bh * NCHUNK + c).to(tl.int64) * DK * DV + sp, s, mask=m2)
        wa = tl.load(wa_ptr + pp, mask=mp, other=0.0)
        bd = tl.load(bd_ptr + pp, mask=mp, other=0.0)
        kd = tl.load(kd_ptr + pp, mask=mp, other=0.0)
        mak = tl.load(mat_ptr + prow[:, None] * (3 * C) + oc[None, :])
        dec = tl.load(dec_ptr + (bh * NCHUNK + c) * DK + ok, mask=mk, other=1.0)
        v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :], other=0.0)
        u = tl.dot(wa.to(DT), s.to(DT)) + tl.dot(mak.to(DT), v)
        ud = u.to(DT)
        tl.store(u_ptr + prow[:, None] * DV + ov[None, :], ud, mask=(oc >= 0)[:, None] & mv[None, :])
        s = s * dec[:, None] + tl.dot(tl.trans(bd.to(DT)), ud) + tl.dot(tl.trans(kd.to(DT)), v)
    tl.store(st_ptr + bh * DK * DV + sp, s, mask=m2)


@triton.jit
def _reverse_kernel(v_ptr, do_ptr, wa_ptr, rq_ptr, bd_ptr, kd_ptr, mat_ptr, dec_ptr, states_ptr, u_ptr, dht_ptr,
                    dv_ptr, dterm_ptr, dmat_ptr, dh0_ptr, bnd_ptr, scale, B, T, H, DK, DV, NCHUNK,
                    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_DHT: tl.constexpr,
                    STORE_DH0: tl.constexpr, ATOMIC: tl.constexpr):
    """Reverse over all chunks: dV (complete per value block), the gradients of the prep's terms
    (d rq, d Wa, d bd, d kd into dterm [4, BH, N*C, Dk]; d Mak, d R_b, d R_k into dmat [BH, N*C, 3C],
    value-block partial sums), dS, and sum_v(S dS) over the state before every chunk (this value
    block's part, bnd [NV, B, NCHUNK, H, Dk])."""
    iv = tl.program_id(0)
    bh = tl.program_id(1)
    bb = bh // H
    h = bh % H
    DT = v_ptr.dtype.element_ty
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    oc = tl.arange(0, C)
    mk = ok < DK
    mv = ov < DV
    m2 = mk[:, None] & mv[None, :]
    sp = ok[:, None] * DV + ov[None, :]
    if HAS_DHT:
        ds = tl.load(dht_ptr + bh * DK * DV + sp, mask=m2, other=0.0)
    else:
        ds = tl.zeros([BK, BV], dtype=tl.float32)
    term = NCHUNK * C * DK * tl.num_programs(1)  # stride between the four dterm planes
    for i in range(0, NCHUNK):
        c = NCHUNK - 1 - i
        t = c * C + oc
        mt = t < T
        row = ((bb * T + t) * H + h).to(tl.int64)
        prow = (bh * NCHUNK * C + t).to(tl.int64)
        pp = prow[:, None] * DK + ok[None, :]
        mp = mk[None, :] & (oc >= 0)[:, None]
        mp3 = prow[:, None] * (3 * C) + oc[None, :]
        mtv = mt[:, None] & mv[None, :]
        # every dot operand in DT (v's dtype, as the forward's walks), whatever dtype the prep terms have
        wa = tl.load(wa_ptr + pp, mask=mp, other=0.0).to(DT)
        rq = tl.load(rq_ptr + pp, mask=mp, other=0.0).to(DT)
        bd = tl.load(bd_ptr + pp, mask=mp, other=0.0).to(DT)
        kd = tl.load(kd_ptr + pp, mask=mp, other=0.0).to(DT)
        mak = tl.load(mat_ptr + mp3).to(DT)
        r_b = tl.load(mat_ptr + mp3 + C).to(DT)
        r_k = tl.load(mat_ptr + mp3 + 2 * C).to(DT)
        dec = tl.load(dec_ptr + (bh * NCHUNK + c) * DK + ok, mask=mk, other=1.0)
        s = tl.load(states_ptr + (bh * NCHUNK + c).to(tl.int64) * DK * DV + sp, mask=m2, other=0.0)
        u = tl.load(u_ptr + prow[:, None] * DV + ov[None, :], mask=(oc >= 0)[:, None] & mv[None, :],
                    other=0.0).to(DT)
        v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
        g = (tl.load(do_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0).to(tl.float32) * scale).to(DT)
        dsd = ds.to(DT)
        sd = s.to(DT)
        du = tl.dot(tl.trans(r_b), g) + tl.dot(bd, dsd)
        dud = du.to(DT)
        dv = tl.dot(tl.trans(r_k), g) + tl.dot(tl.trans(mak), dud) + tl.dot(kd, dsd)
        tl.store(dv_ptr + row[:, None] * DV + ov[None, :], dv.to(DT), mask=mtv)
        _add(dterm_ptr + pp, tl.dot(g, tl.trans(sd)), mp, ATOMIC)
        _add(dterm_ptr + term + pp, tl.dot(dud, tl.trans(sd)), mp, ATOMIC)
        _add(dterm_ptr + 2 * term + pp, tl.dot(u, tl.trans(dsd)), mp, ATOMIC)
        _add(dterm_ptr + 3 * term + pp, tl.dot(v, tl.trans(dsd)), mp, ATOMIC)
        all3 = (oc >= 0)[:, None] & (oc >= 0)[None, :]
        _add(dmat_ptr + mp3, tl.dot(dud, tl.trans(v)), all3, ATOMIC)
        _add(dmat_ptr + mp3 + C, tl.dot(g, tl.trans(u)), all3, ATOMIC)
        _add(dmat_ptr + mp3 + 2 * C, tl.dot(g, tl.trans(v)), all3, ATOMIC)
        ds = ds * dec[:, None] + tl.dot(tl.trans(rq), g) + tl.dot(tl.trans(wa), dud)
        tl.store(bnd_ptr + (((iv * B + bb) * NCHUNK + c) * H + h) * DK + ok, tl.sum(s * ds, 1), mask=mk)
    if STORE_DH0:
        tl.store(dh0_ptr + bh * DK * DV + sp, ds, mask=m2)


@triton.jit
def _pair_bwd(dp, x, y, bx, by, FACTORED: tl.constexpr, C: tl.constexpr, PREC: tl.constexpr):
    """(dx, dy) of P_ij = sum_d x_id y_jd e^(bx_id - by_jd) (dp already masked), float32."""
    if FACTORED:
        dx = tl.dot(dp, y * tl.exp(-by), input_precision=PREC) * tl.exp(bx)
        dy = tl.dot(tl.trans(dp), x * tl.exp(bx), input_precision=PREC) * tl.exp(-by)
    else:
        oc = tl.arange(0, C)
        dx = x * 0.0
        dy = y * 0.0
        for j in range(0, C):
            rowj = (oc == j)[:, None]
            byj = tl.sum(tl.where(rowj, by, 0.0), 0)[None, :]
            yj = tl.sum(tl.where(rowj, y, 0.0), 0)[None, :]
            colj = tl.sum(tl.where((oc == j)[None, :], dp, 0.0), 1)[:, None]  # dP[:, j]
            e = tl.exp(tl.where(colj != 0.0, bx - byj, float("-inf")))
            dx += colj * yj * e
            dyj = tl.sum(colj * x * e, 0)
            dy = tl.where(rowj, dy + dyj[None, :], dy)
    return dx, dy


@triton.jit
def _chunk_bwd_kernel(r_ptr, w_ptr, k_ptr, a_ptr, b_ptr, dterm_ptr, dmat_ptr, dr_ptr, dk_ptr, da_ptr, db_ptr,
                      x_ptr, y_ptr, T, H, DK, NCHUNK, C: tl.constexpr, LOG2C: tl.constexpr, BK: tl.constexpr,
                      LIMIT: tl.constexpr, PREC: tl.constexpr):
    """One chunk: dr, dk, da, db (inputs' dtype) and the decay terms X = r dr - b db - k dk, Y = a da."""
    c = tl.program_id(0)
    bh = tl.program_id(1)
    bb = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    oc = tl.arange(0, C)
    mk = ok < DK
    t = c * C + oc
    mt = t < T
    mtk = mt[:, None] & mk[None, :]
    kp = ((bb * T + t) * H + h).to(tl.int64)[:, None] * DK + ok[None, :]
    prow = (bh * NCHUNK * C + t).to(tl.int64)
    pp = prow[:, None] * DK + ok[None, :]
    mp = mk[None, :] & (oc >= 0)[:, None]
    mp3 = prow[:, None] * (3 * C) + oc[None, :]
    term = NCHUNK * C * DK * tl.num_programs(1)
    w = tl.load(w_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    r = tl.load(r_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    k = tl.load(k_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + kp, mask=mtk, other=0.0).to(tl.float32)
    L = tl.cumsum(w, 0)
    Lx = L - w
    last = tl.sum(w, 0)
    factored = tl.max(tl.max(tl.abs(L), 1), 0) <= LIMIT
    if factored:
        a_ab, a_ak, r_b, r_k = _intra_factored(r, a, b, k, L, Lx, C, True, PREC)
    else:
        a_ab, a_ak, r_b, r_k = _intra_exact(r, a, b, k, L, Lx, C, True)
    eye = tl.where(oc[:, None] == oc[None, :], 1.0, 0.0).to(tl.float32)
    n = eye + a_ab
    p = a_ab
    for _ in tl.static_range(LOG2C - 1):
        p = tl.dot(p, p, input_precision=PREC)
        n = n + tl.dot(n, p, input_precision=PREC)
    nt = tl.trans(n)
    d_rq = tl.load(dterm_ptr + pp, mask=mp, other=0.0)
    d_wa = tl.load(dterm_ptr + term + pp, mask=mp, other=0.0)
    d_bd = tl.load(dterm_ptr + 2 * term + pp, mask=mp, other=0.0)
    d_kd = tl.load(dterm_ptr + 3 * term + pp, mask=mp, other=0.0)
    d_mak = tl.load(dmat_ptr + mp3)
    d_rb = tl.load(dmat_ptr + mp3 + C)
    d_rk = tl.load(dmat_ptr + mp3 + 2 * C)
    strict = oc[:, None] > oc[None, :]
    lower = oc[:, None] >= oc[None, :]
    ax = a * tl.exp(Lx)
    dn = tl.dot(d_wa, tl.trans(ax), input_precision=PREC) + tl.dot(d_mak, tl.trans(a_ak), input_precision=PREC)
    d_ab = tl.where(strict, tl.dot(tl.dot(nt, dn, input_precision=PREC), nt, input_precision=PREC), 0.0)
    d_ak = tl.where(strict, tl.dot(nt, d_mak, input_precision=PREC), 0.0)
    d_rb = tl.where(lower, d_rb, 0.0)
    d_rk = tl.where(lower, d_rk, 0.0)
    dl = tl.exp(last[None, :] - L)
    da = tl.dot(nt, d_wa, input_precision=PREC) * tl.exp(Lx)
    dr = d_rq * tl.exp(L)
    db = d_bd * dl
    dk = d_kd * dl
    if factored:
        dx, dy = _pair_bwd(d_ab, a, b, Lx, L, True, C, PREC)
        da += dx
        db += dy
        dx, dy = _pair_bwd(d_ak, a, k, Lx, L, True, C, PREC)
        da += dx
        dk += dy
        dx, dy = _pair_bwd(d_rb, r, b, L, L, True, C, PREC)
        dr += dx
        db += dy
        dx, dy = _pair_bwd(d_rk, r, k, L, L, True, C, PREC)
        dr += dx
        dk += dy
    else:
        dx, dy = _pair_bwd(d_ab, a, b, Lx, L, False, C, PREC)
        da += dx
        db += dy
        dx, dy = _pair_bwd(d_ak, a, k, Lx, L, False, C, PREC)
        da += dx
        dk += dy
        dx, dy = _pair_bwd(d_rb, r, b, L, L, False, C, PREC)
        dr += dx
        db += dy
        dx, dy = _pair_bwd(d_rk, r, k, L, L, False, C, PREC)
        dr += dx
        dk += dy
    DT = dr_ptr.dtype.element_ty
    tl.store(dr_ptr + kp, dr.to(DT), mask=mtk)
    tl.store(dk_ptr + kp, dk.to(DT), mask=mtk)
    tl.store(da_ptr + kp, da.to(DT), mask=mtk)
    tl.store(db_ptr + kp, db.to(DT), mask=mtk)
    tl.store(x_ptr + kp, r * dr - b * db - k * dk, mask=mtk)
    tl.store(y_ptr + kp, a * da, mask=mtk)


def rwkv7_bwd(r, w, k, v, a, b, do, dht, scale, *, initial_state, need_dh0: bool = False, chunk: int | None = None,
              bv: int | None = None):
    """(dr, dw, dk, dv, da, db, dh0 or None); inputs contiguous as the forward ran them."""
    bs, t, h, dk_ = r.shape
    dv_ = v.shape[-1]
    dev = r.device
    c = rwkv7._chunk(chunk)
    bh = bs * h
    do = do.to(v.dtype).contiguous()
    bk, bv = tiles(dk_, dv_, bv, BV)
    nv = triton.cdiv(dv_, bv)
    nchunk = triton.cdiv(t, c)
    prec = dot_precision(r.dtype)
    common = dict(LOG2C=c.bit_length() - 1, LIMIT=rwkv7.FACTOR_LIMIT, PREC=prec)
    wa, rq, bd, kd, mat, dec = rwkv7._prep((r, w, k, v, a, b), t, h, dk_, nchunk, c, bk, common)
    stages = 1 if r.element_size() == 4 else 2
    states = torch.empty(bh, nchunk, dk_, dv_, device=dev, dtype=torch.float32)
    ubuf = torch.empty(bh, nchunk * c, dv_, device=dev, dtype=v.dtype)
    st = torch.empty(bs, h, dk_, dv_, device=dev, dtype=torch.float32)
    s0 = initial_state.float().contiguous() if initial_state is not None else None
    _state_walk_kernel[(nv, bh)](v, wa, bd, kd, mat, dec, s0 if s0 is not None else st, states, ubuf, st,
                                 t, h, dk_, dv_, nchunk, C=c, BK=bk, BV=bv, HAS_S0=s0 is not None,
                                 num_warps=WARPS, num_stages=stages)
    atomic = nv > 1
    alloc = torch.zeros if atomic else torch.empty
    dterm = alloc(4, bh, nchunk * c, dk_, device=dev, dtype=torch.float32)
    dmat = alloc(bh, nchunk * c, 3 * c, device=dev, dtype=torch.float32)
    dv = torch.empty_like(v)
    dh0 = torch.empty(bs, h, dk_, dv_, device=dev, dtype=torch.float32) if need_dh0 else None
    dht_ = dht.float().contiguous() if dht is not None else None
    bnd = torch.empty(nv, bs, nchunk, h, dk_, device=dev, dtype=torch.float32)
    _reverse_kernel[(nv, bh)](v, do, wa, rq, bd, kd, mat, dec, states, ubuf, dht_ if dht_ is not None else st,
                              dv, dterm, dmat, dh0 if dh0 is not None else st, bnd, scale, bs, t, h, dk_, dv_,
                              nchunk,
                              C=c, BK=bk, BV=bv, HAS_DHT=dht_ is not None, STORE_DH0=dh0 is not None, ATOMIC=atomic,
                              num_warps=WARPS, num_stages=stages)
    del states
    dr, dk, da, db = (torch.empty_like(x) for x in (r, k, a, b))
    xs = torch.empty(bs, t, h, dk_, device=dev, dtype=torch.float32)
    ys = torch.empty_like(xs)
    _chunk_bwd_kernel[(nchunk, bh)](r, w, k, a, b, dterm, dmat, dr, dk, da, db, xs, ys, t, h, dk_, nchunk, C=c,
                                    BK=bk, num_warps=8, num_stages=stages, **common)
    # dL/dB_t = r dr - b db - k dk + a_{t+1} da_{t+1} per channel; dw_t = its sum over the rest of t's
    # chunk plus sum_v(S dS) of the state entering the next chunk (bnd[:, :, c]: the state before chunk c)
    last = (st * dht.float()).sum(-1) if dht is not None else torch.zeros(bs, h, dk_, device=dev)
    bnd = torch.cat((bnd.sum(0)[:, 1:], last[:, None]), 1)
    dw = chunk_reverse_cumsum(xs.add_(ys), c, bnd) - ys
    return dr, dw.to(w.dtype), dk, dv, da, db, dh0
