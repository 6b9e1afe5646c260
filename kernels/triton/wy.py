"""WY (UT) preparation of the chunked (gated) delta rule, on tensor cores.

Per chunk of C tokens, with b the chunk-local cumsum of the log-decay g (computed here from the
raw g; none for the plain delta rule) and A_ij = beta_i exp(b_i - b_j) k_i.k_j for j < i:

  X = (I + A)^-1 (`common.unit_lower_inverse`: forward substitution by masked [C, C] tl.dots),
  U = X (beta V),   W = X (beta exp(b) K).

Until 2026-12-01 X was the Neumann product (I - A)(I + A^2)...(I + A^(C/2)): without decay and with
correlated keys it cancels huge partial sums (U 1e3x off in exact float32), the suspected cause of
the plain delta rule's NaN in bf16 training at T 4096 (tests/kernels/test_triton_delta_segments.py).
U and W come back in the input dtype, layout [B, T, H, D].
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import common
from .common import chunk_log_decay, decayed_scores, dot_precision, dot_width, unit_lower_inverse


@triton.jit
def _wy_kernel(k_ptr, v_ptr, beta_ptr, g_ptr, u_ptr, w_ptr, q_ptr, att_ptr, T, H, DK, DV,
               C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
               HAS_G: tl.constexpr, PRECISION: tl.constexpr, INV_PRECISION: tl.constexpr,
               STORE_ATT: tl.constexpr, MASK_RESULT: tl.constexpr):
    n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    oc = tl.arange(0, C)
    ok = tl.arange(0, BK)
    ov = tl.arange(0, BV)
    mk = ok < DK
    mv = ov < DV
    t = n * C + oc
    mt = t < T
    row = (b * T + t) * H + h
    k = tl.load(k_ptr + row[:, None] * DK + ok[None, :], mask=mt[:, None] & mk[None, :], other=0.0)
    v = tl.load(v_ptr + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :], other=0.0)
    beta = tl.load(beta_ptr + row, mask=mt, other=0.0).to(tl.float32)
    bc, _ = chunk_log_decay(g_ptr, row, mt, HAS_G, C)
    strict = oc[:, None] > oc[None, :]
    dec = tl.exp(tl.where(strict, bc[:, None] - bc[None, :], float("-inf")))
    a = tl.dot(k, tl.trans(k), input_precision=PRECISION) * (beta[:, None] * dec)
    x = unit_lower_inverse(a, C, INV_PRECISION, MASK_RESULT)
    xd = x.to(k.dtype)
    vb = (v.to(tl.float32) * beta[:, None]).to(k.dtype)
    kb = (k.to(tl.float32) * (beta * tl.exp(bc))[:, None]).to(k.dtype)
    u = tl.dot(xd, vb, input_precision=PRECISION)
    w = tl.dot(xd, kb, input_precision=PRECISION)
    tl.store(u_ptr + row[:, None] * DV + ov[None, :], u.to(u_ptr.dtype.element_ty), mask=mt[:, None] & mv[None, :])
    tl.store(w_ptr + row[:, None] * DK + ok[None, :], w.to(w_ptr.dtype.element_ty), mask=mt[:, None] & mk[None, :])
    if STORE_ATT:  # the walk's intra-chunk scores (Q K^T * exp(b_i - b_j))_{j<=i}, [B, T, H, C]
        q = tl.load(q_ptr + row[:, None] * DK + ok[None, :], mask=mt[:, None] & mk[None, :], other=0.0)
        att = decayed_scores(q, k, bc, oc[:, None] >= oc[None, :], PRECISION)
        tl.store(att_ptr + row[:, None] * C + oc[None, :], att.to(att_ptr.dtype.element_ty), mask=mt[:, None])


PRECISIONS = ("tf32", "tf32x3", "ieee")  # tl.dot input precisions of float32 operands, Triton 3.6 and later


def wy(k: torch.Tensor, v: torch.Tensor, g: torch.Tensor | None, beta: torch.Tensor, chunk: int,
       inv_precision: str | None = None, num_warps: int = 8, q: torch.Tensor | None = None,
       u_dtype: torch.dtype | None = None):
    """(U [B, T, H, Dv], W [B, T, H, Dk], att) in k's dtype; k, v (and q) contiguous [B, T, H, D].

    inv_precision: tl.dot precision of the [C, C] inverse's float32 products ("tf32" for 16-bit
    inputs, "tf32x3" for float32 ones unless given). u_dtype: U's dtype if not k's (the backward keeps
    U in float32: u = U - W S cancels, and U's bf16 rounding became 1e-2 of dq). With q given,
    att [B, T, H, C] holds each chunk's decayed causal scores for the output walk (else att is None).
    """
    if chunk < 16 or chunk & (chunk - 1):
        raise ValueError(f"chunk must be a power of two >= 16, got {chunk}")
    if inv_precision not in (None, *PRECISIONS):
        raise ValueError(f"inv_precision must be one of {PRECISIONS}, got {inv_precision!r}")
    b, t, h, dk = k.shape
    dv = v.shape[-1]
    u = torch.empty(b, t, h, dv, device=k.device, dtype=u_dtype or k.dtype)
    w = torch.empty(b, t, h, dk, device=k.device, dtype=k.dtype)
    att = torch.empty(b, t, h, chunk, device=k.device, dtype=k.dtype) if q is not None else None
    prec = dot_precision(k.dtype)
    grid = (triton.cdiv(t, chunk), b * h)
    _wy_kernel[grid](k, v, beta.contiguous(), g.contiguous() if g is not None else beta, u, w,
                     q if q is not None else k, att if att is not None else u, t, h, dk, dv,
                     C=chunk, BK=dot_width(dk, num_warps), BV=dot_width(dv, num_warps), HAS_G=g is not None,
                     PRECISION=prec, INV_PRECISION=inv_precision or prec, STORE_ATT=q is not None,
                     MASK_RESULT=common.WY_MASK_RESULT, num_warps=num_warps)
    return u, w, att
