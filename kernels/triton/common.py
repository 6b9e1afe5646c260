"""Helpers shared by the Triton chunked forwards.

In-kernel: a chunk's log-decay sums and its decayed causal scores. Host: the dot precision for an
input dtype, the key / value tiles and the optional initial / final state.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

#: `unit_lower_inverse`'s masks on its products' rows (default) or, GONI_WY_MASK_RESULT=0, on A (the form measured
#: on the H200 until 2026-12-01: the same values, more registers). Read at each launch (the launchers pass it).
WY_MASK_RESULT = os.environ.get("GONI_WY_MASK_RESULT", "1") != "0"


@triton.jit
def chunk_log_decay(g_ptr, row, mt, HAS_G: tl.constexpr, C: tl.constexpr):
    """(b, b_C): the chunk-local cumsum of a scalar g ([B, T, H]; `row` = its offsets for the
    chunk's tokens, `mt` their mask), and its value at the chunk's end. No g: no decay."""
    if HAS_G:
        g = tl.load(g_ptr + row, mask=mt, other=0.0).to(tl.float32)
    else:
        g = tl.zeros([C], dtype=tl.float32)
    bc = tl.cumsum(g, 0)
    return bc, tl.sum(g, 0)


@triton.jit
def decayed_scores(q, k, bc, causal, PRECISION: tl.constexpr):
    """(Q K^T * exp(b_i - b_j))_{j<=i} of one chunk (scalar decay b), float32: every exponent <= 0."""
    att = tl.dot(q, tl.trans(k), input_precision=PRECISION)
    return att * tl.exp(tl.where(causal, bc[:, None] - bc[None, :], float("-inf")))


@triton.jit
def unit_lower_inverse(a, C: tl.constexpr, PRECISION: tl.constexpr, MASK_RESULT: tl.constexpr):
    """(I + A)^-1 of a strictly lower-triangular [C, C] float32 A (C a multiple of 16): forward substitution.

    Rows one at a time inside each 16-row diagonal block (all blocks at once: one masked dot per row
    position), then block rows one at a time: X_r = D_r (E_r - A_{r,<r} X_{<r}). Every intermediate is
    a block of the inverse, so the error stays that of a triangular solve. Not the Neumann product
    (I - A)(I + A^2)(I + A^4)...: its partial sums grow like (1 + |A|)^C and cancel at the end, which
    with correlated keys and no decay (the plain delta rule: A_ij = beta_i k_i.k_j, mean cosine 0.5,
    beta 0.95) gave U 1e3x too large in exact float32 and 1e16-inf outputs with bf16 / tf32 dots (the
    suspected cause of deltanet's NaN in bf16 training at T 4096 on the H200). Cost: 15 + 2 (C/16 - 1)
    [C, C] dots (21 at C 64) against the product's 2 (log2 C - 1) (10); ptxas (sm_90, Triton 3.9) on the
    forward WY kernel at C 64, bf16: 255 registers + 72 B spill, against 231 and none (C 32: no spill).

    MASK_RESULT: each step masks its product's rows (row r of A_diag X is row r of (A masked to row r) X:
    the same values) instead of A. Masking A gave the compiler one masked copy of A per unrolled step, all
    independent of X, and it computed them early and kept them live: ptxas (sm_90, Triton 3.6) on the
    forward WY kernel at C 64: bf16 255 registers + 80-112 B spill -> 234 and none; float32 inputs (tf32x3,
    the (gated) DeltaNet layer's q, k under CUDA autocast) 2,920-2,936 B -> 1,984 B. In the WY backward
    at C 32, float32, it spills more (684 against 288 B), so that launch keeps the masks on A there.
    """
    oc = tl.arange(0, C)
    blk = oc // 16
    x = tl.where(oc[:, None] == oc[None, :], 1.0, 0.0)
    if MASK_RESULT:
        # two masked copies of A live through the loops (block diagonal, blocks below), not one per step
        a_diag = tl.where(blk[:, None] == blk[None, :], a, 0.0)
        a_below = tl.where(blk[:, None] > blk[None, :], a, 0.0)
        for r in tl.static_range(1, 16):
            x -= tl.where(((oc % 16) == r)[:, None], tl.dot(a_diag, x, input_precision=PRECISION), 0.0)
        for r in tl.static_range(1, C // 16):
            y = tl.where((blk == r)[:, None], tl.dot(a_below, x, input_precision=PRECISION), 0.0)
            x -= tl.dot(x, y, input_precision=PRECISION)
        return x
    for r in tl.static_range(1, 16):  # row r of every block from the rows above it (final already)
        rows = ((oc % 16) == r)[:, None] & (blk[:, None] == blk[None, :])
        x -= tl.dot(tl.where(rows, a, 0.0), x, input_precision=PRECISION)
    for r in tl.static_range(1, C // 16):
        # y: rows of block r only; x @ y = D_r y_r (x's columns of block r: D_r in block r's rows,
        # zero in every other row, as X is lower triangular and later blocks are still D_s)
        rows = (blk == r)[:, None] & (blk[None, :] < r)
        x -= tl.dot(x, tl.dot(tl.where(rows, a, 0.0), x, input_precision=PRECISION), input_precision=PRECISION)
    return x


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot input precision for float32 operands built from inputs of `dtype`.

    tf32 holds bf16/fp16 values exactly (float32 sums); float32 inputs keep float32 accuracy (tf32x3).
    """
    return "tf32x3" if dtype == torch.float32 else "tf32"


def dot_width(d: int, num_warps: int) -> int:
    """Power-of-two tile width covering d for the N side of a [C, width] float32 tl.dot in a kernel of
    `num_warps` warps: at least 16 per warp group. Triton (3.6 and 3.9) splits a 64-row dot's N over
    the warp groups, and a [64, 16] float32 result over two of them becomes a tf32 wgmma with N = 8,
    which reads past its shared-memory operand on sm_90 (triton-lang/triton#10629): the H200's
    "illegal memory access" in the WY kernel at head size 16 (2026-12-01). The extra columns are
    masked (zeros in, nothing stored)."""
    return max(16 * max(1, num_warps // 4), triton.next_power_of_2(d))


def tiles(dk: int, dv: int, bv: int | None, cap: int) -> tuple[int, int]:
    """(BK covering all of Dk, value block BV): `bv` as given, or the value width capped at `cap`."""
    bk = max(16, triton.next_power_of_2(dk))
    if bv is None:
        bv = max(16, min(cap, triton.next_power_of_2(dv)))
    if bv < 16 or bv & (bv - 1):
        raise ValueError(f"bv must be a power of two >= 16, got {bv}")
    return bk, bv


def state_in(initial_state, ref: torch.Tensor):
    """(pointer tensor, has-state flag) for an optional [B, H, Dk, Dv] initial state."""
    if initial_state is None:
        return ref, False
    return initial_state.float().contiguous(), True


def state_out(output_final_state: bool, b: int, h: int, dk: int, dv: int, ref: torch.Tensor):
    """A float32 [B, H, Dk, Dv] buffer for the final state, or None when it is not asked for."""
    if output_final_state:
        return torch.empty(b, h, dk, dv, device=ref.device, dtype=torch.float32)
    return None


def chunk_reverse_cumsum(x: torch.Tensor, chunk: int, boundary: torch.Tensor) -> torch.Tensor:
    """Per token t of chunk m: sum of x over t..(end of chunk m) plus boundary[:, m] (float32).

    x: [B, T, H] or [B, T, H, Dk]; boundary: [B, NT, H] or [B, NT, H, Dk], the gradient of the log-decay
    summed over every token after chunk m, i.e. sum(S ⊙ dS) over the state that leaves chunk m (computed
    from the state and its gradient, not by summing x over the rest of T: that long sum of large
    terms of both signs cancels, and the dots' rounding in x grows with T).
    """
    b, t = x.shape[:2]
    nt = boundary.shape[1]
    pad = nt * chunk - t
    xp = torch.nn.functional.pad(x, (0, 0) * (x.dim() - 2) + (0, pad)) if pad else x
    xc = xp.reshape(b, nt, chunk, *x.shape[2:])
    out = xc.flip(2).cumsum(2).flip(2) + boundary[:, :, None]
    return out.reshape(b, nt * chunk, *x.shape[2:])[:, :t]
