"""Triton kernel for the intra-chunk pairwise term of the vector-decay operators.

A[i, j] = sum_d x_id y_jd exp(bx_id - by_jd) for j <= i (j < i when STRICT), per chunk of C
tokens, where by is the log-decay summed from the chunk start and bx is either the same (GLA) or
the sum before token i (RWKV-6 queries). Computed in sub-blocks of 16 rows so no exponent is
positive: an off-diagonal block pair (I > J) is a matmul of x_I exp(bx_I - r) and
y_J exp(r - by_J) with r the decay at the last row of block J (both factors <= 1); a diagonal
block is one matmul factorized at its start when its decay sum stays within DIAGONAL_LIMIT, else
it is summed column by column with the exact difference. An optional bonus u [H, Dk] writes
A[i, i] = sum_d x_id u_d y_id (RWKV-6's current-token term).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .common import dot_precision

SUB = 16


@triton.jit
def _pairwise_kernel(x_ptr, y_ptr, g_ptr, u_ptr, a_ptr, T, TP, H, DK,
                     C: tl.constexpr, BK: tl.constexpr, SUB: tl.constexpr,
                     STRICT: tl.constexpr, BONUS: tl.constexpr, SHIFT_X: tl.constexpr, PREC: tl.constexpr,
                     LIMIT: tl.constexpr):
    """One 16-row block of a chunk's A. The log-decay sums from the chunk start are taken here from
    the raw g, sub-block by sub-block (by = prefix + cumsum; bx = by, or by - g with SHIFT_X)."""
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    NS: tl.constexpr = C // SUB
    n = pid // NS
    ib = pid % NS
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    os_ = tl.arange(0, SUB)
    mk = ok < DK
    ti = n * C + ib * SUB + os_
    mi = ti < T
    mik = mi[:, None] & mk[None, :]
    rows_i = ((b * T + ti) * H + h)[:, None] * DK + ok[None, :]
    pre = tl.zeros([BK], dtype=tl.float32)
    for jb in range(0, ib):
        tj = n * C + jb * SUB + os_
        gj = tl.load(g_ptr + ((b * T + tj) * H + h)[:, None] * DK + ok[None, :],
                     mask=(tj < T)[:, None] & mk[None, :], other=0.0).to(tl.float32)
        pre += tl.sum(gj, 0)
    gi = tl.load(g_ptr + rows_i, mask=mik, other=0.0).to(tl.float32)
    lower = (os_[:, None] >= os_[None, :]).to(tl.float32)  # cumsum over rows as a dot (a row scan is slow)
    bi = pre[None, :] + tl.dot(lower, gi, input_precision=PREC)
    if SHIFT_X:
        bx = bi - gi
    else:
        bx = bi
    x = tl.load(x_ptr + rows_i, mask=mik, other=0.0).to(tl.float32)
    a_rows = a_ptr + (bh * TP + ti)[:, None] * C
    pj = tl.zeros([BK], dtype=tl.float32)
    for jb in range(0, ib):
        tj = n * C + jb * SUB + os_
        mjk = (tj < T)[:, None] & mk[None, :]
        rows_j = ((b * T + tj) * H + h)[:, None] * DK + ok[None, :]
        gj = tl.load(g_ptr + rows_j, mask=mjk, other=0.0).to(tl.float32)
        by = pj[None, :] + tl.dot(lower, gj, input_precision=PREC)
        r = pj + tl.sum(gj, 0)
        pj = r
        y = tl.load(y_ptr + rows_j, mask=mjk, other=0.0).to(tl.float32)
        xs = x * tl.exp(bx - r[None, :])
        ys = y * tl.exp(r[None, :] - by)
        tl.store(a_rows + jb * SUB + os_[None, :], tl.dot(xs, tl.trans(ys)))
    if STRICT:
        keep = os_[:, None] > os_[None, :]
    else:
        keep = os_[:, None] >= os_[None, :]
    y_i = tl.load(y_ptr + rows_i, mask=mik, other=0.0).to(tl.float32)
    # The diagonal block as one matmul, factorized at the block's start: x exp(bx - pre) <= |x| and
    # y exp(pre - by) <= |y| exp(D), D the block's largest decay sum. Safe while D <= LIMIT; a
    # stronger decay takes the exact column-by-column path.
    span = tl.max(tl.max(pre[None, :] - bi, 1), 0)
    if span <= LIMIT:
        xs = x * tl.exp(bx - pre[None, :])
        ys = y_i * tl.exp(pre[None, :] - bi)
        diag = tl.where(keep, tl.dot(xs, tl.trans(ys)), 0.0)
    else:
        diag = tl.zeros([SUB, SUB], dtype=tl.float32)
        byj = pre
        for j in range(0, SUB):  # rows read one by one: no cross-thread reduction per column
            tj = n * C + ib * SUB + j
            mj = mk & ((ok * 0 + tj) < T)  # vector mask: the interpreter rejects vector & scalar
            rj = ((b * T + tj) * H + h) * DK + ok
            byj += tl.load(g_ptr + rj, mask=mj, other=0.0).to(tl.float32)
            yj = tl.load(y_ptr + rj, mask=mj, other=0.0).to(tl.float32)
            if STRICT:
                keep_j = os_ > j
            else:
                keep_j = os_ >= j
            diff = tl.where(keep_j[:, None] & mk[None, :], bx - byj[None, :], float("-inf"))
            col = tl.sum(x * yj[None, :] * tl.exp(diff), 1)
            diag = tl.where(os_[None, :] == j, col[:, None], diag)
    if BONUS:
        u = tl.load(u_ptr + h * DK + ok, mask=mk, other=0.0).to(tl.float32)
        d = tl.sum(x * u[None, :] * y_i, 1)
        diag = tl.where(os_[:, None] == os_[None, :], d[:, None], diag)
    tl.store(a_rows + ib * SUB + os_[None, :], diag)
    for jb in range(ib + 1, NS):
        tl.store(a_rows + jb * SUB + os_[None, :], tl.zeros([SUB, SUB], dtype=tl.float32))


DIAGONAL_LIMIT = 30.0  # largest decay sum in a 16-row block for the one-matmul diagonal (e^30 ~ 1e13)
# One warp per 16-row block: on the H100 0.42 ms at 32k (GLA) vs 0.45 with 2 warps and 0.78 with 4
# (benchmarks/results/kernels-2026-11-23-h100-session2-gla.jsonl), though ptxas reports 0.8-2.2 KB of spills.
PAIRWISE_WARPS = 1


def pairwise(x, y, g, chunk, strict, u=None, shift_x=False, num_warps=None):
    """A [B, H, T', C] float32 (T' = T padded to chunks): row t holds chunk-local A[t, :].

    g: the raw log-decay [B, T, H, Dk]; shift_x: the rows' decay excludes their own step (RWKV-6).
    """
    b, t, h, dk = x.shape
    tp = triton.cdiv(t, chunk) * chunk
    a = torch.empty(b, h, tp, chunk, device=x.device, dtype=torch.float32)
    bk = max(16, triton.next_power_of_2(dk))
    _pairwise_kernel[(tp // SUB, b * h)](
        x.contiguous(), y.contiguous(), g.contiguous(), u.contiguous() if u is not None else x, a, t, tp, h, dk,
        C=chunk, BK=bk, SUB=SUB, STRICT=strict, BONUS=u is not None, SHIFT_X=shift_x,
        PREC=dot_precision(g.dtype), LIMIT=DIAGONAL_LIMIT,
        num_warps=num_warps or int(os.environ.get("GONI_PAIRWISE_WARPS", PAIRWISE_WARPS)),
    )
    return a
