"""Residual add + norm, and SwiGLU's SiLU x product, one launch each (definitions:
`pytest_goni.kernels.decode_fusion`). One program per row; the row (d_model or the MLP width at
decode) fits one block, so every statistic is a single in-register reduction."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


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
def _gemv_kernel(x_ptr, r_ptr, nw_ptr, nb_ptr, w_ptr, wb_ptr, h_ptr, y_ptr, sx, sr, N, K, eps,
                 PRO: tl.constexpr, HAS_R: tl.constexpr, HAS_NW: tl.constexpr, HAS_NB: tl.constexpr,
                 LAYER: tl.constexpr, HAS_WB: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr):
    """y = W z (+ bias) for one row, z made from the whole input row by the prologue: PRO 1 the
    add + norm of `_add_norm_kernel` (program 0 stores h), PRO 2 silu(x) * r. Every program computes
    the (cheap) prologue itself and reads its BN rows of W."""
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
    else:
        a = x.to(tl.float32)
        z = a / (1.0 + tl.exp(-a)) * tl.load(r_ptr + row * sr + ok, mask=mk, other=0.0).to(tl.float32)
    z = z.to(w_ptr.dtype.element_ty).to(tl.float32)  # rounded as the matmul's input (autocast: to W's dtype)
    on = pn * BN + tl.arange(0, BN)
    mn = on < N
    w = tl.load(w_ptr + on[:, None] * K + ok[None, :], mask=mn[:, None] & mk[None, :], other=0.0)
    y = tl.sum(w.to(tl.float32) * z[None, :], 1)
    if HAS_WB:
        y = y + tl.load(wb_ptr + on, mask=mn, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * N + on, y.to(y_ptr.dtype.element_ty), mask=mn)


def _gemv(pro, x, r, nw, nb, eps, layer, weight, bias):
    b, k = x.shape
    n = weight.shape[0]
    weight = weight.contiguous()
    y = torch.empty(b, n, device=x.device, dtype=weight.dtype)  # as F.linear (autocast: in W's dtype)
    h = torch.empty(b, k, device=x.device, dtype=x.dtype) if (pro == 1 and r is not None) else x
    bd = triton.next_power_of_2(k)
    bn = max(1, min(16, 4096 // bd))
    _gemv_kernel[(triton.cdiv(n, bn), b)](
        x, x if r is None else r, x if nw is None else nw.contiguous(), x if nb is None else nb.contiguous(),
        weight, x if bias is None else bias.contiguous(), h, y, x.stride(0), 0 if r is None else r.stride(0),
        n, k, eps, PRO=pro, HAS_R=r is not None, HAS_NW=nw is not None, HAS_NB=nb is not None, LAYER=layer,
        HAS_WB=bias is not None, BN=bn, BD=bd, num_warps=4)
    return h, y


def norm_linear(x, r, norm_weight, norm_bias, eps, layer, weight, bias):
    return _gemv(1, x, r, norm_weight, norm_bias, eps, layer, weight, bias)


def silu_mul_linear(a, b, weight, bias):
    return _gemv(2, a, b, None, None, 0.0, False, weight, bias)[1]
