"""Host-side helpers shared by the Triton chunked forwards: dot precision, initial / final state."""

from __future__ import annotations

import torch


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot input precision for float32 operands built from inputs of `dtype`.

    tf32 holds bf16/fp16 values exactly (float32 sums); float32 inputs keep float32 accuracy (tf32x3).
    """
    return "tf32x3" if dtype == torch.float32 else "tf32"


def state_in(initial_state, ref: torch.Tensor):
    """(pointer tensor, has-state flag) for an optional [B, H, Dk, Dv] initial state."""
    if initial_state is None:
        return ref, False
    return initial_state.float().contiguous(), True


def state_out(output_final_state: bool, b: int, h: int, dk: int, dv: int, ref: torch.Tensor):
    """A float32 [B, H, Dk, Dv] buffer for the final state, or None when it is not asked for."""
    if output_final_state:
        return torch.empty(b, h, dk, dv, device=ref.device, dtype=torch.float32)
    return None
