"""Cross-entropy of a chunk of logits and its gradient, in place: one program per row (token).

The chunked LM-head loss (``pytest_goni.losses``) hands this kernel the chunk's logits [n, V] as
the head matmul wrote them (bf16 under autocast). Pass 1 reads the row once for an online
max / sum-exp (float32) and stores ``loss = lse - x[target]`` (0 on an ignored row); pass 2 reads
it again and overwrites it with d(loss)/d(logits) = softmax - onehot (zeros on an ignored row) in
the logits' own dtype. Two reads and one write of the bf16 row: 6 bytes per logit, against about
six float32 passes in torch. Reference: ``pytest_goni.losses._chunk_loss_and_grad``.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl


@triton.jit
def _ce_rows(logits_ptr, stride, targets_ptr, loss_ptr, V, ignore_index,
             BLOCK: tl.constexpr, WRITE_GRAD: tl.constexpr):
    row = tl.program_id(0)
    base = logits_ptr + row.to(tl.int64) * stride
    target = tl.load(targets_ptr + row)
    valid = target != ignore_index
    safe = tl.where(valid, target, 0)
    m = tl.full((), float("-inf"), tl.float32)  # typed scalars: loop-carried below
    s = tl.zeros((), tl.float32)
    for start in range(0, V, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(base + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    lse = m + tl.log(s)
    picked = tl.load(base + safe).to(tl.float32)
    tl.store(loss_ptr + row, tl.where(valid, lse - picked, 0.0))
    if WRITE_GRAD:
        keep = tl.where(valid, 1.0, 0.0)
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            inside = cols < V
            x = tl.load(base + cols, mask=inside, other=0.0).to(tl.float32)
            g = tl.exp(x - lse) - tl.where(cols == safe, 1.0, 0.0)
            tl.store(base + cols, (g * keep).to(logits_ptr.dtype.element_ty), mask=inside)


def ce_rows_(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int, write_grad: bool,
             block: int = 4096) -> torch.Tensor:
    """Per-row losses [n] (float32) of ``logits`` [n, V] (rows contiguous); with ``write_grad``
    the logits are overwritten by d(sum of losses)/d(logits)."""
    n, vocab = logits.shape
    if logits.stride(1) != 1:
        raise ValueError("ce_rows_ needs logits whose rows are contiguous")
    losses = torch.empty(n, device=logits.device, dtype=torch.float32)
    blk = min(block, triton.next_power_of_2(vocab))
    with torch.cuda.device(logits.device) if logits.is_cuda else contextlib.nullcontext():
        # Triton launches on the current device: make it the logits' (a run on cuda:1 from a
        # process whose current device is cuda:0 failed with "cannot be accessed from Triton")
        _ce_rows[(n,)](logits, logits.stride(0), targets, losses, vocab, ignore_index, BLOCK=blk,
                       WRITE_GRAD=write_grad, num_warps=8 if blk >= 2048 else 4)
    return losses
