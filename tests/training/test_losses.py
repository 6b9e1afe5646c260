"""The chunked LM-head cross-entropy against F.cross_entropy on the full logits."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from pytest_goni.losses import _chunk_loss_and_grad, chunk_tokens, linear_cross_entropy

IGNORE = -100


def case(n: int, d: int, v: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_()
    w = (torch.randn(v, d, generator=g, dtype=dtype) / d ** 0.5).requires_grad_()
    t = torch.randint(0, v, (n,), generator=g)
    t[torch.rand(n, generator=g) < 0.3] = IGNORE  # about 30% unscored rows
    return h, w, t


def reference(h, w, t, scale: float = 1.0):
    loss = F.cross_entropy(h @ w.T, t, ignore_index=IGNORE, reduction="sum")
    gh, gw = torch.autograd.grad(loss * scale, (h, w))
    return loss.detach(), gh, gw


@pytest.mark.parametrize("chunk", [1, 7, 64, None])  # 7 divides nothing; None: one chunk here
def test_float64_matches_full_logits_exactly(chunk):
    h, w, t = case(53, 16, 300, torch.float64, seed=chunk or 0)
    ref, gh, gw = reference(h, w, t, scale=0.37)
    out = linear_cross_entropy(h, w, t, ignore_index=IGNORE, chunk=chunk)
    ours_h, ours_w = torch.autograd.grad(out * 0.37, (h, w))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.detach(), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_h, gh, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(ours_w, gw, rtol=1e-12, atol=1e-13)


def test_float32_within_rounding_and_shapes_are_flattened():
    h, w, t = case(96, 32, 1000, torch.float32, seed=3)
    ref, gh, gw = reference(h, w, t)
    out = linear_cross_entropy(h.view(4, 24, 32), w, t.view(4, 24), chunk=10)
    ours_h, ours_w = torch.autograd.grad(out, (h, w))
    torch.testing.assert_close(out.detach(), ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours_h, gh, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours_w, gw, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_matches_an_autocast_head_then_float_softmax():
    h, w, t = case(64, 32, 500, torch.float32, seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = h @ w.T
        out = linear_cross_entropy(h, w, t, chunk=16)
    assert logits.dtype == torch.bfloat16
    ref = F.cross_entropy(logits.float(), t, ignore_index=IGNORE, reduction="sum")
    gh, gw = torch.autograd.grad(ref, (h, w))
    ours_h, ours_w = torch.autograd.grad(out, (h, w))
    assert ours_h.dtype == ours_w.dtype == torch.float32  # gradients come back in the inputs' dtype
    torch.testing.assert_close(out.detach(), ref.detach(), rtol=1e-5, atol=1e-3)
    for ours, theirs in ((ours_h, gh), (ours_w, gw)):
        assert (ours - theirs).norm() / theirs.norm() < 2e-2


def test_all_ignored_scores_zero_and_no_grad_needed_in_eval():
    h, w, t = case(10, 8, 20, torch.float32, seed=5)
    t[:] = IGNORE
    out = linear_cross_entropy(h, w, t, chunk=3)
    assert float(out.detach()) == 0.0
    with torch.no_grad():
        h2, w2, t2 = case(10, 8, 20, torch.float32, seed=6)
        ref = F.cross_entropy(h2 @ w2.T, t2, ignore_index=IGNORE, reduction="sum")
        torch.testing.assert_close(linear_cross_entropy(h2, w2, t2, chunk=4), ref)


def test_a_tied_weight_accumulates_both_gradients():
    h, w, t = case(20, 8, 30, torch.float64, seed=7)
    emb_ids = torch.randint(0, 30, (5,))
    ref = F.cross_entropy(h @ w.T, t, ignore_index=IGNORE, reduction="sum") + w[emb_ids].sum()
    (gw,) = torch.autograd.grad(ref, (w,))
    ours = linear_cross_entropy(h, w, t, chunk=6) + w[emb_ids].sum()
    (ow,) = torch.autograd.grad(ours, (w,))
    torch.testing.assert_close(ow, gw, rtol=1e-12, atol=1e-13)


def test_chunk_size_bounds_the_logits():
    assert chunk_tokens(50257, 16 * 1024) * 50257 <= 1 << 27
    assert chunk_tokens(50257, 16 * 1024) % 64 == 0
    assert chunk_tokens(64, 100) == 100  # a small vocab: everything in one chunk
    with pytest.raises(ValueError, match="targets"):
        linear_cross_entropy(torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])  # the interpreter's bf16 is unreliable
def test_triton_rows_kernel_matches_the_torch_chunk(dtype):
    triton = pytest.importorskip("triton")  # noqa: F841
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1")
    from pytest_goni.kernels.triton.cross_entropy import ce_rows_

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(9)
    logits = (torch.randn(6, 300, generator=g) * 3).to(dev, dtype)  # 300: three 128-blocks, the last short
    t = torch.randint(0, 300, (6,), generator=g).to(dev)
    t[2] = IGNORE
    ref_loss, ref_grad = _chunk_loss_and_grad(logits.clone(), t, IGNORE, dtype)
    rows = ce_rows_(logits, t, IGNORE, write_grad=False, block=128)
    assert rows[2] == 0
    torch.testing.assert_close(rows.sum(), ref_loss.float(), rtol=1e-5, atol=1e-4)
    ce_rows_(logits, t, IGNORE, write_grad=True, block=128)  # logits now hold the gradient
    torch.testing.assert_close(logits.float(), ref_grad.float(), rtol=1e-3, atol=1e-3)
    assert float(logits[2].abs().max()) == 0.0


@pytest.mark.gpu
def test_fused_chunk_on_cuda_matches_torch():
    h, w, t = (x.cuda() for x in case(4096, 128, 50257, torch.float32, seed=8))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager = linear_cross_entropy(h, w, t, fused=False)
        fused = linear_cross_entropy(h, w, t)  # the default on CUDA
    ge = torch.autograd.grad(eager, (h, w))
    gf = torch.autograd.grad(fused, (h, w))
    torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-2)
    for a, b in zip(gf, ge):
        assert (a - b).norm() / b.norm() < 1e-2
