"""Causal depthwise convolution (ShortConv's parallel form) for training: Triton forward and backward.

Why: cuDNN's depthwise ``nn.Conv1d`` backward (the weight gradient above all) is a known slow path,
and deltanet, gated-deltanet, mamba2 and groundthink run one to three short convs per layer
(benchmarks/README.md, "Why the training targets are missed"). This is the same operator,
``y[t] = act(sum_j w[:, j] x[t - K + 1 + j] + bias)`` with zeros before the first token
(definition: `pytest_goni.kernels.short_conv.causal_conv_torch`), on the [B, T, C] layout the
models hold (no transposed copy), float32 accumulation, in x's dtype.

- ``_short_conv_fwd``: one program per (BT tokens, BC channels, batch row): K shifted tile loads
  (the K-1 halo tokens before the tile are re-read from L2), bias, SiLU, one store.
- ``_short_conv_bwd``: same grid. Stores nothing from the forward but its inputs (x, weight, bias):
  the pre-activation is recomputed. dx[s] = sum_i w[K-1-i] g[s+i] with g = dy * silu'(pre), so each
  program recomputes g at its tile shifted by i = 0..K-1 (K*K shifted loads of x, cache hits)
  and writes dx once. The weight and bias gradients are reductions over B*T: each program writes
  its tile's float32 sums (g * the K shifted x tiles, and g) to a [B * T-tiles, K (+1), C] buffer
  that one torch ``sum`` over dim 0 reduces: deterministic (no atomics), fixed order.

``conv_fwd`` / ``conv_bwd`` launch them (no autograd); `pytest_goni.kernels.short_conv` registers
them as torch custom ops with fake shapes and the autograd formula, so a torch.compile'd model
traces through the conv without a graph break. K <= 8 (the loops are unrolled K*K times).
"""

import torch
import triton
import triton.language as tl

Tensor = torch.Tensor

MAX_K = 8
BT, BC = 64, 64  # tokens x channels per program (default; benchmarks/train_profile.py's conv part tries others)


def _warps(bt: int, bc: int) -> int:
    return 4 if bt * bc <= 4096 else 8


@triton.jit
def _tile(C, BT: tl.constexpr, BC: tl.constexpr):
    """This program's token tile index, batch row (int64: row offsets pass 2**31), tokens, channels, channel mask."""
    pt = tl.program_id(0)
    bi = tl.program_id(2).to(tl.int64)
    ot = pt * BT + tl.arange(0, BT)
    oc = tl.program_id(1) * BC + tl.arange(0, BC)
    return pt, bi, ot, oc, oc < C


@triton.jit
def _pre(x_ptr, w_ptr, b_ptr, xb, ot, oc, mc, T, sxt,
         K: tl.constexpr, HAS_B: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr):
    """float32 [BT, BC]: the conv before its activation at tokens ``ot`` and channels ``oc``."""
    acc = tl.zeros([BT, BC], dtype=tl.float32)
    if HAS_B:
        acc += tl.load(b_ptr + oc, mask=mc, other=0.0).to(tl.float32)[None, :]
    for j in tl.static_range(K):
        ts = ot - (K - 1) + j
        m = ((ts >= 0) & (ts < T))[:, None] & mc[None, :]
        xj = tl.load(xb + ts[:, None] * sxt + oc[None, :], mask=m, other=0.0).to(tl.float32)
        wj = tl.load(w_ptr + oc * K + j, mask=mc, other=0.0).to(tl.float32)
        acc += xj * wj[None, :]
    return acc


@triton.jit
def _short_conv_fwd(x_ptr, w_ptr, b_ptr, y_ptr, T, C, sxb, sxt, syb, syt,
                K: tl.constexpr, HAS_B: tl.constexpr, ACT: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr):
    pt, bi, ot, oc, mc = _tile(C, BT, BC)
    y = _pre(x_ptr, w_ptr, b_ptr, x_ptr + bi * sxb, ot, oc, mc, T, sxt, K, HAS_B, BT, BC)
    if ACT:
        y = y / (1.0 + tl.exp(-y))
    m = (ot < T)[:, None] & mc[None, :]
    tl.store(y_ptr + bi * syb + ot[:, None] * syt + oc[None, :], y.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _short_conv_bwd(x_ptr, w_ptr, b_ptr, dy_ptr, dx_ptr, dwp_ptr, T, C, NT, sxb, sxt, sdb, sdt, sdxb, sdxt,
                K: tl.constexpr, KB: tl.constexpr, HAS_B: tl.constexpr, ACT: tl.constexpr,
                BT: tl.constexpr, BC: tl.constexpr):
    pt, bi, ot, oc, mc = _tile(C, BT, BC)
    xb = x_ptr + bi * sxb
    dwp = dwp_ptr + (bi * NT + pt) * KB * C + oc  # this program's row of partial sums
    dx = tl.zeros([BT, BC], dtype=tl.float32)
    for i in tl.static_range(K):  # output token ot + i reads x[ot] through w[K - 1 - i]
        tt = ot + i
        m = (tt < T)[:, None] & mc[None, :]
        g = tl.load(dy_ptr + bi * sdb + tt[:, None] * sdt + oc[None, :], mask=m, other=0.0).to(tl.float32)
        if ACT:
            pre = _pre(x_ptr, w_ptr, b_ptr, xb, tt, oc, mc, T, sxt, K, HAS_B, BT, BC)
            sig = 1.0 / (1.0 + tl.exp(-pre))
            g = g * sig * (1.0 + pre * (1.0 - sig))
        if i == 0:  # this tile's share of the weight and bias gradients
            for j in tl.static_range(K):
                ts = ot - (K - 1) + j
                mj = ((ts >= 0) & (ts < T))[:, None] & mc[None, :]
                xj = tl.load(xb + ts[:, None] * sxt + oc[None, :], mask=mj, other=0.0).to(tl.float32)
                tl.store(dwp + j * C, tl.sum(g * xj, 0), mask=mc)
            if HAS_B:
                tl.store(dwp + K * C, tl.sum(g, 0), mask=mc)
        w = tl.load(w_ptr + oc * K + (K - 1 - i), mask=mc, other=0.0).to(tl.float32)
        dx += g * w[None, :]
    m = (ot < T)[:, None] & mc[None, :]
    tl.store(dx_ptr + bi * sdxb + ot[:, None] * sdxt + oc[None, :], dx.to(dx_ptr.dtype.element_ty), mask=m)


def _rows(x: Tensor) -> Tensor:
    """x with a unit stride over channels (a view when it has one already: a split projection)."""
    return x if x.stride(-1) == 1 else x.contiguous()


def _blocks(t: int, c: int, block_t: int, block_c: int) -> tuple[int, int]:
    return (block_t or min(BT, max(16, triton.next_power_of_2(t))),
            block_c or min(BC, max(16, triton.next_power_of_2(c))))


def conv_fwd(x: Tensor, weight: Tensor, bias: Tensor | None, activation: bool, block_t: int = 0,
             block_c: int = 0) -> Tensor:
    """x [B, T, C], weight [C, K], bias [C] or None -> y [B, T, C] in x's dtype (no autograd)."""
    x, weight = _rows(x), weight.contiguous()
    b, t, c = x.shape
    y = torch.empty(b, t, c, device=x.device, dtype=x.dtype)
    if y.numel() == 0:
        return y
    bt, bc = _blocks(t, c, block_t, block_c)
    _short_conv_fwd[(triton.cdiv(t, bt), triton.cdiv(c, bc), b)](
        x, weight, weight if bias is None else bias.contiguous(), y, t, c, x.stride(0), x.stride(1),
        y.stride(0), y.stride(1), K=weight.shape[1], HAS_B=bias is not None, ACT=bool(activation),
        BT=bt, BC=bc, num_warps=_warps(bt, bc))
    return y


def conv_bwd(dy: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None, activation: bool, block_t: int = 0,
             block_c: int = 0) -> tuple[Tensor, Tensor, Tensor | None]:
    """(dx [B, T, C] in x's dtype, dweight [C, K] and dbias [C] in their parameters' dtypes)."""
    dy, x, weight = _rows(dy), _rows(x), weight.contiguous()
    b, t, c = x.shape
    k = weight.shape[1]
    kb = k + (bias is not None)
    dx = torch.empty(b, t, c, device=x.device, dtype=x.dtype)
    if dx.numel() == 0:
        return dx, torch.zeros_like(weight), None if bias is None else torch.zeros_like(bias)
    bt, bc = _blocks(t, c, block_t, block_c)
    nt = triton.cdiv(t, bt)
    partial = torch.empty(b * nt, kb, c, device=x.device, dtype=torch.float32)
    _short_conv_bwd[(nt, triton.cdiv(c, bc), b)](
        x, weight, weight if bias is None else bias.contiguous(), dy, dx, partial, t, c, nt,
        x.stride(0), x.stride(1), dy.stride(0), dy.stride(1), dx.stride(0), dx.stride(1),
        K=k, KB=kb, HAS_B=bias is not None, ACT=bool(activation), BT=bt, BC=bc, num_warps=_warps(bt, bc))
    sums = partial.sum(0)  # [KB, C]: the reduction over B * T, in a fixed order
    dw = sums[:k].t().to(weight.dtype).contiguous()
    return dx, dw, None if bias is None else sums[k].to(bias.dtype, copy=True)
