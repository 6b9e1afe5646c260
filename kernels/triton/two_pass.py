"""Two-pass chunked forward shared by the scalar-decay, GLA and RWKV-6 operators.

Pass 1 (`states`): one program per (key block, value block, batch*head) walks the chunks in
order and stores the state *before* each chunk, h[n] (in the input dtype, like FLA), then
S <- decay_C S + (K decay_{C-i})^T V. Its per-chunk work is one small matmul, so the sequential
part is short. (The delta rules have their own segment-parallel walk: `delta_rule`.)
Pass 2 (`output`): one program per (value block, chunk, batch*head), all independent:
o = scale (A V + (Q decay_i) h[n]), A the decayed causal Q K^T of the chunk (built in the
kernel for scalar decays, read from `intra.pairwise` for vector decays).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import block_sizes, state_in, state_out


@triton.jit
def _states_kernel(k_ptr, v_ptr, gc_ptr, h_ptr, s0_ptr, st_ptr, T, TP, H, DK, DV, NT,
                   C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, SCALAR: tl.constexpr,
                   HAS_S0: tl.constexpr, STORE_S: tl.constexpr):
    ik = tl.program_id(0)
    iv = tl.program_id(1)
    bh = tl.program_id(2)
    b = bh // H
    h = bh % H
    ok = ik * BK + tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    oc = tl.arange(0, C)
    mk = ok < DK
    mv = ov < DV
    m2 = mk[:, None] & mv[None, :]
    sp = ok[:, None] * DV + ov[None, :]
    if HAS_S0:
        s = tl.load(s0_ptr + bh * DK * DV + sp, mask=m2, other=0.0)
    else:
        s = tl.zeros([BK, BV], dtype=tl.float32)
    for n in range(0, NT):
        tl.store(h_ptr + (bh * NT + n) * DK * DV + sp, s.to(h_ptr.dtype.element_ty), mask=m2)
        t = n * C + oc
        mt = t < T
        row = (b * T + t) * H + h
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mt[:, None] & mk[None, :], other=0.0)
        v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :], other=0.0)
        last = n * C + C - 1
        if SCALAR:
            bc = tl.load(gc_ptr + (b * TP + t) * H + h)
            blast = tl.load(gc_ptr + (b * TP + last) * H + h)
            kd = k.to(tl.float32) * tl.exp(blast - bc)[:, None]
            s = s * tl.exp(blast)
        else:
            bc = tl.load(gc_ptr + ((b * TP + t) * H + h)[:, None] * DK + ok[None, :], mask=mk[None, :],
                         other=0.0)
            blast = tl.load(gc_ptr + ((b * TP + last) * H + h) * DK + ok, mask=mk, other=0.0)
            kd = k.to(tl.float32) * tl.exp(blast[None, :] - bc)
            s = s * tl.exp(blast)[:, None]
        s += tl.dot(tl.trans(kd.to(v.dtype)), v)
    if STORE_S:
        tl.store(st_ptr + bh * DK * DV + sp, s, mask=m2)


@triton.jit
def _output_kernel(q_ptr, k_ptr, v_ptr, gq_ptr, a_ptr, h_ptr, o_ptr, scale, T, TP, H, DK, DV, NT,
                   C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, SCALAR: tl.constexpr):
    iv = tl.program_id(0)
    n = tl.program_id(1)
    bh = tl.program_id(2)
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    oc = tl.arange(0, C)
    mk = ok < DK
    mv = ov < DV
    t = n * C + oc
    mt = t < T
    row = (b * T + t) * H + h
    q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mt[:, None] & mk[None, :], other=0.0)
    v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :], other=0.0)
    hn = tl.load(h_ptr + (bh * NT + n) * DK * DV + ok[:, None] * DV + ov[None, :],
                 mask=mk[:, None] & mv[None, :], other=0.0)
    if SCALAR:
        k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mt[:, None] & mk[None, :], other=0.0)
        bc = tl.load(gq_ptr + (b * TP + t) * H + h)
        causal = oc[:, None] >= oc[None, :]
        att = tl.dot(q, tl.trans(k)) * tl.exp(tl.where(causal, bc[:, None] - bc[None, :], float("-inf")))
        qd = q.to(tl.float32) * tl.exp(bc)[:, None]
    else:
        att = tl.load(a_ptr + (bh * TP + t)[:, None] * C + oc[None, :])
        bq = tl.load(gq_ptr + ((b * TP + t) * H + h)[:, None] * DK + ok[None, :], mask=mk[None, :], other=0.0)
        qd = q.to(tl.float32) * tl.exp(bq)
    o = tl.dot(att.to(v.dtype), v) + tl.dot(qd.to(hn.dtype), hn)
    tl.store(o_ptr + row[:, None] * DV + ov[None, :], (o * scale).to(o_ptr.dtype.element_ty),
             mask=mt[:, None] & mv[None, :])


def _state_buffers(k, dv, nt, initial_state, output_final_state):
    """h [B*H, N, Dk, Dv] (dtype of k), the final state (float32 or None) and the s0 pointer."""
    b, _, h, dk = k.shape
    hbuf = torch.empty(b * h, nt, dk, dv, device=k.device, dtype=k.dtype)
    st = state_out(output_final_state, b, h, dk, dv, k)
    s0, _ = state_in(initial_state, hbuf)
    return hbuf, st, s0


def states(k, v, gc, chunk, scalar, initial_state, output_final_state):
    """h [B*H, N, Dk, Dv] (dtype of k) and the final state (float32 or None)."""
    b, t, h, dk = k.shape
    dv = v.shape[-1]
    tp = gc.shape[1]
    nt = tp // chunk
    hbuf, st, s0 = _state_buffers(k, dv, nt, initial_state, output_final_state)
    _, bk, bv = block_sizes(dk, dv)
    grid = (triton.cdiv(dk, bk), triton.cdiv(dv, bv), b * h)
    _states_kernel[grid](k, v, gc, hbuf, s0, st if st is not None else hbuf, t, tp, h, dk, dv, nt,
                         C=chunk, BK=bk, BV=bv, SCALAR=scalar, HAS_S0=initial_state is not None,
                         STORE_S=st is not None, num_warps=4, num_stages=2)
    return hbuf, st


def output(q, k, v, gq, att, hbuf, scale, chunk, scalar):
    """o [B, T, H, Dv] in q's dtype from the per-chunk states h."""
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    tp = gq.shape[1]
    nt = tp // chunk
    o = torch.empty(b, t, h, dv, device=q.device, dtype=q.dtype)
    bk_full, _, bv = block_sizes(dk, dv)
    bv = max(16, min(triton.next_power_of_2(dv), 64))
    grid = (triton.cdiv(dv, bv), nt, b * h)
    _output_kernel[grid](q, k, v, gq, att if att is not None else gq, hbuf, o, scale, t, tp, h, dk, dv, nt,
                         C=chunk, BK=bk_full, BV=bv, SCALAR=scalar, num_warps=4, num_stages=2)
    return o
