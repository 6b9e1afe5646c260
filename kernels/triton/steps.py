"""Fused single-token decode steps in Triton: each program reads its [Dk, BV] tile of the state
once, applies the operator's update for one token, writes the tile and its BV outputs.

No host synchronization and no data-dependent launch parameters, so a step can be captured in a
CUDA graph. With `inplace=True` the new state overwrites the input state (each program reads its
tile before writing it, and tiles do not overlap), which keeps graph buffers fixed.
Definitions as in `pytest_goni.kernels.reference`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

GLA, SIMPLE_GLA, DELTA, RWKV6, RWKV7 = 0, 1, 2, 3, 4


@triton.jit
def _step_kernel(q_ptr, k_ptr, v_ptr, g_ptr, beta_ptr, a_ptr, b_ptr, u_ptr, s_ptr, o_ptr, s_out_ptr,
                 scale, H, DK, DV,
                 MODE: tl.constexpr, HAS_G: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    iv = tl.program_id(0)
    bh = tl.program_id(1)
    ok = tl.arange(0, BK)
    ov = iv * BV + tl.arange(0, BV)
    mk = ok < DK
    mv = ov < DV
    m2 = mk[:, None] & mv[None, :]
    q = tl.load(q_ptr + bh * DK + ok, mask=mk, other=0.0).to(tl.float32)
    k = tl.load(k_ptr + bh * DK + ok, mask=mk, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + bh * DV + ov, mask=mv, other=0.0).to(tl.float32)
    sp = bh * DK * DV + ok[:, None] * DV + ov[None, :]
    s = tl.load(s_ptr + sp, mask=m2, other=0.0).to(tl.float32)
    kv = k[:, None] * v[None, :]
    if MODE == 0:
        g = tl.load(g_ptr + bh * DK + ok, mask=mk, other=0.0).to(tl.float32)
        s = s * tl.exp(g)[:, None] + kv
        o = tl.sum(q[:, None] * s, 0)
    elif MODE == 1:
        g = tl.load(g_ptr + bh).to(tl.float32)
        s = s * tl.exp(g) + kv
        o = tl.sum(q[:, None] * s, 0)
    elif MODE == 2:
        if HAS_G:
            s = s * tl.exp(tl.load(g_ptr + bh).to(tl.float32))
        beta = tl.load(beta_ptr + bh).to(tl.float32)
        ks = tl.sum(k[:, None] * s, 0)
        s = s + k[:, None] * (beta * (v - ks))[None, :]
        o = tl.sum(q[:, None] * s, 0)
    elif MODE == 3:
        h = bh % H
        u = tl.load(u_ptr + h * DK + ok, mask=mk, other=0.0).to(tl.float32)
        o = tl.sum(q[:, None] * s, 0) + tl.sum(q * u * k, 0) * v
        w = tl.load(g_ptr + bh * DK + ok, mask=mk, other=0.0).to(tl.float32)
        s = s * tl.exp(w)[:, None] + kv
    else:
        w = tl.load(g_ptr + bh * DK + ok, mask=mk, other=0.0).to(tl.float32)
        a = tl.load(a_ptr + bh * DK + ok, mask=mk, other=0.0).to(tl.float32)
        bb = tl.load(b_ptr + bh * DK + ok, mask=mk, other=0.0).to(tl.float32)
        a_s = tl.sum(a[:, None] * s, 0)
        s = s * tl.exp(w)[:, None] + bb[:, None] * a_s[None, :] + kv
        o = tl.sum(q[:, None] * s, 0)
    tl.store(o_ptr + bh * DV + ov, (o * scale).to(o_ptr.dtype.element_ty), mask=mv)
    tl.store(s_out_ptr + sp, s, mask=m2)


def _c(x):
    return None if x is None else x.contiguous()


def _launch(mode, q, k, v, state, scale, g=None, beta=None, a=None, b=None, u=None, inplace=False):
    bs, h, dk = q.shape
    dv = v.shape[-1]
    q, k, v, g, beta, a, b, u = map(_c, (q, k, v, g, beta, a, b, u))
    if state.dtype != torch.float32 or not state.is_contiguous():
        if inplace:
            raise ValueError("inplace decode needs a contiguous float32 state")
        state = state.float().contiguous()
    out_state = state if inplace else torch.empty_like(state)
    o = torch.empty(bs, h, dv, device=q.device, dtype=q.dtype)
    bk = triton.next_power_of_2(dk)
    bv = min(triton.next_power_of_2(dv), max(16, 4096 // bk))
    dummy = q
    grid = (triton.cdiv(dv, bv), bs * h)
    _step_kernel[grid](
        q, k, v, dummy if g is None else g, dummy if beta is None else beta,
        dummy if a is None else a, dummy if b is None else b, dummy if u is None else u,
        state, o, out_state, scale, h, dk, dv,
        MODE=mode, HAS_G=g is not None, BK=bk, BV=bv, num_warps=4,
    )
    return o, out_state


def gla_step(q, k, v, g, state, scale, inplace=False):
    return _launch(GLA, q, k, v, state, scale, g=g, inplace=inplace)


def simple_gla_step(q, k, v, g, state, scale, inplace=False):
    return _launch(SIMPLE_GLA, q, k, v, state, scale, g=g, inplace=inplace)


def gated_delta_rule_step(q, k, v, g, beta, state, scale, inplace=False):
    return _launch(DELTA, q, k, v, state, scale, g=g, beta=beta, inplace=inplace)


def rwkv6_step(r, k, v, w, u, state, scale, inplace=False):
    return _launch(RWKV6, r, k, v, state, scale, g=w, u=u, inplace=inplace)


def rwkv7_step(r, w, k, v, a, b, state, scale, inplace=False):
    return _launch(RWKV7, r, k, v, state, scale, g=w, a=a, b=b, inplace=inplace)
