"""Host-side helpers shared by the Triton chunked forwards: the optional initial / final state."""

from __future__ import annotations

import torch


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
