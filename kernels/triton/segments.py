"""Sequence-parallel chunked scans: split T into segments, scan the segments, walk them in parallel.

A chunked linear recurrence S_{n+1} = M_n S_n + B_n (n = chunk) walked chunk by chunk is latency
bound: T/C dependent steps on B*H*(Dv/BV) programs. Here T is cut into `nseg` segments of `L`
chunks and every operator runs three launches:

1. summary (one program per value block, segment, batch*head): walk the segment's chunks from a
   zero state and store where it ends, B_seg; for a diagonal transition also its total log-decay
   D_seg (a scalar per head, or a vector over Dk). For a full transition (delta rules, RWKV-7) the
   walk starts from the extended state [I | 0] with values [0 | V]: since the recurrence is linear
   in (S, V), it ends at [M_seg | B_seg], the segment's transition and offset ([Dk, Dk + Dv]).
2. carry (this module): S_0 = the initial state, S_{s+1} = M_s S_s + B_s over the segments (a
   short sequential loop), storing each segment's start state.
3. walk (as 1, with outputs): each segment starts from its start state and produces its outputs.

With one segment (short T) only the walk runs, from the initial state. The walks, the summaries
and the outputs are the operators' own kernels; this module holds the plan and the carries.
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

PROGRAMS_PER_SM = 2  # programs of the walk to keep in flight per SM: enough to hide its step latency
MIN_CHUNKS = 2  # shortest segment: below this the summary + carry launches cost more than they save


@functools.cache
def _sms(device_type: str, index: int | None) -> int:
    if device_type == "cuda":
        return torch.cuda.get_device_properties(index if index is not None else 0).multi_processor_count
    return 4  # the interpreter: a few segments, so CPU tests cover the multi-segment path


def plan(t: int, chunk: int, programs_per_segment: int, device: torch.device,
         segment_chunks: int | None = None, programs_per_sm: int = PROGRAMS_PER_SM,
         min_chunks: int = MIN_CHUNKS) -> tuple[int, int]:
    """(chunks per segment L, number of segments) for a sequence of t tokens.

    As many segments as fit one wave of `programs_per_sm` walk programs per SM (whole waves: a
    partial second wave would double the time); `segment_chunks` (or the environment variable
    GONI_SEGMENT_CHUNKS, for benchmark sweeps) fixes L instead; 0 = one segment. `min_chunks`: the
    shortest segment worth its summary and carry (an operator with a costly carry asks for more).
    """
    nt = triton.cdiv(t, chunk)
    if segment_chunks is None and os.environ.get("GONI_SEGMENT_CHUNKS"):
        segment_chunks = int(os.environ["GONI_SEGMENT_CHUNKS"])
    if segment_chunks is None:
        want = max(1, programs_per_sm * _sms(device.type, device.index) // max(1, programs_per_segment))
        segment_chunks = max(min_chunks, triton.cdiv(nt, want))
    if segment_chunks <= 0 or segment_chunks >= nt:
        return nt, 1
    return segment_chunks, triton.cdiv(nt, segment_chunks)


@triton.jit
def _carry_diagonal_kernel(b_ptr, d_ptr, s0_ptr, st_ptr, NSEG, BH, DK, DV,
                           TILE: tl.constexpr, VECTOR: tl.constexpr, HAS_S0: tl.constexpr,
                           STORE_S: tl.constexpr):
    """In place: b[s] (the segment's end from zero) becomes the state at the segment's start."""
    it = tl.program_id(0)
    bh = tl.program_id(1)
    e = it * TILE + tl.arange(0, TILE)
    m = e < DK * DV
    if HAS_S0:
        s = tl.load(s0_ptr + bh * DK * DV + e, mask=m, other=0.0)
    else:
        s = tl.zeros([TILE], dtype=tl.float32)
    for seg in range(0, NSEG):
        base = (seg * BH + bh) * DK * DV
        bs = tl.load(b_ptr + base + e, mask=m, other=0.0)
        if VECTOR:
            d = tl.load(d_ptr + (seg * BH + bh) * DK + e // DV, mask=m, other=0.0)
        else:
            d = tl.load(d_ptr + seg * BH + bh)
        tl.store(b_ptr + base + e, s, mask=m)
        s = s * tl.exp(d) + bs
    if STORE_S:
        tl.store(st_ptr + bh * DK * DV + e, s, mask=m)


def carry_diagonal(summ: torch.Tensor, dsum: torch.Tensor, s0: torch.Tensor | None,
                   st: torch.Tensor | None) -> None:
    """summ [NSEG, BH, Dk, Dv] float32 -> segment start states, in place; st <- the final state.

    dsum: the segments' total log-decays, [NSEG, BH] (scalar decay) or [NSEG, BH, Dk] (vector).
    """
    nseg, bh, dk, dv = summ.shape
    tile = min(1024, triton.next_power_of_2(dk * dv))
    grid = (triton.cdiv(dk * dv, tile), bh)
    _carry_diagonal_kernel[grid](summ, dsum, s0 if s0 is not None else summ, st if st is not None else summ,
                                 nseg, bh, dk, dv, TILE=tile, VECTOR=dsum.dim() == 3, HAS_S0=s0 is not None,
                                 STORE_S=st is not None, num_warps=4)


@triton.jit
def _carry_matrix_kernel(ext_ptr, start_ptr, s0_ptr, st_ptr, NSEG, BH, DK, DV,
                         BK: tl.constexpr, BV: tl.constexpr, HAS_S0: tl.constexpr, STORE_S: tl.constexpr,
                         PRECISION: tl.constexpr):
    """start[s] = S_s with S_{s+1} = M_s S_s + B_s, ext[s] = [M_s | B_s] ([Dk, Dk + Dv])."""
    iv = tl.program_id(0)
    bh = tl.program_id(1)
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    mk = ok < DK
    mv = ov < DV
    m2 = mk[:, None] & mv[None, :]
    sp = ok[:, None] * DV + ov[None, :]
    if HAS_S0:
        s = tl.load(s0_ptr + bh * DK * DV + sp, mask=m2, other=0.0)
    else:
        s = tl.zeros([BK, BV], dtype=tl.float32)
    w = DK + DV
    for seg in range(0, NSEG):
        base = (seg * BH + bh) * DK
        mm = tl.load(ext_ptr + (base + ok[:, None]) * w + ok[None, :], mask=mk[:, None] & mk[None, :], other=0.0)
        bs = tl.load(ext_ptr + (base + ok[:, None]) * w + DK + ov[None, :], mask=m2, other=0.0)
        tl.store(start_ptr + (seg * BH + bh) * DK * DV + sp, s, mask=m2)
        s = tl.dot(mm, s, input_precision=PRECISION) + bs
    if STORE_S:
        tl.store(st_ptr + bh * DK * DV + sp, s, mask=m2)


def carry_matrix(ext: torch.Tensor, s0: torch.Tensor | None, st: torch.Tensor | None) -> torch.Tensor:
    """ext [NSEG, BH, Dk, Dk + Dv] float32 -> segment start states [NSEG, BH, Dk, Dv]; st <- final.

    The products M_s S_s use tf32x3 dots (three tf32 passes: float32 accuracy at tensor-core speed).
    """
    nseg, bh, dk, w = ext.shape
    dv = w - dk
    start = torch.empty(nseg, bh, dk, dv, device=ext.device, dtype=torch.float32)
    bk = max(16, triton.next_power_of_2(dk))
    bv = max(16, min(32, triton.next_power_of_2(dv)))
    grid = (triton.cdiv(dv, bv), bh)
    _carry_matrix_kernel[grid](ext, start, s0 if s0 is not None else start, st if st is not None else start,
                               nseg, bh, dk, dv, BK=bk, BV=bv, HAS_S0=s0 is not None, STORE_S=st is not None,
                               PRECISION="tf32x3", num_warps=4)
    return start
