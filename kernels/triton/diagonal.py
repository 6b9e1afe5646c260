"""Segment-parallel chunked forward of the diagonal-transition operators: scalar decay, GLA, RWKV-6.

Per chunk of C tokens, with b the log-decay summed from the chunk start (a scalar per token for
the scalar-decay operator, a vector over Dk for GLA / RWKV-6):
  o = scale (A V + (Q exp(bq)) S),   S <- diag(exp(b_C)) S + (K exp(b_C - b))^T V,
where A is the chunk's decayed causal Q K^T (built in the kernel for a scalar decay, where it is
(Q K^T * exp(b_i - b_j))_{j<=i}; read from `intra.pairwise` for vector decays) and bq = b (GLA)
or b - g (RWKV-6, whose query reads the state before its own token). Every exponent is <= 0.

The scan over chunks is split into segments (`segments.plan`): a summary walk per segment from a
zero state (its end state and total log-decay), the diagonal carry across segments, then the
output walk of every segment in parallel from its start state. The chunk cumsums of g are taken
in the kernels (tl.cumsum for a scalar decay; for vector decays a dot with a lower-triangular matrix
of ones, on tensor cores: tf32 is exact for bf16/fp16 gates, tf32x3 for fp32), so there is no torch
pre-processing and no float32 copy of the gates, and a short sequence with a scalar decay runs in a
single launch. Nothing of size T x Dk x Dv is
stored: memory is the inputs, the outputs and one [Dk, Dv] state per segment.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import checks
from . import segments
from .common import chunk_log_decay, decayed_scores, dot_precision, state_in, state_out, tiles


@triton.jit
def _walk_kernel(q_ptr, k_ptr, v_ptr, g_ptr, a_ptr, o_ptr, sin_ptr, sout_ptr, dsum_ptr, scale,
                 T, TP, H, DK, DV, L, NT,
                 C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, SCALAR: tl.constexpr, SHIFT_Q: tl.constexpr,
                 PREC: tl.constexpr, OUTPUT: tl.constexpr, HAS_SIN: tl.constexpr, STORE_S: tl.constexpr,
                 STORE_D: tl.constexpr):
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
    sp = (seg * nbh + bh) * DK * DV + ok[:, None] * DV + ov[None, :]
    if HAS_SIN:
        s = tl.load(sin_ptr + sp, mask=m2, other=0.0)
    else:
        s = tl.zeros([BK, BV], dtype=tl.float32)
    if SCALAR:
        dacc = tl.sum(tl.zeros([C], dtype=tl.float32), 0)
    else:
        dacc = tl.zeros([BK], dtype=tl.float32)
    causal = oc[:, None] >= oc[None, :]
    lower = causal.to(tl.float32)
    c_stop = tl.minimum(seg * L + L, NT)
    for c in range(seg * L, c_stop):
        t = c * C + oc
        mt = t < T
        row = (b * T + t) * H + h
        mtk = mt[:, None] & mk[None, :]
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
        v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :], other=0.0)
        if SCALAR:
            bc, blast = chunk_log_decay(g_ptr, row, mt, True, C)
            kd = k.to(tl.float32) * tl.exp(blast - bc)[:, None]
        else:
            graw = tl.load(g_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
            bc = tl.dot(lower, graw, input_precision=PREC)  # cumsum over rows, on tensor cores
            blast = tl.sum(graw, 0)
            kd = k.to(tl.float32) * tl.exp(blast[None, :] - bc)
        if OUTPUT:
            q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0)
            if SCALAR:
                att = decayed_scores(q, k, bc, causal, "tf32")  # Triton's default for float32 operands
                qd = q.to(tl.float32) * tl.exp(bc)[:, None]
            else:
                att = tl.load(a_ptr + (bh * TP + t)[:, None] * C + oc[None, :])
                if SHIFT_Q:
                    qd = q.to(tl.float32) * tl.exp(bc - graw)
                else:
                    qd = q.to(tl.float32) * tl.exp(bc)
            o = tl.dot(att.to(v.dtype), v) + tl.dot(qd.to(v.dtype), s.to(v.dtype))
            tl.store(o_ptr + row[:, None] * DV + ov[None, :], (o * scale).to(o_ptr.dtype.element_ty),
                     mask=mt[:, None] & mv[None, :])
        if SCALAR:
            s = s * tl.exp(blast)
        else:
            s = s * tl.exp(blast)[:, None]
        s += tl.dot(tl.trans(kd.to(v.dtype)), v)
        dacc += blast
    if STORE_S:
        tl.store(sout_ptr + sp, s, mask=m2)
    if STORE_D:
        if iv == 0:
            if SCALAR:
                tl.store(dsum_ptr + seg * nbh + bh, dacc)
            else:
                tl.store(dsum_ptr + (seg * nbh + bh) * DK + ok, dacc, mask=mk)


BV = 64  # value block of a walk program (the state tile is [Dk, BV] float32 in registers)
NUM_WARPS = 4
PROGRAMS_PER_SM = 2  # walk programs resident per SM at (BV, NUM_WARPS): one wave of segments


def diagonal_fwd(q, k, v, g, scale, initial_state=None, output_final_state=False, *, scalar: bool,
                 att=None, shift_q: bool = False, chunk: int = 64, segment_chunks: int | None = None,
                 bv: int | None = None, num_warps: int | None = None):
    """o [B, T, H, Dv] in q's dtype, final state (float32) or None.

    g: the log-decay, [B, T, H] (scalar=True) or [B, T, H, Dk] with att the pairwise term
    [B, H, T', C] (`intra.pairwise`); shift_q: the query reads the state before its own token
    (RWKV-6).
    """
    o, st, _, _ = diagonal_fwd_keep(q, k, v, g, scale, initial_state, output_final_state, scalar=scalar,
                                    att=att, shift_q=shift_q, chunk=chunk, segment_chunks=segment_chunks,
                                    bv=bv, num_warps=num_warps)
    return o, st


def diagonal_fwd_keep(q, k, v, g, scale, initial_state=None, output_final_state=False, *, scalar: bool,
                      att=None, shift_q: bool = False, chunk: int = 64, segment_chunks: int | None = None,
                      bv: int | None = None, num_warps: int | None = None):
    """As `diagonal_fwd`, plus what the backward reuses: (o, final state, segment start states
    [NSEG, B*H, Dk, Dv] float32 or None for one segment, chunks per segment L)."""
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    scale = checks.scale(scale, dk)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    g = g.contiguous()
    nt = triton.cdiv(t, chunk)
    tp = nt * chunk
    bk, bv = tiles(dk, dv, bv, BV)
    nv = triton.cdiv(dv, bv)
    warps = num_warps or NUM_WARPS
    per_sm = PROGRAMS_PER_SM if bv * warps <= BV * NUM_WARPS else 1
    L, nseg = segments.plan(t, chunk, nv * b * h, q.device, segment_chunks, per_sm)
    o = torch.empty(b, t, h, dv, device=q.device, dtype=q.dtype)
    st = state_out(output_final_state, b, h, dk, dv, q)
    s0, has_s0 = state_in(initial_state, q)
    att_ = att if att is not None else g
    common = dict(C=chunk, BK=bk, BV=bv, SCALAR=scalar, SHIFT_Q=shift_q, PREC=dot_precision(g.dtype),
                  num_warps=warps, num_stages=2)
    if nseg == 1:
        _walk_kernel[(nv, 1, b * h)](q, k, v, g, att_, o, s0, st if st is not None else o, o, scale,
                                     t, tp, h, dk, dv, L, nt, OUTPUT=True, HAS_SIN=has_s0,
                                     STORE_S=st is not None, STORE_D=False, **common)
        return o, st, None, L
    summ = torch.empty(nseg, b * h, dk, dv, device=q.device, dtype=torch.float32)
    dsum = torch.empty((nseg, b * h) if scalar else (nseg, b * h, dk), device=q.device, dtype=torch.float32)
    grid = (nv, nseg, b * h)
    _walk_kernel[grid](q, k, v, g, att_, o, o, summ, dsum, scale, t, tp, h, dk, dv, L, nt,
                       OUTPUT=False, HAS_SIN=False, STORE_S=True, STORE_D=True, **common)
    segments.carry_diagonal(summ, dsum, s0 if has_s0 else None, st)
    _walk_kernel[grid](q, k, v, g, att_, o, summ, o, o, scale, t, tp, h, dk, dv, L, nt,
                       OUTPUT=True, HAS_SIN=True, STORE_S=False, STORE_D=False, **common)
    return o, st, summ, L
