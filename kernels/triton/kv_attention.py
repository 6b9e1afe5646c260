"""Attention decode over a static KV cache, graph-capturable: a fused rotary + append kernel, then
the attention by torch SDPA under a validity mask (default) or by split-K flash decoding (below).

1. ``_append``: one program per (batch, head) rotates q and k to position L (the valid length,
   read from device memory), stores the rotated q (float32) and writes k, v into the caches at L.
2. ``_split``: programs over (batch*head, split); split s covers keys [s*SPLIT, (s+1)*SPLIT) of the
   capacity but walks only those below L+1, in BLOCK_N tiles with an online softmax, and stores its
   running max, sum and unnormalised output. Splits past the valid keys do no loads, so the cost
   follows the context, not the capacity.
3. ``_combine``: one program per (batch, head) merges the splits (log-sum-exp rescale); program 0
   then stores L+1 (every split read L before this launch started, in stream order).

The split count is fixed by the capacity (about four programs per SM at the capacity), so the grid
never depends on L: one CUDA graph serves every step until the cache is full.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

# the running max before any key: finite, so exp(NEG - m) is 0 and never NaN (a constexpr: compiled
# Triton refuses plain Python globals inside a kernel; the interpreter does not check)
NEG = tl.constexpr(-1.0e30)


@triton.jit
def _append(q_ptr, k_ptr, v_ptr, inv_ptr, len_ptr, qr_ptr, ck_ptr, cv_ptr,
            sqb, sqh, skb, skh, svb, svh, H, C, D, DV,
            ROPE: tl.constexpr, HALF: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr):
    bh = tl.program_id(0)
    b = bh // H
    h = bh % H
    L = tl.load(len_ptr)
    q_base = q_ptr + b * sqb + h * sqh
    k_base = k_ptr + b * skb + h * skh
    row = bh.to(tl.int64) * C + L  # the cache row this token goes to
    if ROPE:
        half = D // 2
        oh = tl.arange(0, HALF)
        mh = oh < half
        ang = L.to(tl.float32) * tl.load(inv_ptr + oh, mask=mh, other=0.0)
        c = tl.cos(ang)
        s = tl.sin(ang)
        q1 = tl.load(q_base + oh, mask=mh, other=0.0).to(tl.float32)
        q2 = tl.load(q_base + half + oh, mask=mh, other=0.0).to(tl.float32)
        k1 = tl.load(k_base + oh, mask=mh, other=0.0).to(tl.float32)
        k2 = tl.load(k_base + half + oh, mask=mh, other=0.0).to(tl.float32)
        tl.store(qr_ptr + bh * D + oh, (q1 * c - q2 * s).to(qr_ptr.dtype.element_ty), mask=mh)
        tl.store(qr_ptr + bh * D + half + oh, (q2 * c + q1 * s).to(qr_ptr.dtype.element_ty), mask=mh)
        tl.store(ck_ptr + row * D + oh, (k1 * c - k2 * s).to(ck_ptr.dtype.element_ty), mask=mh)
        tl.store(ck_ptr + row * D + half + oh, (k2 * c + k1 * s).to(ck_ptr.dtype.element_ty), mask=mh)
    else:
        od = tl.arange(0, BD)
        md = od < D
        tl.store(qr_ptr + bh * D + od, tl.load(q_base + od, mask=md, other=0.0).to(qr_ptr.dtype.element_ty), mask=md)
        kk = tl.load(k_base + od, mask=md, other=0.0)
        tl.store(ck_ptr + row * D + od, kk.to(ck_ptr.dtype.element_ty), mask=md)
    ov = tl.arange(0, BDV)
    mv = ov < DV
    vv = tl.load(v_ptr + b * svb + h * svh + ov, mask=mv, other=0.0)
    tl.store(cv_ptr + row * DV + ov, vv.to(cv_ptr.dtype.element_ty), mask=mv)


@triton.jit
def _split(qr_ptr, ck_ptr, cv_ptr, len_ptr, m_ptr, l_ptr, acc_ptr, scale, C, D, DV, SPLIT, NSPLIT,
           BLOCK_N: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr):
    bh = tl.program_id(0)
    sp = tl.program_id(1)
    n_valid = tl.load(len_ptr).to(tl.int32) + 1  # the keys written so far, this step's included
    od = tl.arange(0, BD)
    ov = tl.arange(0, BDV)
    md = od < D
    mv = ov < DV
    q = tl.load(qr_ptr + bh * D + od, mask=md, other=0.0) * scale
    m = tl.full((), NEG, tl.float32)
    lsum = tl.zeros((), tl.float32)
    acc = tl.zeros((BDV,), tl.float32)
    start = sp * SPLIT
    end = tl.minimum(start + SPLIT, n_valid)
    base = bh.to(tl.int64) * C
    for n0 in range(start, end, BLOCK_N):
        on = n0 + tl.arange(0, BLOCK_N)
        mn = on < end
        rows = base + on
        kb = tl.load(ck_ptr + rows[:, None] * D + od[None, :], mask=mn[:, None] & md[None, :], other=0.0)
        s = tl.sum(kb.to(tl.float32) * q[None, :], 1)
        s = tl.where(mn, s, NEG)
        m_new = tl.maximum(m, tl.max(s, 0))
        p = tl.exp(s - m_new)
        alpha = tl.exp(m - m_new)
        vb = tl.load(cv_ptr + rows[:, None] * DV + ov[None, :], mask=mn[:, None] & mv[None, :], other=0.0)
        acc = acc * alpha + tl.sum(p[:, None] * vb.to(tl.float32), 0)
        lsum = lsum * alpha + tl.sum(p, 0)
        m = m_new
    out = bh * NSPLIT + sp
    tl.store(m_ptr + out, m)
    tl.store(l_ptr + out, lsum)
    tl.store(acc_ptr + out * DV + ov, acc, mask=mv)


@triton.jit
def _combine(m_ptr, l_ptr, acc_ptr, o_ptr, len_ptr, NSPLIT, DV, BS: tl.constexpr, BDV: tl.constexpr):
    bh = tl.program_id(0)
    osp = tl.arange(0, BS)
    ms = osp < NSPLIT
    ov = tl.arange(0, BDV)
    mv = ov < DV
    m = tl.load(m_ptr + bh * NSPLIT + osp, mask=ms, other=NEG)
    lsum = tl.load(l_ptr + bh * NSPLIT + osp, mask=ms, other=0.0)
    acc = tl.load(acc_ptr + (bh * NSPLIT + osp)[:, None] * DV + ov[None, :], mask=ms[:, None] & mv[None, :],
                  other=0.0)
    w = tl.exp(m - tl.max(m, 0))  # empty splits carry NEG: weight 0
    o = tl.sum(w[:, None] * acc, 0) / tl.sum(w * lsum, 0)
    tl.store(o_ptr + bh * DV + ov, o.to(o_ptr.dtype.element_ty), mask=mv)
    if bh == 0:
        tl.store(len_ptr, tl.load(len_ptr) + 1)


def splits(capacity: int, bh: int, device: torch.device, block_n: int) -> tuple[int, int]:
    """(keys per split, number of splits): about four programs per SM when the cache is full."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 8
    want = max(1, triton.cdiv(4 * sms, bh))
    per = max(block_n, triton.cdiv(triton.cdiv(capacity, want), block_n) * block_n)
    return per, triton.cdiv(capacity, per)


_POSITIONS: dict[tuple[int, torch.device], torch.Tensor] = {}


def _positions(cap: int, device: torch.device) -> torch.Tensor:
    """arange(cap) made once per capacity and device (the mask's one launch is then the compare);
    a few capacities are kept, as a decode run uses one per model."""
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():  # in a graph's pool: not kept
        return torch.arange(cap, device=device)
    key = (cap, device)
    if key not in _POSITIONS:
        if len(_POSITIONS) >= 8:
            _POSITIONS.pop(next(iter(_POSITIONS)))
        _POSITIONS[key] = torch.arange(cap, device=device)
    return _POSITIONS[key]


def kv_decode(q, k, v, cache_k, cache_v, length, inv_freq, scale, attention: str = "sdpa", block_n: int = 64,
              num_warps: int = 4):
    """See pytest_goni.kernels.kv_attention.kv_decode (inputs checked there).

    ``attention="split"`` runs the split-K kernels below; ``"sdpa"`` (default) hands the attention
    to torch SDPA with a validity mask over the capacity, as the reference recipe does
    (benchmarks/reference_decode.py): on the H200 run of 2026-11-30 that call was faster at 32k
    and 128k (the whole recipe step 0.90 / 1.73 ms against 1.25 / 3.09 ms with "split")."""
    b, h, d = q.shape
    dv = v.shape[-1]
    cap = cache_k.shape[2]
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.stride(-1) != 1:
            raise ValueError(f"{name} must have a unit stride in its last dim")
    if not (cache_k.is_contiguous() and cache_v.is_contiguous()):
        raise ValueError("the KV caches must be contiguous [B, H, C, D]")
    # SDPA takes the rotated q in the cache's dtype (written so by the append kernel: no cast launch)
    qr = torch.empty(b, h, d, device=q.device, dtype=cache_k.dtype if attention == "sdpa" else torch.float32)
    bd, bdv = triton.next_power_of_2(d), triton.next_power_of_2(dv)
    rope = inv_freq is not None
    _append[(b * h,)](q, k, v, inv_freq if rope else qr, length, qr, cache_k, cache_v,
                      q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
                      h, cap, d, dv, ROPE=rope, HALF=triton.next_power_of_2(max(1, d // 2)), BD=bd, BDV=bdv,
                      num_warps=1)
    if attention == "sdpa":
        valid = (_positions(cap, q.device) <= length).view(1, 1, 1, cap)  # keys 0..L
        o = F.scaled_dot_product_attention(qr[:, :, None], cache_k, cache_v, attn_mask=valid, scale=scale)
        length.add_(1)
        return o[:, :, 0].to(q.dtype)
    if attention != "split":
        raise ValueError(f"attention must be 'sdpa' or 'split', got {attention!r}")
    per, nsplit = splits(cap, b * h, q.device, block_n)
    m = torch.empty(b * h, nsplit, device=q.device, dtype=torch.float32)
    lsum = torch.empty_like(m)
    acc = torch.empty(b * h, nsplit, dv, device=q.device, dtype=torch.float32)
    _split[(b * h, nsplit)](qr, cache_k, cache_v, length, m, lsum, acc, scale, cap, d, dv, per, nsplit,
                            BLOCK_N=block_n, BD=bd, BDV=bdv, num_warps=num_warps)
    o = torch.empty(b, h, dv, device=q.device, dtype=q.dtype)
    _combine[(b * h,)](m, lsum, acc, o, length, nsplit, dv, BS=triton.next_power_of_2(nsplit), BDV=bdv,
                       num_warps=4)
    return o
