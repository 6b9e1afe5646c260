"""Chunked backward of the (gated) delta rule: a state walk, a reverse walk, the WY backward.

Forward per chunk (see `delta_rule`, `wy`), b the chunk-local cumsum of g, S the state before it:
  U = X beta V,  W = X beta e^b K,  X = (I + A)^-1,  A_ij = beta_i e^{b_i - b_j} k_i.k_j (j < i)
  u = U - W S,   o = scale ((Q e^b) S + (Q K^T * D) u),   S' = e^{b_C} S + (K e^{b_C - b})^T u.
Backward, with dS the gradient of S' (reverse walk, last chunk first):
  du = scale (Q K^T * D)^T dO + (K e^{b_C - b}) dS,      dP = scale (dO u^T) * D
  dQ = scale (dO S^T) e^b + dP K,   dK = dP^T Q + e^{b_C - b} (u dS^T),   dU = du,   dW = -du S^T
  dS <- e^{b_C} dS + scale (Q e^b)^T dO - W^T du        (ends as the initial state's gradient)
then per chunk in parallel (WY backward), with dX = dU (beta V)^T + dW (beta e^b K)^T:
  dV = beta X^T dU,  dK += beta e^b X^T dW + M K + M^T K,  dA = -X^T dX X^T (strictly lower),
  M = dA * beta_i e^{b_i - b_j},  dbeta = rows of V X^T dU + e^b K X^T dW + (dA * e^{b_i - b_j} K K^T).
The decay needs no bookkeeping of its own: with S~_t = e^{-B_t} S_t (B the global cumsum of g) the
recurrence is the plain delta rule on q e^B and v e^-B, so dL/dB_t = q_t.dq_t - v_t.dv_t, and dg_t is
its reverse cumsum over the rest of t's chunk plus dL/dB summed over every later token, which is
sum(S dS) over the state entering the next chunk (scaling that state by e^d is adding d to B from
there on; the final state's sum(S_T dS_T) for the last chunk). Summing q.dq - v.dv over all of T
instead cancels: bf16 / tf32 rounding in dq, dv grows with T (gate error 7e-2 at T 1000, bf16).

Precision (bf16 inputs): U and u = U - W S stay float32 and enter the state update and dP = dO u^T
(and u dS^T) split into two bf16 halves: u is a small difference of large terms, and rounding it or
U to bf16 put 1.4e-2 into dq, dk and 2.2e-2 into dg at T 1000, D 128 (now 0.9e-2 and 1.1e-2,
emulated: `benchmarks/grad_precision.py`).

Stored and recomputed: the forward keeps only its inputs. The backward recomputes U and W (`wy.wy`),
then walks the chunks once forward storing the state before every chunk ([B*H, N, Dk, Dv] float32,
freed when the backward returns) and u = U - W S; the reverse walk reads them. Both walks run one
program per (value block, batch*head) over the whole sequence (no segments yet: the reverse carry
of a full transition is a matrix product per segment, not written).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import common as shared
from . import wy
from .common import chunk_log_decay, chunk_reverse_cumsum, decayed_scores, dot_precision, tiles, unit_lower_inverse

# The backward recomputes U, W and the states itself, so it picks its own chunk: 32 (at 64 the
# reverse walk's [C, Dk] float32 tiles spill 1.6-3.4 KB on sm_90, ptxas of Triton 3.9; at 32 with
# BV = 64 and 8 warps: 0.8 KB, the state walk and the WY backward ~0).
CHUNK, BV, WARPS = 32, 64, 8


@triton.jit
def _state_walk_kernel(k_ptr, uw_ptr, w_ptr, g_ptr, s0_ptr, states_ptr, unew_ptr, st_ptr, T, H, DK, DV, NT,
                       C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_G: tl.constexpr,
                       HAS_S0: tl.constexpr, PRECISION: tl.constexpr):
    """Forward over all chunks: stores S before each chunk, u = U - W S (float32), the final state."""
    iv = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
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
    for n in range(0, NT):
        t = n * C + oc
        mt = t < T
        row = (b * T + t) * H + h
        mtk = mt[:, None] & mk[None, :]
        mtv = mt[:, None] & mv[None, :]
        tl.store(states_ptr + (bh * NT + n) * DK * DV + sp, s, mask=m2)
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        ww = tl.load(w_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        uu = tl.load(uw_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
        bc, blast = chunk_log_decay(g_ptr, row, mt, HAS_G, C)
        u = uu.to(tl.float32) - tl.dot(ww, s.to(k.dtype), input_precision=PRECISION)
        tl.store(unew_ptr + row[:, None] * DV + ov[None, :], u, mask=mtv)
        kd = (k.to(tl.float32) * tl.exp(blast - bc)[:, None]).to(k.dtype)
        s = s * tl.exp(blast) + _dot_split(tl.trans(kd), u)
    tl.store(st_ptr + bh * DK * DV + sp, s, mask=m2)


@triton.jit
def _dot_split(a, b):
    """a (the inputs' dtype) @ b (float32), b split into hi + lo of a's dtype (~16 mantissa bits for
    bf16: u = U - W S is a small difference, one bf16 rounding of it is 1e-2 of dq); float32 a: tf32x3."""
    if a.dtype == tl.float32:
        out = tl.dot(a, b, input_precision="tf32x3")
    else:
        hi = b.to(a.dtype)
        lo = (b - hi.to(tl.float32)).to(a.dtype)
        out = tl.dot(a, hi) + tl.dot(a, lo)
    return out


@triton.jit
def _add(ptr, x, mask, ATOMIC: tl.constexpr):
    if ATOMIC:
        tl.atomic_add(ptr, x, mask=mask)
    else:
        tl.store(ptr, x, mask=mask)


@triton.jit
def _reverse_walk_kernel(q_ptr, k_ptr, w_ptr, g_ptr, do_ptr, unew_ptr, states_ptr, dht_ptr,
                         dq_ptr, dk_ptr, dw_ptr, du_ptr, dh0_ptr, bnd_ptr, scale, B, T, H, DK, DV, NT,
                         C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_G: tl.constexpr,
                         HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr, ATOMIC: tl.constexpr,
                         PRECISION: tl.constexpr):
    """Reverse over all chunks: dQ, dK (walk part), dW (value-block partial sums), dU, dS, and
    sum(S dS) over the state before every chunk (this value block's part, bnd [NV, B, NT, H])."""
    iv = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
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
    causal = oc[:, None] >= oc[None, :]
    for i in range(0, NT):
        n = NT - 1 - i
        t = n * C + oc
        mt = t < T
        row = (b * T + t) * H + h
        mtk = mt[:, None] & mk[None, :]
        mtv = mt[:, None] & mv[None, :]
        q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        ww = tl.load(w_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        do = tl.load(do_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
        u = tl.load(unew_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
        s = tl.load(states_ptr + (bh * NT + n) * DK * DV + sp, mask=m2, other=0.0)
        bc, blast = chunk_log_decay(g_ptr, row, mt, HAS_G, C)
        dmat = tl.exp(tl.where(causal, bc[:, None] - bc[None, :], float("-inf")))
        att = decayed_scores(q, k, bc, causal, PRECISION) * scale
        ek = tl.exp(blast - bc)[:, None]
        eq = tl.exp(bc)[:, None]
        kd = (k.to(tl.float32) * ek).to(k.dtype)
        du = tl.dot(tl.trans(att).to(do.dtype), do, input_precision=PRECISION)
        du += tl.dot(kd, ds.to(k.dtype), input_precision=PRECISION)
        dp = _dot_split(do, tl.trans(u)) * dmat * scale
        dq = tl.dot(do, tl.trans(s.to(do.dtype)), input_precision=PRECISION) * eq * scale
        dq += tl.dot(dp.to(k.dtype), k, input_precision=PRECISION)
        dk = tl.dot(tl.trans(dp).to(q.dtype), q, input_precision=PRECISION)
        dk += tl.trans(_dot_split(ds.to(k.dtype), tl.trans(u))) * ek
        dw = -tl.dot(du.to(k.dtype), tl.trans(s.to(k.dtype)), input_precision=PRECISION)
        _add(dq_ptr + row[:, None] * DK + ok[None, :], dq, mtk, ATOMIC)
        _add(dk_ptr + row[:, None] * DK + ok[None, :], dk, mtk, ATOMIC)
        _add(dw_ptr + row[:, None] * DK + ok[None, :], dw, mtk, ATOMIC)
        tl.store(du_ptr + row[:, None] * DV + ov[None, :], du, mask=mtv)
        qd = (q.to(tl.float32) * eq * scale).to(do.dtype)
        ds = ds * tl.exp(blast) + tl.dot(tl.trans(qd), do, input_precision=PRECISION)
        ds -= tl.dot(tl.trans(ww), du.to(ww.dtype), input_precision=PRECISION)
        if HAS_G:
            tl.store(bnd_ptr + ((iv * B + b) * NT + n) * H + h, tl.sum(tl.sum(s * ds, 1), 0))
    if STORE_DH0:
        tl.store(dh0_ptr + bh * DK * DV + sp, ds, mask=m2)


@triton.jit
def _wy_bwd_kernel(q_ptr, k_ptr, v_ptr, beta_ptr, g_ptr, du_ptr, dw_ptr, dqw_ptr, dkw_ptr,
                   dq_ptr, dk_ptr, dv_ptr, dbeta_ptr, db_ptr, T, H, DK, DV,
                   C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                   HAS_G: tl.constexpr, PRECISION: tl.constexpr, INV_PRECISION: tl.constexpr,
                   MASK_RESULT: tl.constexpr):
    """One chunk: the WY backward (dV, dbeta, the rest of dK), dQ / dK / dV in the inputs' dtype and
    dL/dB = q.dq - v.dv per token (float32)."""
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
    mtk = mt[:, None] & mk[None, :]
    mtv = mt[:, None] & mv[None, :]
    k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
    v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
    beta = tl.load(beta_ptr + row, mask=mt, other=0.0).to(tl.float32)
    bc, _ = chunk_log_decay(g_ptr, row, mt, HAS_G, C)
    strict = oc[:, None] > oc[None, :]
    dec = tl.exp(tl.where(strict, bc[:, None] - bc[None, :], float("-inf")))
    kf = k.to(tl.float32)
    kk = tl.dot(kf, tl.trans(kf), input_precision=INV_PRECISION)
    a = kk * (beta[:, None] * dec)
    x = unit_lower_inverse(a, C, INV_PRECISION, MASK_RESULT)
    du = tl.load(du_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
    dw = tl.load(dw_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
    xt = tl.trans(x)
    xtu = tl.dot(xt, du, input_precision=INV_PRECISION)
    xtw = tl.dot(xt, dw, input_precision=INV_PRECISION)
    vf = v.to(tl.float32)
    eb = tl.exp(bc)
    vb = vf * beta[:, None]
    kb = kf * (beta * eb)[:, None]
    dx = tl.dot(du, tl.trans(vb), input_precision=INV_PRECISION)
    dx += tl.dot(dw, tl.trans(kb), input_precision=INV_PRECISION)
    da = -tl.dot(tl.dot(xt, dx, input_precision=INV_PRECISION), xt, input_precision=INV_PRECISION)
    da = tl.where(strict, da, 0.0)
    m = da * beta[:, None] * dec
    dk = tl.load(dkw_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
    dk += xtw * (beta * eb)[:, None]
    dk += tl.dot(m, kf, input_precision=INV_PRECISION) + tl.dot(tl.trans(m), kf, input_precision=INV_PRECISION)
    dv = xtu * beta[:, None]
    dbeta = tl.sum(vf * xtu, 1) + tl.sum(kf * eb[:, None] * xtw, 1) + tl.sum(da * dec * kk, 1)
    dq = tl.load(dqw_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
    q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
    tl.store(db_ptr + row, tl.sum(q * dq, 1) - tl.sum(vf * dv, 1), mask=mt)
    tl.store(dq_ptr + row[:, None] * DK + ok[None, :], dq.to(dq_ptr.dtype.element_ty), mask=mtk)
    tl.store(dk_ptr + row[:, None] * DK + ok[None, :], dk.to(dk_ptr.dtype.element_ty), mask=mtk)
    tl.store(dv_ptr + row[:, None] * DV + ov[None, :], dv.to(dv_ptr.dtype.element_ty), mask=mtv)
    tl.store(dbeta_ptr + row, dbeta.to(dbeta_ptr.dtype.element_ty), mask=mt)


def delta_bwd(q, k, v, g, beta, do, dht, scale, *, initial_state, chunk: int = CHUNK, need_dh0: bool = False,
              bv: int | None = None, num_warps: int | None = None):
    """(dq, dk, dv, dg or None, dbeta, dh0 or None) of the (gated) delta rule; g None: plain.

    q, k, v contiguous as the forward ran them; dq/dk/dv/dg/dbeta in the inputs' dtypes.
    """
    b, t, h, dk_ = q.shape
    dv_ = v.shape[-1]
    dev = q.device
    do = do.to(k.dtype).contiguous()
    beta = beta.contiguous()
    gp = g.contiguous() if g is not None else beta
    nt = triton.cdiv(t, chunk)
    bk, bv = tiles(dk_, dv_, bv, BV)
    nv = triton.cdiv(dv_, bv)
    prec = dot_precision(q.dtype)
    stages = 1 if q.element_size() == 4 else 2
    u_wy, w_wy, _ = wy.wy(k, v, g, beta, chunk, u_dtype=torch.float32)
    states = torch.empty(b * h, nt, dk_, dv_, device=dev, dtype=torch.float32)
    unew = torch.empty_like(u_wy)
    st = torch.empty(b, h, dk_, dv_, device=dev, dtype=torch.float32)
    s0 = initial_state.float().contiguous() if initial_state is not None else None
    common = dict(C=chunk, BK=bk, BV=bv, HAS_G=g is not None, PRECISION=prec, num_warps=num_warps or WARPS,
                  num_stages=stages)
    _state_walk_kernel[(nv, b * h)](k, u_wy, w_wy, gp, s0 if s0 is not None else st, states, unew, st,
                                    t, h, dk_, dv_, nt, HAS_S0=s0 is not None, **common)
    atomic = nv > 1
    alloc = torch.zeros if atomic else torch.empty
    dq_w = alloc(b, t, h, dk_, device=dev, dtype=torch.float32)
    dk_w = alloc(b, t, h, dk_, device=dev, dtype=torch.float32)
    dw = alloc(b, t, h, dk_, device=dev, dtype=torch.float32)
    du = torch.empty(b, t, h, dv_, device=dev, dtype=torch.float32)
    dh0 = torch.empty(b, h, dk_, dv_, device=dev, dtype=torch.float32) if need_dh0 else None
    dht_ = dht.float().contiguous() if dht is not None else None
    bnd = torch.empty(nv, b, nt, h, device=dev, dtype=torch.float32) if g is not None else st
    _reverse_walk_kernel[(nv, b * h)](q, k, w_wy, gp, do, unew, states, dht_ if dht_ is not None else st,
                                      dq_w, dk_w, dw, du, dh0 if dh0 is not None else st, bnd, scale, b, t, h,
                                      dk_, dv_, nt, HAS_DHT=dht_ is not None, STORE_DH0=dh0 is not None, ATOMIC=atomic,
                                      **common)
    del states
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    dbeta = torch.empty_like(beta)
    db = torch.empty(b, t, h, device=dev, dtype=torch.float32)
    _wy_bwd_kernel[(nt, b * h)](q, k, v, beta, gp, du, dw, dq_w, dk_w, dq, dk, dv, dbeta, db, t, h, dk_, dv_,
                                C=chunk, BK=bk,
                                BV=max(16, triton.next_power_of_2(dv_)), HAS_G=g is not None, PRECISION=prec,
                                INV_PRECISION="tf32x3" if q.dtype == torch.float32 else "tf32",
                                # float32: the masks on A (ptxas sm_90, Triton 3.6: 288 B spill against 684 B)
                                MASK_RESULT=shared.WY_MASK_RESULT and q.dtype != torch.float32, num_warps=8,
                                num_stages=stages)
    dg = None
    if g is not None:  # bnd[:, :, n]: sum(S dS) before chunk n, i.e. dL/dB summed from chunk n on
        last = (st * dht.float()).sum((-1, -2)) if dht is not None else torch.zeros(b, h, device=dev)
        bnd = torch.cat((bnd.sum(0)[:, 1:], last[:, None]), 1)
        dg = chunk_reverse_cumsum(db, chunk, bnd).to(g.dtype)
    return dq, dk, dv, dg, dbeta, dh0
