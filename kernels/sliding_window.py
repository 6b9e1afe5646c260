"""Causal sliding-window softmax attention, torch form (CPU and training path).

o_t = sum_{s = max(0, t-W+1) .. t} softmax_s(scale * q_t . k_s) v_s: each token sees itself and
the W-1 tokens before it. Computed block by block of queries, each against only the keys its
window can reach, so memory is O(T * (W + block)) instead of O(T^2). Float32 arithmetic.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

QUERY_BLOCK = 128


def sliding_window_attention_torch(q: Tensor, k: Tensor, v: Tensor, window: int, scale: float) -> Tensor:
    b, t, h, _ = q.shape
    qf, kf, vf = (x.float().transpose(1, 2) for x in (q, k, v))  # [B, H, T, D]
    outs = []
    for i0 in range(0, t, QUERY_BLOCK):
        i1 = min(i0 + QUERY_BLOCK, t)
        j0 = max(0, i0 - window + 1)
        scores = (qf[:, :, i0:i1] @ kf[:, :, j0:i1].transpose(-1, -2)) * scale
        qi = torch.arange(i0, i1, device=q.device)[:, None]
        kj = torch.arange(j0, i1, device=q.device)[None, :]
        allowed = (kj <= qi) & (kj > qi - window)
        scores = scores.masked_fill(~allowed, float("-inf"))
        outs.append(torch.softmax(scores, -1) @ vf[:, :, j0:i1])
    return torch.cat(outs, 2).transpose(1, 2).to(q.dtype)


def sliding_window_attention_banded(q: Tensor, k: Tensor, v: Tensor, window: int, scale: float) -> Tensor:
    """The same attention computed on the band only: each query gathers its ``window`` keys
    (left-padded with masked zeros), so work and memory are O(T * W), not O(T * block).
    The textbook O(nW) form the tiers seed's scaling claim is about; float32 arithmetic."""
    b, t, h, d = q.shape
    pad = window - 1
    kf = torch.nn.functional.pad(k.float(), (0, 0, 0, 0, pad, 0))  # [B, T+W-1, H, D]
    vf = torch.nn.functional.pad(v.float(), (0, 0, 0, 0, pad, 0))
    kw = kf.unfold(1, window, 1)  # [B, T, H, D, W]: keys t-W+1 .. t for query t
    vw = vf.unfold(1, window, 1)
    scores = torch.einsum("bthd,bthdw->bthw", q.float(), kw) * scale
    first = torch.arange(t, device=q.device)[:, None] + torch.arange(window, device=q.device)[None, :] - pad
    scores = scores.masked_fill((first < 0)[None, :, None, :], float("-inf"))
    o = torch.einsum("bthw,bthdw->bthd", torch.softmax(scores, -1), vw)
    return o.to(q.dtype)
