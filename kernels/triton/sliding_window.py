"""Triton causal sliding-window softmax attention (flash-attention style forward).

One program per (block of BM queries, batch*head) visits only the key blocks its windows reach,
[first query - W + 1, last query], keeping a running max and sum (online softmax) in float32.
Token t attends to keys t-W+1 .. t. Work is O(T * W), not O(T^2).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _swa_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, qk_scale, T, H, D, W,
                    BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr):
    pm = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    od = tl.arange(0, BD)
    md = od < D
    qi = pm * BM + tl.arange(0, BM)
    mq = qi < T
    q = tl.load(q_ptr + ((b * T + qi) * H + h)[:, None] * D + od[None, :], mask=mq[:, None] & md[None, :],
                other=0.0)
    m_i = tl.zeros([BM], dtype=tl.float32) - 1.0e30
    l_i = tl.zeros([BM], dtype=tl.float32)
    acc = tl.zeros([BM, BD], dtype=tl.float32)
    lo = tl.maximum(pm * BM - W + 1, 0)
    lo = (lo // BN) * BN
    hi = tl.minimum((pm + 1) * BM, T)
    for j0 in range(lo, hi, BN):
        kj = j0 + tl.arange(0, BN)
        mj = kj < T
        kv_off = ((b * T + kj) * H + h)[:, None] * D + od[None, :]
        k = tl.load(k_ptr + kv_off, mask=mj[:, None] & md[None, :], other=0.0)
        v = tl.load(v_ptr + kv_off, mask=mj[:, None] & md[None, :], other=0.0)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        keep = (kj[None, :] <= qi[:, None]) & (kj[None, :] > qi[:, None] - W) & mj[None, :]
        s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(o_ptr + ((b * T + qi) * H + h)[:, None] * D + od[None, :], out.to(o_ptr.dtype.element_ty),
             mask=mq[:, None] & md[None, :])


def sliding_window_fwd(q, k, v, window: int, scale: float, bm: int = 64, bn: int = 64):
    """o [B, T, H, D] on CUDA (or under TRITON_INTERPRET=1). q, k, v share head size D."""
    b, t, h, d = q.shape
    if v.shape[-1] != d:
        raise ValueError(f"the Triton sliding-window kernel needs Dv == Dk, got {v.shape[-1]} and {d}")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    o = torch.empty_like(q)
    bd = max(16, triton.next_power_of_2(d))
    grid = (triton.cdiv(t, bm), b * h)
    _swa_fwd_kernel[grid](q, k, v, o, scale * 1.4426950408889634, t, h, d, window,
                          BM=bm, BN=bn, BD=bd, num_warps=4, num_stages=2)
    return o
