"""Triton chunked forward of the scalar-decay operator (RetNet / Mamba2 SSD, "simple GLA").

The "fused" variant: one program per (value block, batch*head) walks the chunks in order, the [Dk, BV] state held in
registers: per chunk of C tokens, with b = log-decay summed from the chunk start,
  o = scale * ((Q K^T * exp(b_i - b_j))_{j<=i} V + (Q * exp(b)) S),
  S <- exp(b_C) S + (K * exp(b_C - b))^T V.
Every exponent is <= 0, so no decay, however strong, overflows. No per-chunk state is stored,
so memory is the inputs and outputs only. The default is the segment-parallel form
(`diagonal`); the two-pass form (`two_pass`) stores the state before each chunk instead.
"""

from __future__ import annotations

import triton
import triton.language as tl

from . import two_pass
from .common import chunk_cumsum, fused_scan
from .diagonal import diagonal_fwd


@triton.jit
def _simple_gla_fwd_kernel(q_ptr, k_ptr, v_ptr, gc_ptr, o_ptr, s0_ptr, st_ptr, scale, T, TP, H, DK, DV,
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
        q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mt[:, None] & mk[None, :], other=0.0)
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mt[:, None] & mk[None, :], other=0.0)
        v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :], other=0.0)
        bc = tl.load(gc_ptr + (b * TP + t) * H + h)
        blast = tl.load(gc_ptr + (b * TP + c0 + C - 1) * H + h)
        att = tl.dot(q, tl.trans(k))
        dec = tl.exp(tl.where(causal, bc[:, None] - bc[None, :], float("-inf")))
        att = att * dec
        qf = q.to(tl.float32) * tl.exp(bc)[:, None]
        o = tl.dot(att, v.to(tl.float32)) + tl.dot(qf, s)
        tl.store(o_ptr + row[:, None] * DV + ov[None, :], (o * scale).to(o_ptr.dtype.element_ty),
                 mask=mt[:, None] & mv[None, :])
        kf = k.to(tl.float32) * tl.exp(blast - bc)[:, None]
        s = s * tl.exp(blast) + tl.dot(tl.trans(kf), v.to(tl.float32))
    if STORE_S:
        tl.store(st_ptr + sp, s, mask=mk[:, None] & mv[None, :])


def simple_gla_fwd(q, k, v, g, scale, initial_state=None, output_final_state=False, chunk=64, bv=None,
                   impl="segments", segment_chunks=None, num_warps=None):
    """o, S for the scalar-decay operator on CUDA (or under TRITON_INTERPRET=1).

    impl "segments" (default): `diagonal.diagonal_fwd`, sequence-parallel; "two_pass":
    `two_pass.states` then `two_pass.output`; "fused": the single sequential kernel above.
    """
    if impl == "segments":
        return diagonal_fwd(q, k, v, g, scale, initial_state, output_final_state, scalar=True, chunk=chunk,
                            segment_chunks=segment_chunks, bv=bv, num_warps=num_warps)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    gc = chunk_cumsum(g, chunk)
    if impl == "two_pass":
        hbuf, st = two_pass.states(k, v, gc, chunk, True, initial_state, output_final_state)
        return two_pass.output(q, k, v, gc, None, hbuf, scale, chunk, True), st
    return fused_scan(_simple_gla_fwd_kernel, (q, k, v, gc), q, v, gc.shape[1], scale, chunk, initial_state,
                      output_final_state, bv)
