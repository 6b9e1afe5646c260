"""Residual add + norm, SwiGLU's SiLU x product, the GEMVs with those as prologues, and RWKV's token
shift + projections, one launch each (definitions: `pytest_goni.kernels.decode_fusion`). The row
(d_model or the MLP width at decode) fits one block, so every statistic is a single in-register
reduction."""

from __future__ import annotations

import itertools

import torch
import triton
import triton.language as tl

from .mixer_steps import _conv_rows


@triton.jit
def _normed_row(z, o, m, w_ptr, b_ptr, D, eps, HAS_W: tl.constexpr, HAS_B: tl.constexpr, LAYER: tl.constexpr):
    """RMSNorm (LayerNorm when LAYER) of one float32 row z [BD] (entries past D masked by m), times the
    weight and plus the bias when given: the norm both the add+norm kernel and the GEMV prologue use."""
    if LAYER:
        z = tl.where(m, z - tl.sum(z, 0) / D, 0.0)
    z = z * tl.rsqrt(tl.sum(z * z, 0) / D + eps)
    if HAS_W:
        z = z * tl.load(w_ptr + o, mask=m, other=0.0).to(tl.float32)
    if HAS_B:
        z = z + tl.load(b_ptr + o, mask=m, other=0.0).to(tl.float32)
    return z


@triton.jit
def _add_norm_kernel(x_ptr, r_ptr, w_ptr, b_ptr, h_ptr, y_ptr, sx, sr, D, eps,
                     HAS_R: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr, LAYER: tl.constexpr,
                     BD: tl.constexpr):
    row = tl.program_id(0)
    o = tl.arange(0, BD)
    m = o < D
    x = tl.load(x_ptr + row * sx + o, mask=m, other=0.0)
    if HAS_R:
        r = tl.load(r_ptr + row * sr + o, mask=m, other=0.0)
        h = (x.to(tl.float32) + r.to(tl.float32)).to(x_ptr.dtype.element_ty)  # as the unfused add stores it
        tl.store(h_ptr + row * D + o, h, mask=m)
        y = h.to(tl.float32)
    else:
        y = x.to(tl.float32)
    y = _normed_row(y, o, m, w_ptr, b_ptr, D, eps, HAS_W, HAS_B, LAYER)
    tl.store(y_ptr + row * D + o, y.to(y_ptr.dtype.element_ty), mask=m)


def add_norm(x, r, weight, bias, eps, layer):
    b, d = x.shape
    y = torch.empty(b, d, device=x.device, dtype=x.dtype)
    h = torch.empty_like(y) if r is not None else x
    bd = triton.next_power_of_2(d)
    _add_norm_kernel[(b,)](x, x if r is None else r, x if weight is None else weight.contiguous(),
                           x if bias is None else bias.contiguous(), h, y, x.stride(0),
                           0 if r is None else r.stride(0), d, eps, HAS_R=r is not None, HAS_W=weight is not None,
                           HAS_B=bias is not None, LAYER=layer, BD=bd, num_warps=4 if bd <= 2048 else 8)
    return h, y


ACTS = {"silu": 0, "sigmoid": 1, "relu2": 2}


@triton.jit
def _silu_mul_kernel(a_ptr, b_ptr, y_ptr, sa, sb, F, BF: tl.constexpr, ACT: tl.constexpr):
    """y = act(a) * b: ACT 0 SiLU, 1 sigmoid, 2 relu(a)^2 (no b)."""
    row = tl.program_id(1)
    o = tl.program_id(0) * BF + tl.arange(0, BF)
    m = o < F
    a = tl.load(a_ptr + row * sa + o, mask=m, other=0.0).to(tl.float32)
    if ACT == 2:
        r = tl.maximum(a, 0.0).to(y_ptr.dtype.element_ty).to(tl.float32)  # relu's output, rounded, then squared
        y = r * r
    else:
        b = tl.load(b_ptr + row * sb + o, mask=m, other=0.0).to(tl.float32)
        if ACT == 0:
            y = a / (1.0 + tl.exp(-a)) * b
        else:
            y = (1.0 / (1.0 + tl.exp(-a))).to(y_ptr.dtype.element_ty).to(tl.float32) * b
    tl.store(y_ptr + row * F + o, y.to(y_ptr.dtype.element_ty), mask=m)


def silu_mul(a, b, act="silu"):
    rows, f = a.shape
    y = torch.empty(rows, f, device=a.device, dtype=a.dtype)
    bf = 1024
    _silu_mul_kernel[(triton.cdiv(f, bf), rows)](a, a if b is None else b, y, a.stride(0),
                                                 0 if b is None else b.stride(0), f, BF=bf, ACT=ACTS[act],
                                                 num_warps=4)
    return y


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    """tanh from one exp of a non-positive argument (no overflow; not every Triton has tl.tanh)."""
    t = tl.exp(-2.0 * tl.abs(x))
    y = (1.0 - t) / (1.0 + t)
    return tl.where(x < 0.0, -y, y)


@triton.jit
def _conv_epilogue(y, on, mn, row, cs_ptr, cw_ptr, cb_ptr, c0, CC, KM1, CONV_B: tl.constexpr,
                   CONV_ACT: tl.constexpr, BJ: tl.constexpr):
    """Output rows c0..c0+CC-1 of y (rounded as the projection stores them) replaced by their short
    conv step (Mamba-2's conv on in_proj's x, B, C): the conv in the projection's epilogue."""
    c = on - c0
    mc = mn & (c >= 0) & (c < CC)
    return tl.where(mc, _conv_rows(y, c, mc, row, cs_ptr, cw_ptr, cb_ptr, CC, KM1, CONV_B, CONV_ACT, BJ), y)


@triton.jit
def _gemv_kernel(x_ptr, r_ptr, nw_ptr, nb_ptr, w_ptr, wb_ptr, h_ptr, y_ptr, e_ptr, l_ptr, w2_ptr,
                 cs_ptr, cw_ptr, cb_ptr, sx, sr, se, N, K, K2, eps, c0, CC, KM1,
                 PRO: tl.constexpr, HAS_R: tl.constexpr, HAS_NW: tl.constexpr, HAS_NB: tl.constexpr,
                 LAYER: tl.constexpr, HAS_WB: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr,
                 EPI: tl.constexpr, BD2: tl.constexpr, CONV: tl.constexpr, CONV_B: tl.constexpr,
                 CONV_ACT: tl.constexpr, BJ: tl.constexpr):
    """y = W z (+ bias) for one row, z made from the whole input row by the prologue: PRO 1 the
    add + norm of `_add_norm_kernel` (program 0 stores h), PRO 2 silu(x) * r, PRO 3 relu(x)^2. Every
    program computes the (cheap) prologue itself and reads its BN rows of W. Epilogue: EPI 1
    sigmoid(e) * y, EPI 2 lerp(e, y, sigmoid(l)) (e [B, N] rows, l [N]); with BD2 > 0, e is no input
    but a second GEMV's product W2 x2 (x2 [B, K2] rows at e_ptr, W2 [N, K2]). CONV: the outputs
    c0..c0+CC-1 go through the short conv step (`_conv_rows`, state at cs_ptr shifted in place)."""
    pn = tl.program_id(0)
    row = tl.program_id(1)
    ok = tl.arange(0, BD)
    mk = ok < K
    x = tl.load(x_ptr + row * sx + ok, mask=mk, other=0.0)
    if PRO == 1:
        if HAS_R:
            r = tl.load(r_ptr + row * sr + ok, mask=mk, other=0.0)
            h = (x.to(tl.float32) + r.to(tl.float32)).to(x_ptr.dtype.element_ty)
            tl.store(h_ptr + row * K + ok, h, mask=mk & ((ok * 0 + pn) == 0))  # program 0 writes h
            z = h.to(tl.float32)
        else:
            z = x.to(tl.float32)
        z = _normed_row(z, ok, mk, nw_ptr, nb_ptr, K, eps, HAS_NW, HAS_NB, LAYER)
    elif PRO == 2:
        a = x.to(tl.float32)
        z = a / (1.0 + tl.exp(-a)) * tl.load(r_ptr + row * sr + ok, mask=mk, other=0.0).to(tl.float32)
    else:
        z = tl.maximum(x.to(tl.float32), 0.0).to(x_ptr.dtype.element_ty).to(tl.float32)  # relu, rounded, squared
        z = z * z
    z = z.to(w_ptr.dtype.element_ty).to(tl.float32)  # rounded as the matmul's input (autocast: to W's dtype)
    on = pn * BN + tl.arange(0, BN)
    mn = on < N
    w = tl.load(w_ptr + on[:, None] * K + ok[None, :], mask=mn[:, None] & mk[None, :], other=0.0)
    y = tl.sum(w.to(tl.float32) * z[None, :], 1)
    if HAS_WB:
        y = y + tl.load(wb_ptr + on, mask=mn, other=0.0).to(tl.float32)
    if CONV:
        y = _conv_epilogue(y.to(y_ptr.dtype.element_ty).to(tl.float32), on, mn, row, cs_ptr, cw_ptr, cb_ptr, c0, CC,
                           KM1, CONV_B, CONV_ACT, BJ)
    if EPI != 0:  # as the unfused op after the linear: its output rounded first
        y = y.to(w_ptr.dtype.element_ty).to(tl.float32)
        if BD2 > 0:  # e = W2 x2, rounded as the unfused linear stores it
            o2 = tl.arange(0, BD2)
            m2 = o2 < K2
            x2 = tl.load(e_ptr + row * se + o2, mask=m2, other=0.0).to(w2_ptr.dtype.element_ty).to(tl.float32)
            w2 = tl.load(w2_ptr + on[:, None] * K2 + o2[None, :], mask=mn[:, None] & m2[None, :], other=0.0)
            e = tl.sum(w2.to(tl.float32) * x2[None, :], 1).to(w2_ptr.dtype.element_ty).to(tl.float32)
        else:
            e = tl.load(e_ptr + row * se + on, mask=mn, other=0.0).to(tl.float32)
        if EPI == 1:
            y = _sigmoid(e).to(y_ptr.dtype.element_ty).to(tl.float32) * y
        else:
            y = e + _sigmoid(tl.load(l_ptr + on, mask=mn, other=0.0).to(tl.float32)) * (y - e)
    tl.store(y_ptr + row * N + on, y.to(y_ptr.dtype.element_ty), mask=mn)


def _conv_launch(conv):
    """(runtime args, constexprs) of the conv epilogue: conv = (state, weight, bias, activation, offset) or None."""
    if conv is None:
        return (None, None, None, 0, 0, 0), {"CONV": False, "CONV_B": False, "CONV_ACT": False, "BJ": 1}
    state, weight, bias, act, offset = conv
    if not state.is_contiguous():
        raise ValueError("conv_state must be contiguous [B, C, K-1] (it is updated in place)")
    _, c, km1 = state.shape
    return ((state, weight.contiguous(), None if bias is None else bias.contiguous(), offset, c, km1),
            {"CONV": True, "CONV_B": bias is not None, "CONV_ACT": bool(act),
             "BJ": triton.next_power_of_2(max(km1, 1))})


def _gemv(pro, x, r, nw, nb, eps, layer, weight, bias, epi=0, e=None, logit=None, w2=None, conv=None):
    b, k = x.shape
    n = weight.shape[0]
    weight = weight.contiguous()
    # as F.linear (autocast: in W's dtype); with an epilogue in e's dtype (W2's when e is W2's input)
    out_dtype = weight.dtype if e is None else (e.dtype if w2 is None else w2.dtype)
    y = torch.empty(b, n, device=x.device, dtype=out_dtype)
    h = torch.empty(b, k, device=x.device, dtype=x.dtype) if (pro == 1 and r is not None) else x
    bd = triton.next_power_of_2(k)
    k2 = 0 if w2 is None else w2.shape[1]
    bn = max(1, min(16, 4096 // max(bd, triton.next_power_of_2(k2) if k2 else 1)))
    (cs, cw, cb, c0, cc, km1), conv_const = _conv_launch(conv)
    _gemv_kernel[(triton.cdiv(n, bn), b)](
        x, x if r is None else r, x if nw is None else nw.contiguous(), x if nb is None else nb.contiguous(),
        weight, x if bias is None else bias.contiguous(), h, y, x if e is None else e,
        x if logit is None else logit.contiguous(), x if w2 is None else w2.contiguous(),
        x if cs is None else cs, x if cw is None else cw, x if cb is None else cb, x.stride(0),
        0 if r is None else r.stride(0), 0 if e is None else e.stride(0), n, k, k2, eps, c0, cc, km1, PRO=pro,
        HAS_R=r is not None, HAS_NW=nw is not None, HAS_NB=nb is not None, LAYER=layer, HAS_WB=bias is not None,
        BN=bn, BD=bd, EPI=epi, BD2=triton.next_power_of_2(k2) if k2 else 0, **conv_const, num_warps=4)
    return h, y


def norm_linear(x, r, norm_weight, norm_bias, eps, layer, weight, bias, blend=None, conv=None):
    if blend is None:
        return _gemv(1, x, r, norm_weight, norm_bias, eps, layer, weight, bias, conv=conv)
    other, logit = blend
    x2, w2 = (other, None) if isinstance(other, torch.Tensor) else other
    return _gemv(1, x, r, norm_weight, norm_bias, eps, layer, weight, bias, epi=2, e=x2, logit=logit, w2=w2)


def silu_mul_linear(a, b, weight, bias, act="silu", gate=None):
    return _gemv(2 if act == "silu" else 3, a, b, None, None, 0.0, False, weight, bias,
                 epi=0 if gate is None else 1, e=gate)[1]


@triton.jit
def _shift_gemv_kernel(x_ptr, r_ptr, nw_ptr, nb_ptr, p_ptr, mix_ptr, a_ptr, lw_ptr, w_ptr, h_ptr, xn_ptr, y_ptr,
                       cs_ptr, cw_ptr, cb_ptr, sx, sr, sp, sa, N, K, R, eps, b1, b2, b3, b4, tanh_mask, c0, CC, KM1,
                       NORM: tl.constexpr, HAS_R: tl.constexpr, HAS_NW: tl.constexpr, HAS_NB: tl.constexpr,
                       LAYER: tl.constexpr, LORA: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr,
                       BR: tl.constexpr, CONV: tl.constexpr, CONV_B: tl.constexpr, CONV_ACT: tl.constexpr,
                       BJ: tl.constexpr):
    """RWKV's token shift and the projections after it (definition: kernels.decode_fusion.shift_linear).
    Every program makes the input row xn (NORM: the add + norm of `_add_norm_kernel`; program 0 stores
    h and xn), its group f's mix m_f (LORA: + lora_f B_f, R terms in BR chunks) and z = lerp(xn, prev,
    m_f), then its BN rows of W (all in group f: the host picks BN dividing every group). b1..b4: the
    groups' row ends. CONV: rows c0..c0+CC-1 through the short conv step, as `_gemv_kernel`'s."""
    pn = tl.program_id(0)
    row = tl.program_id(1)
    ok = tl.arange(0, BD)
    mk = ok < K
    x = tl.load(x_ptr + row * sx + ok, mask=mk, other=0.0)
    first = mk & ((ok * 0 + pn) == 0)
    if NORM:
        if HAS_R:
            r = tl.load(r_ptr + row * sr + ok, mask=mk, other=0.0)
            h = (x.to(tl.float32) + r.to(tl.float32)).to(x_ptr.dtype.element_ty)
            tl.store(h_ptr + row * K + ok, h, mask=first)
            z = h.to(tl.float32)
        else:
            z = x.to(tl.float32)
        z = _normed_row(z, ok, mk, nw_ptr, nb_ptr, K, eps, HAS_NW, HAS_NB, LAYER).to(x_ptr.dtype.element_ty)
        tl.store(xn_ptr + row * K + ok, z, mask=first)
        z = z.to(tl.float32)
    else:
        z = x.to(tl.float32)
    n0 = pn * BN
    f = (n0 >= b1).to(tl.int32) + (n0 >= b2).to(tl.int32) + (n0 >= b3).to(tl.int32) + (n0 >= b4).to(tl.int32)
    m = tl.load(mix_ptr + f * K + ok, mask=mk, other=0.0).to(tl.float32)
    if LORA:
        for r0 in range(0, R, BR):
            orr = r0 + tl.arange(0, BR)
            mr = orr < R
            a = tl.load(a_ptr + row * sa + f * R + orr, mask=mr, other=0.0).to(tl.float32)
            lw = tl.load(lw_ptr + (f * R + orr)[:, None] * K + ok[None, :], mask=mr[:, None] & mk[None, :],
                         other=0.0).to(tl.float32)
            m += tl.sum(a[:, None] * lw, 0)
    m = m.to(x_ptr.dtype.element_ty).to(tl.float32)  # the mix in x's dtype, as the unfused lerp takes it
    prev = tl.load(p_ptr + row * sp + ok, mask=mk, other=0.0).to(x_ptr.dtype.element_ty).to(tl.float32)
    z = (z + m * (prev - z)).to(x_ptr.dtype.element_ty)  # lerp(xn, prev, m) in x's dtype
    z = z.to(w_ptr.dtype.element_ty).to(tl.float32)  # rounded as the matmul's input
    on = n0 + tl.arange(0, BN)
    mn = on < N
    w = tl.load(w_ptr + on[:, None] * K + ok[None, :], mask=mn[:, None] & mk[None, :], other=0.0)
    y = tl.sum(w.to(tl.float32) * z[None, :], 1)
    y = tl.where(((tanh_mask >> f) & 1) == 1, _tanh(y.to(y_ptr.dtype.element_ty).to(tl.float32)), y)
    if CONV:
        y = _conv_epilogue(y.to(y_ptr.dtype.element_ty).to(tl.float32), on, mn, row, cs_ptr, cw_ptr, cb_ptr, c0, CC,
                           KM1, CONV_B, CONV_ACT, BJ)
    tl.store(y_ptr + row * N + on, y.to(y_ptr.dtype.element_ty), mask=mn)


def shift_linear(x, r, norm, prev, mix, weight, sizes, lora, lora_weight, tanh_groups, conv=None):
    b, k = x.shape
    n = weight.shape[0]
    weight = weight.contiguous()
    y = torch.empty(b, n, device=x.device, dtype=weight.dtype)
    h = torch.empty(b, k, device=x.device, dtype=x.dtype) if r is not None else x
    xn = torch.empty(b, k, device=x.device, dtype=x.dtype) if norm is not None else x
    nw, nb, eps, layer = norm if norm is not None else (None, None, 0.0, False)
    bd = triton.next_power_of_2(k)
    bn = max(1, min(16, 16384 // bd))
    while any(size % bn for size in sizes):  # every program's rows in one group
        bn //= 2
    ends = list(itertools.accumulate(sizes))[:-1]
    ends += [n] * (4 - len(ends))
    rank = 0 if lora is None else lora_weight.shape[1]
    (cs, cw, cb, c0, cc, km1), conv_const = _conv_launch(conv)
    _shift_gemv_kernel[(n // bn, b)](
        x, x if r is None else r, x if nw is None else nw.contiguous(), x if nb is None else nb.contiguous(),
        prev, mix.contiguous(), x if lora is None else lora, x if lora is None else lora_weight.contiguous(),
        weight, h, xn, y, x if cs is None else cs, x if cw is None else cw, x if cb is None else cb, x.stride(0),
        0 if r is None else r.stride(0), prev.stride(0), 0 if lora is None else lora.stride(0), n, k, rank,
        float(eps), *ends, sum(1 << f for f in tanh_groups), c0, cc, km1,
        NORM=norm is not None, HAS_R=r is not None, HAS_NW=nw is not None, HAS_NB=nb is not None, LAYER=bool(layer),
        LORA=lora is not None, BN=bn, BD=bd, BR=8, **conv_const, num_warps=8 if bn * bd >= 8192 else 4)
    return h, xn, y
