"""Triton chunked forward of GLA and RWKV-6 (vector decay per key channel).

`intra.pairwise` builds each chunk's decayed Q K^T (RWKV-6: strictly causal, with the bonus u on
the diagonal); then by default the segment-parallel walk (`diagonal`), or the two-pass form
(impl="two_pass": per-chunk states, then all outputs in parallel), or with impl="fused" one program
per (value block, batch*head) walks the chunks in order with the [Dk, BV] state in registers:
  o = scale * (A V + (Q * exp(bq)) S),   S <- diag(exp(b_C)) S + (K * exp(b_C - b))^T V,
where b is the log-decay summed from the chunk start and bq = b (GLA) or b - g (RWKV-6, whose
query reads the state before its own token). All exponents are <= 0.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import two_pass
from .common import chunk_cumsum, fused_scan
from .diagonal import diagonal_fwd
from .intra import pairwise, pairwise_raw

CHUNK = 64  # the two-pass and fused forms
# The segment walk with vector decays holds [C, Dk] float32 decay tiles beside the state: at C=32
# ptxas (sm_90) reports no or small register spills (at C=64: 400-2000 bytes); BV=128 with 8 warps
# reads each chunk's q, k, gates once and was the fastest on the H100 at 2k-128k.
SEGMENT_CHUNK, SEGMENT_BV, SEGMENT_WARPS = 32, 128, 8


@triton.jit
def _vec_scan_kernel(q_ptr, k_ptr, v_ptr, bq_ptr, bk_ptr, a_ptr, o_ptr, s0_ptr, st_ptr, scale,
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
    for c0 in range(0, T, C):
        t = c0 + oc
        mt = t < T
        row = (b * T + t) * H + h
        prow = (b * TP + t) * H + h
        mtk = mt[:, None] & mk[None, :]
        q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mtk, other=0.0).to(tl.float32)
        v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :],
                    other=0.0).to(tl.float32)
        bq = tl.load(bq_ptr + prow[:, None] * DK + ok[None, :], mask=mk[None, :], other=0.0)
        bk = tl.load(bk_ptr + prow[:, None] * DK + ok[None, :], mask=mk[None, :], other=0.0)
        blast = tl.load(bk_ptr + ((b * TP + c0 + C - 1) * H + h) * DK + ok, mask=mk, other=0.0)
        att = tl.load(a_ptr + (bh * TP + t)[:, None] * C + oc[None, :])
        o = tl.dot(att, v) + tl.dot(q * tl.exp(bq), s)
        tl.store(o_ptr + row[:, None] * DV + ov[None, :], (o * scale).to(o_ptr.dtype.element_ty),
                 mask=mt[:, None] & mv[None, :])
        kd = k * tl.exp(blast[None, :] - bk)
        s = s * tl.exp(blast)[:, None] + tl.dot(tl.trans(kd), v)
    if STORE_S:
        tl.store(st_ptr + sp, s, mask=mk[:, None] & mv[None, :])


def _vec_fwd(q, k, v, g, scale, initial_state, output_final_state, u=None, chunk=None, bv=None,
             impl="segments", segment_chunks=None, num_warps=None):
    if impl == "segments":
        chunk = chunk or SEGMENT_CHUNK
        bv = bv or SEGMENT_BV
        num_warps = num_warps or SEGMENT_WARPS
        att = pairwise_raw(q, k, g, chunk, strict=u is not None, u=u, shift_x=u is not None)
        return diagonal_fwd(q, k, v, g, scale, initial_state, output_final_state, scalar=False, att=att,
                            shift_q=u is not None, chunk=chunk, segment_chunks=segment_chunks, bv=bv,
                            num_warps=num_warps)
    chunk = chunk or CHUNK
    t = q.shape[1]
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    bk = chunk_cumsum(g, chunk)
    if u is None:
        bq = bk
    else:
        gp = torch.zeros_like(bk)
        gp[:, :t] = g
        bq = bk - gp
    att = pairwise(q, k, bq, bk, chunk, strict=u is not None, u=u)
    if impl == "two_pass":
        hbuf, st = two_pass.states(k, v, bk, chunk, False, initial_state, output_final_state)
        return two_pass.output(q, k, v, bq, att, hbuf, scale, chunk, False), st
    return fused_scan(_vec_scan_kernel, (q, k, v, bq, bk, att), q, v, bk.shape[1], scale, chunk, initial_state,
                      output_final_state, bv)


def gla_fwd(q, k, v, g, scale, initial_state=None, output_final_state=False, chunk=None, impl="segments",
            **options):
    """GLA forward on CUDA (or under TRITON_INTERPRET=1). g: log-decay [B, T, H, Dk].

    options: bv, segment_chunks, num_warps (benchmark sweeps).
    """
    return _vec_fwd(q, k, v, g, scale, initial_state, output_final_state, chunk=chunk, impl=impl, **options)


def rwkv6_fwd(r, k, v, w, u, scale, initial_state=None, output_final_state=False, chunk=None,
              impl="segments", **options):
    """RWKV-6 forward on CUDA (or under TRITON_INTERPRET=1). w: log-decay, u: bonus [H, Dk]."""
    return _vec_fwd(r, k, v, w, scale, initial_state, output_final_state, u=u, chunk=chunk, impl=impl,
                    **options)
