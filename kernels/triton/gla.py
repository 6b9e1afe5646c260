"""Triton chunked forward of GLA and RWKV-6 (vector decay per key channel).

`intra.pairwise` builds each chunk's decayed Q K^T from the raw log-decays (RWKV-6: strictly
causal, with the bonus u on the diagonal); then the segment-parallel walks of `diagonal`:
  o = scale * (A V + (Q * exp(bq)) S),   S <- diag(exp(b_C)) S + (K * exp(b_C - b))^T V,
where b is the log-decay summed from the chunk start and bq = b (GLA) or b - g (RWKV-6, whose
query reads the state before its own token). All exponents are <= 0.
"""

from __future__ import annotations

from .common import tiles
from .diagonal import diagonal_fwd
from .intra import pairwise

# The walk with vector decays holds [C, Dk] float32 decay tiles beside the state: at C=32 ptxas
# (sm_90) reports no or small register spills (at C=64: 400-2000 bytes); BV=128 with 8 warps reads
# each chunk's q, k and gates once and was the fastest on the H100 at 2k-128k
# (benchmarks/results/kernels-sweep-2026-11-23-h100.jsonl).
CHUNK, BV, WARPS = 32, 128, 8


def _vec_fwd(q, k, v, g, scale, initial_state, output_final_state, u=None, chunk=None, bv=None,
             segment_chunks=None, num_warps=None):
    chunk = chunk or CHUNK
    att = pairwise(q, k, g, chunk, strict=u is not None, u=u, shift_x=u is not None)
    return diagonal_fwd(q, k, v, g, scale, initial_state, output_final_state, scalar=False, att=att,
                        shift_q=u is not None, chunk=chunk, segment_chunks=segment_chunks,
                        bv=tiles(q.shape[-1], v.shape[-1], bv, BV)[1], num_warps=num_warps or WARPS)


def gla_fwd(q, k, v, g, scale, initial_state=None, output_final_state=False, chunk=None, **options):
    """GLA forward on CUDA (or under TRITON_INTERPRET=1). g: log-decay [B, T, H, Dk].

    options: bv, segment_chunks, num_warps (benchmark sweeps).
    """
    return _vec_fwd(q, k, v, g, scale, initial_state, output_final_state, chunk=chunk, **options)


def rwkv6_fwd(r, k, v, w, u, scale, initial_state=None, output_final_state=False, chunk=None, **options):
    """RWKV-6 forward on CUDA (or under TRITON_INTERPRET=1). w: log-decay, u: bonus [H, Dk]."""
    return _vec_fwd(r, k, v, w, scale, initial_state, output_final_state, u=u, chunk=chunk, **options)
