"""Host-side helpers shared by the Triton chunked kernels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton


def chunk_cumsum(g: torch.Tensor, chunk: int) -> torch.Tensor:
    """Log-decay summed from each chunk's start, float32, T padded to a multiple of `chunk`.

    g: [B, T, H] or [B, T, H, D] -> same layout with T' = ceil(T / chunk) * chunk; padded steps
    carry g = 0, so the value at a chunk's last row is its total decay even for a short chunk.
    """
    b, t = g.shape[:2]
    n = triton.cdiv(t, chunk)
    x = g.float()
    if n * chunk != t:
        x = F.pad(x, [0, 0] * (x.dim() - 2) + [0, n * chunk - t])
    x = x.reshape(b, n, chunk, *g.shape[2:]).cumsum(2)
    return x.reshape(b, n * chunk, *g.shape[2:]).contiguous()


def state_in(initial_state, ref: torch.Tensor):
    """(pointer tensor, has-state flag) for an optional [B, H, Dk, Dv] initial state."""
    if initial_state is None:
        return ref, False
    return initial_state.float().contiguous(), True


def state_out(output_final_state: bool, b: int, h: int, dk: int, dv: int, ref: torch.Tensor):
    if output_final_state:
        return torch.empty(b, h, dk, dv, device=ref.device, dtype=torch.float32)
    return None


def block_sizes(dk: int, dv: int) -> tuple[int, int, int]:
    """(BK covering all of Dk, BK capped at 64, BV capped at 32): the kernels' default tiles."""
    bk_full = max(16, triton.next_power_of_2(dk))
    return bk_full, min(64, bk_full), max(16, min(triton.next_power_of_2(dv), 32))


def fused_scan(kernel, inputs: tuple, q: torch.Tensor, v: torch.Tensor, tp: int, scale: float, chunk: int,
               initial_state, output_final_state: bool, bv: int | None = None):
    """o, final state (or None) from a fused scan: one program per (value block, batch*head).

    Every fused kernel takes (*inputs, o, s0, st, scale, T, T', H, Dk, Dv) and the constexprs
    C, BK, BV, HAS_S0, STORE_S; q ([B, T, H, Dk]) gives the shapes and o's dtype, v the value width.
    """
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    o = torch.empty_like(v, dtype=q.dtype)
    s0, has_s0 = state_in(initial_state, q)
    st = state_out(output_final_state, b, h, dk, dv, q)
    bk, _, bv_default = block_sizes(dk, dv)
    bv = bv or bv_default
    grid = (triton.cdiv(dv, bv), b * h)
    kernel[grid](
        *inputs, o, s0, st if st is not None else o, scale, t, tp, h, dk, dv,
        C=chunk, BK=bk, BV=bv, HAS_S0=has_s0, STORE_S=st is not None, num_warps=4, num_stages=2,
    )
    return o, st
