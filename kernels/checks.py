"""Input validation shared by the dispatchers: bad input gets a clear ValueError, not a traceback."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def tensor(name: str, x, ndim: int) -> Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dims, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def same(name: str, x: Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ({what}), got {tuple(x.shape)}")


def qkv(q: Tensor, k: Tensor, v: Tensor, names=("q", "k", "v")) -> tuple[int, int, int, int, int]:
    """Checks [B, T, H, Dk] q/k and [B, T, H, Dv] v; returns (B, T, H, Dk, Dv)."""
    tensor(names[0], q, 4)
    tensor(names[1], k, 4)
    tensor(names[2], v, 4)
    b, t, h, dk = q.shape
    same(names[1], k, (b, t, h, dk), f"like {names[0]}: [B, T, H, Dk]")
    if tuple(v.shape[:3]) != (b, t, h):
        raise ValueError(f"{names[2]} must be [B, T, H, Dv] = [{b}, {t}, {h}, Dv], got {tuple(v.shape)}")
    if t == 0:
        raise ValueError("sequence length T must be >= 1")
    if q.device != k.device or q.device != v.device:
        raise ValueError("q, k, v must be on the same device")
    return b, t, h, dk, v.shape[-1]


def step_qkv(q: Tensor, k: Tensor, v: Tensor, names=("q", "k", "v")) -> tuple[int, int, int, int]:
    """Checks decode inputs [B, H, Dk] / [B, H, Dv]; returns (B, H, Dk, Dv)."""
    tensor(names[0], q, 3)
    tensor(names[1], k, 3)
    tensor(names[2], v, 3)
    b, h, dk = q.shape
    same(names[1], k, (b, h, dk), f"like {names[0]}: [B, H, Dk]")
    if tuple(v.shape[:2]) != (b, h):
        raise ValueError(f"{names[2]} must be [B, H, Dv] = [{b}, {h}, Dv], got {tuple(v.shape)}")
    return b, h, dk, v.shape[-1]


def state(s: Tensor | None, b: int, h: int, dk: int, dv: int, name: str = "initial_state") -> None:
    if s is None:
        return
    tensor(name, s, 4)
    same(name, s, (b, h, dk, dv), "[B, H, Dk, Dv]")


def scale(value: float | None, dk: int) -> float:
    if value is None:
        return dk**-0.5
    value = float(value)
    if not value == value or value in (float("inf"), float("-inf")):
        raise ValueError(f"scale must be finite, got {value}")
    return value
