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
