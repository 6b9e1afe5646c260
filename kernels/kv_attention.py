"""One decode step of softmax attention over a static, preallocated KV cache.

``kv_decode(q, k, v, cache_k, cache_v, length)`` for one new token per sequence: rotate q and k to
position ``length`` (rotary, when ``inv_freq`` is given), write k, v into the caches at index
``length``, attend q over the ``length + 1`` valid keys, then advance ``length`` by one, in place.
Everything stays on the device (``length`` is a 0-d int64 tensor, read by the kernels): no host
sync and no shape that changes per token, so the step can be captured in a CUDA graph and replayed
(gpt-fast's static-cache recipe). Shapes: q, k [B, H, D], v [B, H, Dv], caches [B, H, C, D] /
[B, H, C, Dv] with capacity C > length.

Two paths, one definition: the torch path (CPU, or ``backend="torch"``) is a masked SDPA over the
whole capacity; the Triton path (CUDA) fuses rotary and the cache write into one kernel, then
attends with the same masked SDPA (default) or a split-K flash-decoding kernel that reads only the
valid keys (``attention="split"``; slower at long context on the H200, see benchmarks/README.md).
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F

from . import checks

Tensor = torch.Tensor


def rotary_inv_freq(dim: int, base: float = 10000.0, device: torch.device | str | None = None) -> Tensor:
    """base^(-2i/D) for i < D/2, float32: the rotary frequencies (RoFormer, NeoX half-split layout)."""
    return base ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)


def rotate(x: Tensor, positions: Tensor, inv_freq: Tensor) -> Tensor:
    """Rotate pairs (i, i + D/2) of x [..., T, D] by positions [T] * inv_freq (angles in float32)."""
    d = x.shape[-1]
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # [T, D/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def kv_decode_torch(q: Tensor, k: Tensor, v: Tensor, cache_k: Tensor, cache_v: Tensor, length: Tensor,
                    inv_freq: Tensor | None, scale: float) -> Tensor:
    """The reference path: rotary, index_copy into the cache, SDPA masked to the valid keys."""
    pos = length.view(1)
    if inv_freq is not None:
        q = rotate(q[:, :, None], pos, inv_freq)[:, :, 0]
        k = rotate(k[:, :, None], pos, inv_freq)[:, :, 0]
    cache_k.index_copy_(2, pos, k[:, :, None].to(cache_k.dtype))
    cache_v.index_copy_(2, pos, v[:, :, None].to(cache_v.dtype))
    valid = torch.arange(cache_k.shape[2], device=q.device) <= length  # [C]: keys 0..length
    o = F.scaled_dot_product_attention(q[:, :, None].to(cache_k.dtype), cache_k, cache_v,
                                       attn_mask=valid[None, :], scale=scale)
    length.add_(1)
    return o[:, :, 0].to(q.dtype)


def kv_decode(q: Tensor, k: Tensor, v: Tensor, cache_k: Tensor, cache_v: Tensor, length: Tensor,
              inv_freq: Tensor | None = None, scale: float | None = None, backend: str | None = None,
              attention: str = "sdpa") -> Tensor:
    """One token of attention over a static KV cache (see the module docstring); returns o [B, H, Dv].

    The caller guarantees ``length < C`` (the cache object tracks it on the host); the kernels
    cannot check it without a host sync. On the Triton path, ``attention`` picks who attends after
    the fused rotary + append kernel: "sdpa" (torch SDPA with a validity mask) or "split" (the
    split-K flash-decoding kernels).
    """
    b, h, d, dv = checks.step_qkv(q, k, v)
    checks.tensor("cache_k", cache_k, 4)
    checks.tensor("cache_v", cache_v, 4)
    cap = cache_k.shape[2]
    checks.same("cache_k", cache_k, (b, h, cap, d), "[B, H, C, D]")
    checks.same("cache_v", cache_v, (b, h, cap, dv), "[B, H, C, Dv]")
    if not isinstance(length, torch.Tensor) or length.dim() != 0 or length.dtype != torch.int64:
        raise ValueError("length must be a 0-d int64 tensor on the caches' device")
    if inv_freq is not None and tuple(inv_freq.shape) != (d // 2,):
        raise ValueError(f"inv_freq must have shape ({d // 2},) for head size {d}, got {tuple(inv_freq.shape)}")
    sc = checks.scale(scale, d)
    if attention not in ("sdpa", "split"):
        raise ValueError(f"attention must be 'sdpa' or 'split', got {attention!r}")
    if backend not in (None, "torch", "triton"):
        raise ValueError(f"backend must be None, 'torch' or 'triton', got {backend!r}")
    use = backend or ("triton" if q.is_cuda else "torch")
    if use == "triton":
        fn = importlib.import_module("pytest_goni.kernels.triton.kv_attention").kv_decode
        return fn(q, k, v, cache_k, cache_v, length, inv_freq, sc, attention=attention)
    return kv_decode_torch(q, k, v, cache_k, cache_v, length, inv_freq, sc)
