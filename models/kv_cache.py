"""Decode-state pieces whose tensors keep their shape from token to token, so a step can be replayed
from a CUDA graph: the static KV cache and the position counter.

Both keep a host copy of their count (``n``) beside the device one: eager Python reads the host
copy (is the cache full? is a learned position past the table?) without a sync; the device copy is
what the kernels read and advance. Whoever replays a captured step N times calls
:func:`advance_host` so the host copies agree again.
"""

from __future__ import annotations

from typing import Any

import torch

Tensor = torch.Tensor

#: Room a prefill leaves for decoding before the cache must grow (one copy per 256 tokens at worst).
RESERVE = 256


def _round_up(n: int, to: int = 64) -> int:
    """Capacities in multiples of 64: SDPA's mask rows stay aligned (no padded copy per call)."""
    return -(-n // to) * to


class KVCache:
    """Keys [B, H, C, D] and values [B, H, C, Dv] preallocated to capacity C; tokens 0..n-1 valid.

    ``length`` (0-d int64 on the device) is the valid count the kernels read and advance
    (`pytest_goni.kernels.kv_attention.kv_decode`); ``n`` is its host copy. Nothing is copied per
    token; when a step finds the cache full (eager only) it grows by a quarter, one copy.
    """

    def __init__(self, k: Tensor, v: Tensor, reserve: int | None = None):
        b, h, t, d = k.shape
        reserve = RESERVE if reserve is None else reserve
        cap = _round_up(t + reserve)
        # zeros, not empty: the torch path masks scores, and 0 * (a NaN bit pattern) would be NaN
        self.k = k.new_zeros(b, h, cap, d)
        self.v = v.new_zeros(b, h, cap, v.shape[-1])
        self.k[:, :, :t] = k
        self.v[:, :, :t] = v
        self.n = t
        self.length = torch.full((), t, dtype=torch.int64, device=k.device)

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def reserve(self, more: int) -> None:
        """Make room for ``more`` tokens past the valid ones (one copy if it must grow)."""
        need = self.n + more
        if need <= self.capacity:
            return
        b, h, _, d = self.k.shape
        cap = _round_up(max(need, self.capacity + self.capacity // 4))
        k, v = self.k.new_zeros(b, h, cap, d), self.v.new_zeros(b, h, cap, self.v.shape[-1])
        k[:, :, : self.n] = self.k[:, :, : self.n]
        v[:, :, : self.n] = self.v[:, :, : self.n]
        self.k, self.v = k, v

    def before_step(self) -> None:
        """Called by a layer's step before it writes token ``n``: grow if full, count it on the host."""
        self.reserve(1)
        self.n += 1

    def advance_host(self, steps: int) -> None:
        self.n += steps

    def tensors(self) -> list[Tensor]:
        return [self.k, self.v, self.length]

    def state_nbytes(self) -> int:
        """The valid part only: what a KV cache of this context holds (spare room is not state)."""
        per_token = (self.k[:, :, :1].numel() * self.k.element_size()
                     + self.v[:, :, :1].numel() * self.v.element_size())
        return per_token * self.n


class Position:
    """Tokens seen, for learned position tables: ``t`` on the device (read inside a graph), ``n`` on
    the host (for the table-length check). A counter, not memory: it counts 0 state bytes."""

    def __init__(self, n: int, device: torch.device | str):
        self.n = n
        self.t = torch.full((), n, dtype=torch.int64, device=device)

    def advance(self) -> None:
        self.n += 1
        self.t.add_(1)

    def advance_host(self, steps: int) -> None:
        self.n += steps

    def tensors(self) -> list[Tensor]:
        return [self.t]

    def state_nbytes(self) -> int:
        return 0


def advance_host(state: Any, steps: int) -> Any:
    """After ``steps`` graph replays: move every host counter in ``state`` on by ``steps``.

    Returns the state (a CausalLM's int ``pos`` entries are replaced in their dicts)."""
    if hasattr(state, "advance_host"):
        state.advance_host(steps)
    elif isinstance(state, dict):
        for key, value in state.items():
            if key == "pos" and isinstance(value, int):
                state[key] = value + steps
            else:
                advance_host(value, steps)
    elif isinstance(state, (list, tuple)):
        for value in state:
            advance_host(value, steps)
    return state


def reserve(state: Any, steps: int) -> None:
    """Make every KV cache in ``state`` hold ``steps`` more tokens (before capturing a graph)."""
    if isinstance(state, KVCache):
        state.reserve(steps)
    elif isinstance(state, dict):
        for value in state.values():
            reserve(value, steps)
    elif isinstance(state, (list, tuple)):
        for value in state:
            reserve(value, steps)
