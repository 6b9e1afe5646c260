"""Triton chunked forward of the scalar-decay operator (RetNet / Mamba2 SSD, "simple GLA").

S_t = exp(g_t) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t with one log-decay per head and step. The
kernels are the segment-parallel walks of `diagonal` (scalar decay: the chunk's decayed Q K^T is
built in the walk, the chunk cumsum of g is a tl.cumsum there, nothing is pre-processed).
"""

from __future__ import annotations

from .diagonal import diagonal_fwd


def simple_gla_fwd(q, k, v, g, scale, initial_state=None, output_final_state=False, chunk=64, bv=None,
                   segment_chunks=None, num_warps=None):
    """o, S for the scalar-decay operator on CUDA (or under TRITON_INTERPRET=1). g: [B, T, H].

    bv, segment_chunks (0 = one segment, one launch), num_warps: options for benchmark sweeps.
    """
    return diagonal_fwd(q, k, v, g, scale, initial_state, output_final_state, scalar=True, chunk=chunk,
                        segment_chunks=segment_chunks, bv=bv, num_warps=num_warps)
