"""The chunked LM-head cross-entropy against F.cross_entropy on the full logits."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from pytest_goni.losses import (
    _chunk_loss_and_grad,
    chunk_tokens,
    compilable_linear_cross_entropy,
    linear_cross_entropy,
)

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


@pytest.mark.parametrize("v, pad", [(300, 64), (203, 8), (256, 64)])  # 256: already a multiple
def test_padded_vocabulary_gives_the_same_loss_and_gradients(v, pad):
    """pad_vocab adds zero weight rows so the head matmuls get aligned widths; the padded logits
    (all 0) must not reach the softmax, nor the gradients."""
    from pytest_goni.losses import padded

    assert padded(v, pad) % pad == 0 and 0 <= padded(v, pad) - v < pad
    h, w, t = case(53, 16, v, torch.float64, seed=v)
    ref, gh, gw = reference(h, w, t, scale=0.37)
    out = linear_cross_entropy(h, w, t, ignore_index=IGNORE, chunk=7, pad_vocab=pad)
    ours_h, ours_w = torch.autograd.grad(out * 0.37, (h, w))
    assert ours_w.shape == w.shape
    torch.testing.assert_close(out.detach(), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_h, gh, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(ours_w, gw, rtol=1e-12, atol=1e-13)


def test_padded_vocabulary_under_bf16_autocast_matches_unpadded():
    h, w, t = case(64, 32, 500, torch.float32, seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = linear_cross_entropy(h, w, t, chunk=16, pad_vocab=0)
        pad = linear_cross_entropy(h, w, t, chunk=16, pad_vocab=64)
    g_plain = torch.autograd.grad(plain, (h, w))
    g_pad = torch.autograd.grad(pad, (h, w))
    torch.testing.assert_close(pad, plain, rtol=1e-6, atol=1e-4)
    for a, b in zip(g_pad, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_padded_vocabulary_through_the_triton_rows_kernel():
    """The kernel gets the real vocabulary as a strided view of the padded logits (rows of stride
    V_padded) and writes its gradient in place there."""
    pytest.importorskip("triton")
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    h, w, t = (x.to(dev).detach().requires_grad_(x.requires_grad) for x in case(40, 16, 300, torch.float32, seed=6))
    plain = linear_cross_entropy(h, w, t, chunk=16, fused=False, pad_vocab=0)
    fused = linear_cross_entropy(h, w, t, chunk=16, fused=True, pad_vocab=64)
    g_plain = torch.autograd.grad(plain, (h, w))
    g_fused = torch.autograd.grad(fused, (h, w))
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-4)
    for a, b in zip(g_fused, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chunk, pad", [(7, 0), (None, 0), (7, 64), (16, 8)])
def test_compilable_form_matches_full_logits_in_float64(chunk, pad):
    """The torch-only form ``compile_loss`` traces: same value and gradients, chunks not dividing
    the rows, padded vocabularies masked out of the softmax, unscored rows kept but scored 0."""
    h, w, t = case(53, 16, 300, torch.float64, seed=11 + (chunk or 0))
    ref, gh, gw = reference(h, w, t, scale=0.37)
    out = compilable_linear_cross_entropy(h, w, t, ignore_index=IGNORE, chunk=chunk, pad_vocab=pad)
    ours_h, ours_w = torch.autograd.grad(out * 0.37, (h, w))
    assert out.dtype == torch.float64 and ours_w.shape == w.shape
    torch.testing.assert_close(out.detach(), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_h, gh, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(ours_w, gw, rtol=1e-12, atol=1e-13)
    with torch.no_grad():  # evaluation: the loss alone
        torch.testing.assert_close(compilable_linear_cross_entropy(h, w, t, chunk=chunk), ref)


def test_compilable_form_under_bf16_autocast_matches_the_default_loss():
    h, w, t = case(64, 32, 500, torch.float32, seed=12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = compilable_linear_cross_entropy(h.view(4, 16, 32), w, t.view(4, 16), chunk=16)
        theirs = linear_cross_entropy(h, w, t, chunk=16)
    g_ours = torch.autograd.grad(ours, (h, w))
    g_theirs = torch.autograd.grad(theirs, (h, w))
    assert g_ours[0].dtype == g_ours[1].dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-3)
    for a, b in zip(g_ours, g_theirs):
        assert (a - b).norm() / b.norm() < 1e-2


class _MatmulDtypes(TorchDispatchMode):
    """Records (phase, operand dtypes) of every matmul dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.phase, self.seen = "forward", []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm):
            self.seen.append((self.phase, tuple(a.dtype for a in args if isinstance(a, torch.Tensor))))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("form", [linear_cross_entropy, compilable_linear_cross_entropy])
def test_under_bf16_autocast_every_head_matmul_runs_in_bf16(form):
    """The eager loss's three matmuls per chunk (logits, d/dh, d/dW) take bf16 operands under
    autocast, as the compilable form's do; only d/dW's sum over chunks is float32, and the backward
    runs no matmul (it scales the stored gradients). Checked because a reading of the H200 profile
    (2026-12-01) had d/dW as a float32 GEMM: it is not (benchmarks/README.md, Training)."""
    h, w, t = case(64, 32, 500, torch.float32, seed=14)
    t[t == IGNORE] = 0  # every row scored: the CPU's eager form would leave unscored rows out
    rec = _MatmulDtypes()
    with rec:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = form(h, w, t, chunk=16)
        rec.phase = "backward"
        out.backward()
    assert rec.seen == [("forward", (torch.bfloat16, torch.bfloat16))] * 3 * 4  # 3 per chunk, 4 chunks
    assert h.grad.dtype == w.grad.dtype == torch.float32


@pytest.mark.slow  # one Inductor compilation on the CPU: ~10 s cold (C++ build), ~2 s from its cache
def test_compiled_form_allocates_no_float32_logits_and_keeps_one_chunk_alive():
    """Inductor's generated code for forward+backward under bf16 autocast: no float32 buffer with
    a vocabulary-sized row of logits (the softmax stays inside the fused kernels), bf16 logits of
    one chunk at a time, and the gradients equal the eager form's."""
    from torch._inductor.utils import run_and_get_code

    n, d, v, chunk = 96, 32, 1000, 32
    h, w, t = case(n, d, v, torch.float32, seed=13)

    def step(fn):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(h, w, t)
        return (out.detach(), *torch.autograd.grad(out, (h, w)))

    def loss(h, w, t):
        return compilable_linear_cross_entropy(h, w, t, ignore_index=IGNORE, chunk=chunk)

    torch._dynamo.reset()
    compiled, codes = run_and_get_code(step, torch.compile(loss))
    eager = step(loss)
    torch._dynamo.reset()
    allocs = [line.strip() for code in codes for line in code.splitlines() if "empty_strided" in line]
    logits = [a for a in allocs if f"({chunk}, {v})" in a or f"({n}, {v})" in a]
    assert len(codes) == 2  # forward and backward
    assert not [a for a in allocs if "float32" in a and (f"({chunk}, {v})" in a or f"({n}, {v})" in a)], allocs
    assert len(logits) == 1 and "bfloat16" in logits[0], logits  # one chunk buffer, reused chunk after chunk
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-5, atol=1e-3)
    for a, b in zip(compiled[1:], eager[1:]):
        assert (a - b).norm() / b.norm() < 1e-2


@pytest.mark.gpu
def test_compiled_form_on_cuda_matches_the_fused_loss():
    """What ``compile_loss`` runs on the GPU (Inductor's kernels, bf16 autocast, GPT-2's vocabulary,
    padded or not) against the default loss (the Triton rows kernel)."""
    h, w, t = (x.cuda() for x in case(4096, 128, 50257, torch.float32, seed=14))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fused = linear_cross_entropy(h, w, t)
    g_fused = torch.autograd.grad(fused, (h, w))
    for pad in (0, 64):
        fn = torch.compile(lambda h, w, t, pad=pad: compilable_linear_cross_entropy(h, w, t, pad_vocab=pad))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            ours = fn(h, w, t)
        torch.testing.assert_close(ours, fused, rtol=1e-4, atol=1e-2)
        for a, b in zip(torch.autograd.grad(ours, (h, w)), g_fused):
            assert (a - b).norm() / b.norm() < 1e-2
    torch._dynamo.reset()


def test_the_head_is_padded_to_64_rows_on_cuda_by_default_and_not_on_the_cpu():
    from pytest_goni import losses

    class CudaHead:  # the rule reads only where the head lives
        is_cuda = True

    cpu_head = torch.zeros(50257, 8)
    assert losses.default_pad(CudaHead(), None) == losses.DEFAULT_PAD_VOCAB == 64
    assert losses.padded(50257, losses.default_pad(CudaHead(), None)) == 50304
    assert losses.default_pad(cpu_head, None) == 0
    assert losses.default_pad(cpu_head, 64) == 64 and losses.default_pad(CudaHead(), 0) == 0
