"""Segment-parallel chunked backward of the diagonal-transition operators: scalar decay, GLA, RWKV-6.

Forward per chunk (see `diagonal`), b the log-decay summed from the chunk start, bq = b (or b - g
for RWKV-6), S the state before the chunk:
  o = scale (A V + (Q e^bq) S),   S' = diag(e^{b_C}) S + (K e^{b_C - b})^T V.
Backward, with dS the gradient of the state after the chunk:
  dQ = scale (dP K-terms)_intra + scale (dO S^T) e^bq          (intra + forward walk)
  dK = (dP^T Q-terms)_intra + (V dS^T) e^{b_C - b}              (intra + reverse walk)
  dV = scale A^T dO + (K e^{b_C - b}) dS                        (intra + reverse walk)
  dS_before = diag(e^{b_C}) dS + scale (Q e^bq)^T dO            (reverse walk)
with dP = dO V^T (causal; strictly causal for RWKV-6). The gradient of the log-decay needs no
walk of its own: every decay enters as q e^{B_i} and k e^{-B_j} of the global cumsum B, so
dL/dB_t = q_t dq_t - k_t dk_t (RWKV-6: the query term belongs to B_{t-1}), and dg_t is its sum over
the rest of t's chunk plus dL/dB summed over every later token, which is sum_v(S dS) of the state
entering the next chunk (scaling it by e^d per key is adding d to B from there on; sum_v(S_T dS_T)
for the last chunk). Summing q dq - k dk over all of T instead cancels, and the dots' tf32 / bf16
rounding in dq, dk grows with T: 6.4e-3 relative at T 1000 in float32 (tf32), against 1.7e-3 here.

What is stored and what is recomputed: the forward keeps its inputs, the segment start states it
already had ([NSEG, B*H, Dk, Dv], one per segment, none for a one-segment plan) and, for the
vector decays, the intra-chunk pairwise term A ([B, H, T, C] float32, for dV). The backward
recomputes the states before every chunk in a forward walk from the segment starts (dQ's state
term); the state gradients run as the forward does in reverse: a summary walk per segment from
zero (last chunk first), the diagonal carry across segments in reverse order (its last value is
the initial state's gradient), then the reverse output walk of every segment in parallel. The dQ
walk stores the state before every chunk ([B*H, T/C, Dk, Dv] float32, freed on return: 4 Dk Dv bytes
per chunk and head) for the output walk's sum_v(S dS); nothing of size T x Dk x Dv. dQ, dK, dV
accumulate in float32 buffers (the intra kernel writes, the walks add); when one value block holds
all of Dv the last reverse walk finishes them (inputs' dtype, dL/dB, RWKV-6's bonus terms), else
the key-side sums are atomic adds and torch finishes.
Launches: intra, dQ walk, then the reverse walk alone (one segment) or summary, carry, output; then
the chunk-local reverse cumsum of dL/dB in torch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import segments
from .common import chunk_log_decay, chunk_reverse_cumsum, dot_precision, tiles

SUB = 16  # row block of the vector-decay intra kernel (as `intra.pairwise`)
# Walks: one value block of up to 128 (all of Dv for the models' heads: no atomics, the last walk
# finishes every gradient) with 8 warps; ptxas (sm_90, Triton 3.9) reports 8-320 bytes of spill at
# Dk = Dv = 128 (4 warps: 1.3-1.5 KB). Two pipeline stages (one for float32 inputs: shared memory).
BV, WARPS = 128, 8
DIAGONAL_LIMIT = 30.0  # largest decay sum in a 16-row block for the one-matmul diagonal block


@triton.jit
def _dot_split(a, b):
    """a (float32) @ b (the inputs' dtype) to ~16 mantissa bits: a = hi + lo in b's dtype, two dots.

    A float32 b (float32 inputs) takes one tf32x3 dot instead. dQ and dK feed dg's reverse cumsum,
    whose early entries are small differences of large sums: one bf16 rounding of a is too coarse.
    """
    if b.dtype == tl.float32:
        out = tl.dot(a, b, input_precision="tf32x3")
    else:
        hi = a.to(b.dtype)
        lo = (a - hi.to(tl.float32)).to(b.dtype)
        out = tl.dot(hi, b) + tl.dot(lo, b)
    return out


@triton.jit
def _dot_split_right(a, b):
    """a (the inputs' dtype) @ b (float32), b split as in `_dot_split`."""
    if a.dtype == tl.float32:
        out = tl.dot(a, b, input_precision="tf32x3")
    else:
        hi = b.to(a.dtype)
        lo = (b - hi.to(tl.float32)).to(a.dtype)
        out = tl.dot(a, hi) + tl.dot(a, lo)
    return out


@triton.jit
def _intra_scalar_kernel(q_ptr, k_ptr, v_ptr, g_ptr, do_ptr, dq_ptr, dk_ptr, dv_ptr, scale,
                         T, H, DK, DV, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    """One chunk of the scalar-decay operator: dQ, dK, dV of its decayed causal attention."""
    n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = tl.arange(0, BV)
    oc = tl.arange(0, C)
    t = n * C + oc
    mt = t < T
    row = (b * T + t) * H + h
    mtk = mt[:, None] & (ok < DK)[None, :]
    mtv = mt[:, None] & (ov < DV)[None, :]
    v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
    do = tl.load(do_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
    q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(v.dtype)
    k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(v.dtype)
    bc, _ = chunk_log_decay(g_ptr, row, mt, True, C)
    causal = oc[:, None] >= oc[None, :]
    dmat = tl.exp(tl.where(causal, bc[:, None] - bc[None, :], float("-inf"))) * scale
    dp = tl.dot(do, tl.trans(v)) * dmat
    att = tl.dot(q, tl.trans(k)) * dmat
    dq = _dot_split(dp, k)
    dk = _dot_split(tl.trans(dp), q)
    dv = tl.dot(tl.trans(att).to(do.dtype), do)
    tl.store(dq_ptr + row[:, None] * DK + ok[None, :], dq, mask=mtk)
    tl.store(dk_ptr + row[:, None] * DK + ok[None, :], dk, mask=mtk)
    tl.store(dv_ptr + row[:, None] * DV + ov[None, :], dv, mask=mtv)


@triton.jit
def _intra_vector_kernel(q_ptr, k_ptr, v_ptr, g_ptr, do_ptr, a_ptr, dq_ptr, dk_ptr, dv_ptr, scale,
                         T, TP, H, DK, DV,
                         C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, SUB: tl.constexpr,
                         STRICT: tl.constexpr, SHIFT_X: tl.constexpr, PREC: tl.constexpr, LIMIT: tl.constexpr):
    """One 16-row block I of a chunk (vector decay): dQ_I over blocks J <= I, dK_I and dV_I over
    blocks J >= I. Off-diagonal pairs are matmuls factorized at the decay r of the earlier block's
    last row (every exponent <= 0); the diagonal block is factorized at its start while its decay
    sum stays within LIMIT, else summed column by column with the exact differences."""
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    NS: tl.constexpr = C // SUB
    n = pid // NS
    ib = pid % NS
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = tl.arange(0, BV)
    os_ = tl.arange(0, SUB)
    mk = ok < DK
    mv = ov < DV
    lower = (os_[:, None] >= os_[None, :]).to(tl.float32)
    ti = n * C + ib * SUB + os_
    mi = ti < T
    row_i = (b * T + ti) * H + h
    mik = mi[:, None] & mk[None, :]
    miv = mi[:, None] & mv[None, :]
    pre = tl.zeros([BK], dtype=tl.float32)
    for jb in range(0, ib):
        tj = n * C + jb * SUB + os_
        gj = tl.load(g_ptr + ((b * T + tj) * H + h)[:, None] * DK + ok[None, :],
                     mask=(tj < T)[:, None] & mk[None, :], other=0.0).to(tl.float32)
        pre += tl.sum(gj, 0)
    gi = tl.load(g_ptr + row_i[:, None] * DK + ok[None, :], mask=mik, other=0.0).to(tl.float32)
    bi = pre[None, :] + tl.dot(lower, gi, input_precision=PREC)
    if SHIFT_X:
        bxi = bi - gi
    else:
        bxi = bi
    qi = tl.load(q_ptr + row_i[:, None] * DK + ok[None, :], mask=mik, other=0.0).to(tl.float32)
    ki = tl.load(k_ptr + row_i[:, None] * DK + ok[None, :], mask=mik, other=0.0).to(tl.float32)
    doi = tl.load(do_ptr + row_i[:, None] * DV + ov[None, :], mask=miv, other=0.0)
    vi = tl.load(v_ptr + row_i[:, None] * DV + ov[None, :], mask=miv, other=0.0)
    a_rows = a_ptr + (bh * TP + n * C + ib * SUB + os_)[:, None] * C
    # dQ_I from earlier blocks J: sum_j dP_ij k_j e^{bx_i - b_j} = e^{bx_i - r} (dP (K_J e^{r - b_J}))
    dq = tl.zeros([SUB, BK], dtype=tl.float32)
    pj = pre * 0.0
    for jb in range(0, ib):
        tj = n * C + jb * SUB + os_
        mj = tj < T
        row_j = (b * T + tj) * H + h
        mjk = mj[:, None] & mk[None, :]
        gj = tl.load(g_ptr + row_j[:, None] * DK + ok[None, :], mask=mjk, other=0.0).to(tl.float32)
        bj = pj[None, :] + tl.dot(lower, gj, input_precision=PREC)
        r = pj + tl.sum(gj, 0)
        pj = r
        kj = tl.load(k_ptr + row_j[:, None] * DK + ok[None, :], mask=mjk, other=0.0).to(tl.float32)
        vj = tl.load(v_ptr + row_j[:, None] * DV + ov[None, :], mask=mj[:, None] & mv[None, :], other=0.0)
        dp = tl.dot(doi, tl.trans(vj))
        dq += tl.dot(dp, kj * tl.exp(r[None, :] - bj)) * tl.exp(bxi - r[None, :])
    # the diagonal block
    if STRICT:
        keep = os_[:, None] > os_[None, :]
    else:
        keep = os_[:, None] >= os_[None, :]
    dk = tl.zeros([SUB, BK], dtype=tl.float32)
    span = tl.max(tl.max(pre[None, :] - bi, 1), 0)
    if span <= LIMIT:
        dpii = tl.where(keep, tl.dot(doi, tl.trans(vi)), 0.0)
        dq += tl.dot(dpii, ki * tl.exp(pre[None, :] - bi)) * tl.exp(bxi - pre[None, :])
        dk += tl.dot(tl.trans(dpii), qi * tl.exp(bxi - pre[None, :])) * tl.exp(pre[None, :] - bi)
    else:
        bjj = pre
        for j in range(0, SUB):  # rows read one by one, exact exponent differences
            tj = n * C + ib * SUB + j
            mj = mk & ((ok * 0 + tj) < T)
            rj = ((b * T + tj) * H + h) * DK + ok
            bjj += tl.load(g_ptr + rj, mask=mj, other=0.0).to(tl.float32)
            kj = tl.load(k_ptr + rj, mask=mj, other=0.0).to(tl.float32)
            vj = tl.load(v_ptr + ((b * T + tj) * H + h) * DV + ov, mask=mv & ((ov * 0 + tj) < T),
                         other=0.0).to(tl.float32)
            if STRICT:
                keep_j = os_ > j
            else:
                keep_j = os_ >= j
            dpc = tl.sum(doi.to(tl.float32) * vj[None, :], 1)  # dP[:, j]
            e = tl.exp(tl.where(keep_j[:, None] & mk[None, :], bxi - bjj[None, :], float("-inf")))
            dq += dpc[:, None] * kj[None, :] * e
            dkj = tl.sum(dpc[:, None] * qi * e, 0)
            dk = tl.where(os_[:, None] == j, dk + dkj[None, :], dk)
    dv = tl.dot(tl.trans(tl.load(a_rows + ib * SUB + os_[None, :])).to(doi.dtype), doi)
    # dK_I, dV_I from later blocks L: dK = e^{r - b_I} (dP^T (Q_L e^{bx_L - r})), r the decay at I's end
    r_i = pre + tl.sum(gi, 0)
    pl = r_i
    for lb in range(ib + 1, C // SUB):
        tl_ = n * C + lb * SUB + os_
        ml = tl_ < T
        row_l = (b * T + tl_) * H + h
        mlk = ml[:, None] & mk[None, :]
        gl = tl.load(g_ptr + row_l[:, None] * DK + ok[None, :], mask=mlk, other=0.0).to(tl.float32)
        bl = pl[None, :] + tl.dot(lower, gl, input_precision=PREC)
        pl += tl.sum(gl, 0)
        if SHIFT_X:
            bxl = bl - gl
        else:
            bxl = bl
        ql = tl.load(q_ptr + row_l[:, None] * DK + ok[None, :], mask=mlk, other=0.0).to(tl.float32)
        dol = tl.load(do_ptr + row_l[:, None] * DV + ov[None, :], mask=ml[:, None] & mv[None, :], other=0.0)
        dp = tl.dot(dol, tl.trans(vi))  # [L rows, I cols]
        dk += tl.dot(tl.trans(dp), ql * tl.exp(bxl - r_i[None, :])) * tl.exp(r_i[None, :] - bi)
        a_li = tl.load(a_ptr + (bh * TP + tl_)[:, None] * C + ib * SUB + os_[None, :])
        dv += tl.dot(tl.trans(a_li).to(dol.dtype), dol)
    tl.store(dq_ptr + row_i[:, None] * DK + ok[None, :], dq * scale, mask=mik)
    tl.store(dk_ptr + row_i[:, None] * DK + ok[None, :], dk * scale, mask=mik)
    tl.store(dv_ptr + row_i[:, None] * DV + ov[None, :], dv * scale, mask=miv)


@triton.jit
def _chunk_decays(g_ptr, row, mt, mtk, ok, DK, lower, C: tl.constexpr, SCALAR: tl.constexpr,
                  PREC: tl.constexpr):
    """(b, b_C, raw g) of one chunk: scalar [C], scalar, [C]; or vector [C, BK], [BK], [C, BK]."""
    if SCALAR:
        graw = tl.load(g_ptr + row, mask=mt, other=0.0).to(tl.float32)
        bc = tl.cumsum(graw, 0)
        blast = tl.sum(graw, 0)
    else:
        graw = tl.load(g_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
        bc = tl.dot(lower, graw, input_precision=PREC)
        blast = tl.sum(graw, 0)
    return bc, blast, graw


@triton.jit
def _query_decay(bc, graw, SCALAR: tl.constexpr, SHIFT_Q: tl.constexpr):
    """e^{bq} as a [C, 1] or [C, BK] factor: bq = b, or b - g when the query reads S_{t-1}."""
    if SCALAR:
        e = tl.exp(bc)[:, None]
    elif SHIFT_Q:
        e = tl.exp(bc - graw)
    else:
        e = tl.exp(bc)
    return e


@triton.jit
def _key_decay(bc, blast, SCALAR: tl.constexpr):
    """e^{b_C - b} as a [C, 1] or [C, BK] factor."""
    if SCALAR:
        e = tl.exp(blast - bc)[:, None]
    else:
        e = tl.exp(blast[None, :] - bc)
    return e


@triton.jit
def _add(ptr, x, mask, ATOMIC: tl.constexpr):
    if ATOMIC:
        tl.atomic_add(ptr, x, mask=mask)
    else:
        tl.store(ptr, tl.load(ptr, mask=mask, other=0.0) + x, mask=mask)


@triton.jit
def _dq_walk_kernel(k_ptr, v_ptr, g_ptr, do_ptr, dq_ptr, sin_ptr, states_ptr, scale, T, H, DK, DV, L, NT,
                    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, SCALAR: tl.constexpr,
                    SHIFT_Q: tl.constexpr, PREC: tl.constexpr, HAS_SIN: tl.constexpr, ATOMIC: tl.constexpr):
    """Forward walk of one segment and value block from its start state: dQ += scale (dO S^T) e^bq;
    stores S before every chunk (states [B*H, NT, Dk, Dv], for the decay's gradient)."""
    iv = tl.program_id(0)
    seg = tl.program_id(1)
    bh = tl.program_id(2)
    nbh = tl.num_programs(2)
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    oc = tl.arange(0, C)
    mk = ok < DK
    mv = ov < DV
    m2 = mk[:, None] & mv[None, :]
    if HAS_SIN:
        s = tl.load(sin_ptr + (seg * nbh + bh) * DK * DV + ok[:, None] * DV + ov[None, :], mask=m2, other=0.0)
    else:
        s = tl.zeros([BK, BV], dtype=tl.float32)
    lower = (oc[:, None] >= oc[None, :]).to(tl.float32)
    sp = ok[:, None] * DV + ov[None, :]
    for c in range(seg * L, tl.minimum(seg * L + L, NT)):
        t = c * C + oc
        mt = t < T
        row = (b * T + t) * H + h
        mtk = mt[:, None] & mk[None, :]
        mtv = mt[:, None] & mv[None, :]
        tl.store(states_ptr + (bh * NT + c).to(tl.int64) * DK * DV + sp, s, mask=m2)
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
        do = tl.load(do_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
        bc, blast, graw = _chunk_decays(g_ptr, row, mt, mtk, ok, DK, lower, C, SCALAR, PREC)
        dq = _dot_split_right(do, tl.trans(s)) * _query_decay(bc, graw, SCALAR, SHIFT_Q) * scale
        _add(dq_ptr + row[:, None] * DK + ok[None, :], dq, mtk, ATOMIC)
        kd = k.to(tl.float32) * _key_decay(bc, blast, SCALAR)
        if SCALAR:
            s = s * tl.exp(blast)
        else:
            s = s * tl.exp(blast)[:, None]
        s += tl.dot(tl.trans(kd.to(v.dtype)), v)


@triton.jit
def _dkv_walk_kernel(q_ptr, k_ptr, v_ptr, g_ptr, do_ptr, dk_ptr, dv_ptr, din_ptr, dout_ptr, dsum_ptr,
                     dq_ptr, dqo_ptr, dko_ptr, dvo_ptr, db_ptr, qdq_ptr, u_ptr, du_ptr, states_ptr, bnd_ptr, scale,
                     B, T, H, DK, DV, L, NT, NSEG,
                     C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, SCALAR: tl.constexpr,
                     SHIFT_Q: tl.constexpr, PREC: tl.constexpr, OUTPUT: tl.constexpr, HAS_DIN: tl.constexpr,
                     STORE_DS: tl.constexpr, STORE_D: tl.constexpr, ATOMIC: tl.constexpr, FINISH: tl.constexpr,
                     BONUS: tl.constexpr):
    """Reverse walk of one segment (last chunk first) and value block. dS starts from din[NSEG-1-seg]
    (the gradient at the segment's end) or zero; OUTPUT adds dK, dV; STORE_DS / STORE_D write the
    gradient at the segment's start and its total log-decay, both at the reversed index. OUTPUT also
    stores sum(S dS) over the state before every chunk (the dq walk's states; this value block's
    part, bnd [NV, B, NT, H] or [NV, B, NT, H, Dk]).

    FINISH (one value block: the program sees all of Dv): this is the last writer, so it stores dQ,
    dK, dV in the inputs' dtype, dL/dB = q dq - k dk (float32; per token for a scalar decay) and,
    with SHIFT_Q, q dq apart; BONUS adds RWKV-6's current-token term (dQ, dK, and du per segment)."""
    iv = tl.program_id(0)
    seg = tl.program_id(1)
    bh = tl.program_id(2)
    nbh = tl.num_programs(2)
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    oc = tl.arange(0, C)
    mk = ok < DK
    mv = ov < DV
    m2 = mk[:, None] & mv[None, :]
    sp = ((NSEG - 1 - seg) * nbh + bh) * DK * DV + ok[:, None] * DV + ov[None, :]
    if HAS_DIN:
        ds = tl.load(din_ptr + sp, mask=m2, other=0.0)
    else:
        ds = tl.zeros([BK, BV], dtype=tl.float32)
    if SCALAR:
        dacc = tl.sum(tl.zeros([C], dtype=tl.float32), 0)
    else:
        dacc = tl.zeros([BK], dtype=tl.float32)
    lower = (oc[:, None] >= oc[None, :]).to(tl.float32)
    du_acc = tl.zeros([BK], dtype=tl.float32)
    c_stop = tl.minimum(seg * L + L, NT)
    for i in range(0, c_stop - seg * L):
        c = c_stop - 1 - i
        t = c * C + oc
        mt = t < T
        row = (b * T + t) * H + h
        mtk = mt[:, None] & mk[None, :]
        mtv = mt[:, None] & mv[None, :]
        q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        do = tl.load(do_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
        bc, blast, graw = _chunk_decays(g_ptr, row, mt, mtk, ok, DK, lower, C, SCALAR, PREC)
        if OUTPUT:
            k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
            v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mtv, other=0.0)
            ek = _key_decay(bc, blast, SCALAR)
            dsv = ds.to(v.dtype)
            dk = _dot_split_right(v, tl.trans(ds)) * ek
            dv = tl.dot((k.to(tl.float32) * ek).to(v.dtype), dsv)
            rk = row[:, None] * DK + ok[None, :]
            rv = row[:, None] * DV + ov[None, :]
            if FINISH:
                dk += tl.load(dk_ptr + rk, mask=mtk, other=0.0)
                dv += tl.load(dv_ptr + rv, mask=mtv, other=0.0)
                dq = tl.load(dq_ptr + rk, mask=mtk, other=0.0)
                qf = q.to(tl.float32)
                kf = k.to(tl.float32)
                qdq = qf * dq
                db = qdq - kf * dk
                if SCALAR:
                    tl.store(db_ptr + row, tl.sum(db, 1), mask=mt)
                else:
                    tl.store(db_ptr + rk, db, mask=mtk)
                    if SHIFT_Q:
                        tl.store(qdq_ptr + rk, qdq, mask=mtk)
                if BONUS:
                    dpd = tl.sum(do.to(tl.float32) * v.to(tl.float32), 1) * scale
                    uu = tl.load(u_ptr + h * DK + ok, mask=mk, other=0.0).to(tl.float32)
                    dq += dpd[:, None] * uu[None, :] * kf
                    dk += dpd[:, None] * uu[None, :] * qf
                    du_acc += tl.sum(dpd[:, None] * qf * kf, 0)
                tl.store(dqo_ptr + rk, dq.to(dqo_ptr.dtype.element_ty), mask=mtk)
                tl.store(dko_ptr + rk, dk.to(dko_ptr.dtype.element_ty), mask=mtk)
                tl.store(dvo_ptr + rv, dv.to(dvo_ptr.dtype.element_ty), mask=mtv)
            else:
                _add(dk_ptr + rk, dk, mtk, ATOMIC)
                _add(dv_ptr + rv, dv, mtv, False)
        qd = q.to(tl.float32) * _query_decay(bc, graw, SCALAR, SHIFT_Q) * scale
        if SCALAR:
            ds = ds * tl.exp(blast)
        else:
            ds = ds * tl.exp(blast)[:, None]
        ds += tl.dot(tl.trans(qd.to(do.dtype)), do)
        dacc += blast
        if OUTPUT:
            sb = tl.load(states_ptr + (bh * NT + c).to(tl.int64) * DK * DV + ok[:, None] * DV + ov[None, :],
                         mask=m2, other=0.0)
            bi = ((iv * B + b) * NT + c) * H + h
            if SCALAR:
                tl.store(bnd_ptr + bi, tl.sum(tl.sum(sb * ds, 1), 0))
            else:
                tl.store(bnd_ptr + bi * DK + ok, tl.sum(sb * ds, 1), mask=mk)
    if STORE_DS:
        tl.store(dout_ptr + sp, ds, mask=m2)
    if BONUS:
        tl.store(du_ptr + (seg * nbh + bh) * DK + ok, du_acc, mask=mk)
    if STORE_D:
        if iv == 0:
            if SCALAR:
                tl.store(dsum_ptr + (NSEG - 1 - seg) * nbh + bh, dacc)
            else:
                tl.store(dsum_ptr + ((NSEG - 1 - seg) * nbh + bh) * DK + ok, dacc, mask=mk)


def diagonal_bwd(q, k, v, g, do, dht, scale, *, scalar: bool, chunk: int, seg_len: int, starts, initial_state,
                 final_state, att=None, shift_q: bool = False, u=None, bv: int | None = None,
                 num_warps: int | None = None, need_dh0: bool = False):
    """(dq, dk, dv, dg, du, dh0) of the diagonal operators; dq/dk/dv/dg in the inputs' dtypes.

    q, k, v, g contiguous as the forward ran them; starts / seg_len: the forward's segment start
    states and chunks per segment (`diagonal_fwd_keep`); att: the forward's pairwise term (vector
    decays); u: RWKV-6's bonus (its current-token term is added in the last walk).
    """
    b, t, h, dk_ = q.shape
    dv_ = v.shape[-1]
    do = do.to(v.dtype).contiguous()  # the dots pair dO with V
    dev = q.device
    nt = triton.cdiv(t, chunk)
    bk, bv = tiles(dk_, dv_, bv, BV)
    stages = 1 if q.element_size() == 4 else 2
    nv = triton.cdiv(dv_, bv)
    nseg = triton.cdiv(nt, seg_len)
    prec = dot_precision(g.dtype)
    dq = torch.empty(b, t, h, dk_, device=dev, dtype=torch.float32)
    dk = torch.empty(b, t, h, dk_, device=dev, dtype=torch.float32)
    dv = torch.empty(b, t, h, dv_, device=dev, dtype=torch.float32)
    bv_all = max(16, triton.next_power_of_2(dv_))
    if scalar:
        _intra_scalar_kernel[(nt, b * h)](q, k, v, g, do, dq, dk, dv, scale, t, h, dk_, dv_,
                                          C=chunk, BK=bk, BV=bv_all, num_warps=8, num_stages=stages)
    else:
        _intra_vector_kernel[(nt * chunk // SUB, b * h)](
            q, k, v, g, do, att, dq, dk, dv, scale, t, nt * chunk, h, dk_, dv_, C=chunk, BK=bk, BV=bv_all,
            SUB=SUB, STRICT=shift_q, SHIFT_X=shift_q, PREC=prec, LIMIT=DIAGONAL_LIMIT, num_warps=4,
            num_stages=stages)
    common = dict(C=chunk, BK=bk, BV=bv, SCALAR=scalar, SHIFT_Q=shift_q, PREC=prec, num_warps=num_warps or WARPS,
                  num_stages=stages)
    if nseg > 1:
        sin, has_sin = starts, True
    elif initial_state is not None:
        sin, has_sin = initial_state, True
    else:
        sin, has_sin = q, False
    grid = (nv, nseg, b * h)
    states = torch.empty(b * h, nt, dk_, dv_, device=dev, dtype=torch.float32)
    _dq_walk_kernel[grid](k, v, g, do, dq, sin, states, scale, t, h, dk_, dv_, seg_len, nt, HAS_SIN=has_sin,
                          ATOMIC=nv > 1, **common)
    dh0 = torch.empty(b, h, dk_, dv_, device=dev, dtype=torch.float32) if need_dh0 else None
    dht_ = dht.float().contiguous() if dht is not None else None
    finish = nv == 1
    if finish:
        outs = (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v))
        db = torch.empty((b, t, h) if scalar else (b, t, h, dk_), device=dev, dtype=torch.float32)
        qdq = torch.empty_like(db) if shift_q else db
        du_part = torch.empty(nseg, b * h, dk_, device=dev, dtype=torch.float32) if u is not None else db
    else:
        outs, db, qdq, du_part = (q, q, q), q, q, q
    fin = dict(dq_ptr=dq, dqo_ptr=outs[0], dko_ptr=outs[1], dvo_ptr=outs[2], db_ptr=db, qdq_ptr=qdq,
               u_ptr=u if u is not None else q, du_ptr=du_part, FINISH=finish, BONUS=finish and u is not None)
    bnd = torch.empty((nv, b, nt, h) if scalar else (nv, b, nt, h, dk_), device=dev, dtype=torch.float32)
    fin.update(states_ptr=states, bnd_ptr=bnd)
    no_fin = dict(fin, FINISH=False, BONUS=False)
    if nseg == 1:
        _dkv_walk_kernel[grid](q, k, v, g, do, dk, dv, dht_ if dht_ is not None else q,
                               dh0 if dh0 is not None else q, q, scale=scale, B=b, T=t, H=h, DK=dk_, DV=dv_, L=seg_len,
                               NT=nt, NSEG=1, OUTPUT=True, HAS_DIN=dht_ is not None, STORE_DS=dh0 is not None,
                               STORE_D=False, ATOMIC=nv > 1, **fin, **common)
    else:
        summ = torch.empty(nseg, b * h, dk_, dv_, device=dev, dtype=torch.float32)
        dsum = torch.empty((nseg, b * h) if scalar else (nseg, b * h, dk_), device=dev, dtype=torch.float32)
        _dkv_walk_kernel[grid](q, k, v, g, do, dk, dv, q, summ, dsum, scale=scale, B=b, T=t, H=h, DK=dk_,
                               DV=dv_, L=seg_len, NT=nt, NSEG=nseg, OUTPUT=False, HAS_DIN=False, STORE_DS=True,
                               STORE_D=True, ATOMIC=False, **no_fin, **common)
        segments.carry_diagonal(summ, dsum, dht_, dh0)
        _dkv_walk_kernel[grid](q, k, v, g, do, dk, dv, summ, q, q, scale=scale, B=b, T=t, H=h, DK=dk_,
                               DV=dv_, L=seg_len, NT=nt, NSEG=nseg, OUTPUT=True, HAS_DIN=True, STORE_DS=False,
                               STORE_D=False, ATOMIC=nv > 1, **fin, **common)
    du = None
    if finish:
        dq, dk, dv = outs
        if u is not None:
            du = du_part.view(nseg, b, h, dk_).sum((0, 1))
    else:  # several value blocks: the key-side sums came by atomic adds; finish in torch
        qdq = q.float() * dq
        db = qdq - k.float() * dk
        if scalar:
            db, qdq = db.sum(-1), qdq.sum(-1)
        if u is not None:  # RWKV-6's bonus o_t += scale (r_t u k_t) . v_t (dV's part came with A)
            dpd = (do.float() * v.float()).sum(-1, keepdim=True) * scale
            uf = u.float()[None, None]
            du = (dpd * q.float() * k.float()).sum((0, 1))
            dq += dpd * uf * k.float()
            dk += dpd * uf * q.float()
        dq, dk, dv = dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)
    del states
    # dL/dB_t = q_t dq_t - k_t dk_t (the query term at t-1 when it reads S_{t-1}); dg_t = its sum over
    # the rest of t's chunk + sum(S dS) of the state entering the next chunk (bnd[:, :, c]: before chunk c)
    if dht is not None and final_state is not None:
        last = (final_state * dht.float()).sum(-1)  # [B, H, Dk]
        last = last.sum(-1) if scalar else last
    else:
        last = torch.zeros(bnd.shape[1:2] + bnd.shape[3:], device=dev)
    bnd = torch.cat((bnd.sum(0)[:, 1:], last[:, None]), 1)
    dg = chunk_reverse_cumsum(db, chunk, bnd)
    if shift_q:
        dg -= qdq
    return dq, dk, dv, dg.to(g.dtype), du, dh0
