"""CuPy kernels against their torch references (GPU), and their clear errors without one."""

from __future__ import annotations

import pytest
import torch
from pytest_goni.kernels.cupy import (
    CupyUnavailable,
    copy_bandwidth,
    copy_device,
    cupy_available,
    gather_embeddings,
    gather_embeddings_reference,
    validate_token_ids,
    validate_token_ids_reference,
)

needs_cupy = pytest.mark.skipif(not cupy_available(),
                                reason="needs CuPy and a CUDA device (cupy.cuda.is_available())")


@pytest.mark.skipif(cupy_available(), reason="CuPy runs here; this checks the no-GPU error")
def test_without_cupy_or_gpu_the_error_says_why():
    ids = torch.tensor([1, 2, 3])
    with pytest.raises((CupyUnavailable, ValueError)) as exc:
        validate_token_ids(ids, 10)
    assert "CUDA" in str(exc.value) or "CuPy" in str(exc.value)
    with pytest.raises(CupyUnavailable, match="CuPy"):
        copy_bandwidth(1 << 20, reps=1)


def test_references_on_cpu():
    ids = torch.tensor([[0, 5, -1], [9, 10, 3]])
    assert validate_token_ids_reference(ids, 10) == 2
    table = torch.arange(20.0).reshape(10, 2)
    good = torch.tensor([[0, 9], [3, 3]])
    assert gather_embeddings_reference(good, table).tolist() == [[[0, 1], [18, 19]], [[6, 7], [6, 7]]]


@pytest.mark.gpu
@needs_cupy
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_validate_token_ids_matches_reference(dtype):
    gen = torch.Generator(device="cuda").manual_seed(0)
    for n, vocab in [(1, 5), (1000, 50257), (3_000_001, 32000)]:
        ids = torch.randint(-100, vocab + 100, (n,), device="cuda", generator=gen).to(dtype)
        assert validate_token_ids(ids, vocab) == validate_token_ids_reference(ids, vocab)
    clean = torch.randint(0, 128, (4, 777), device="cuda", generator=gen).to(dtype)
    assert validate_token_ids(clean, 128) == 0
    assert validate_token_ids(clean, 100) == validate_token_ids_reference(clean, 100) > 0


@pytest.mark.gpu
@needs_cupy
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_gather_embeddings_matches_reference(dtype):
    gen = torch.Generator(device="cuda").manual_seed(1)
    table = torch.randn(1000, 96, device="cuda", generator=gen).to(dtype)
    ids = torch.randint(0, 1000, (3, 257), device="cuda", generator=gen)
    out = gather_embeddings(ids, table)
    assert out.shape == (3, 257, 96) and out.dtype == dtype
    assert torch.equal(out, gather_embeddings_reference(ids, table))  # a copy: bit-exact
    with pytest.raises(ValueError, match="outside"):
        gather_embeddings(torch.tensor([0, 1000], device="cuda"), table)


@pytest.mark.gpu
@needs_cupy
def test_copy_kernel_copies_every_byte_and_reports_bandwidth():
    src = torch.randint(-(2**31), 2**31 - 1, (1 << 20,), dtype=torch.int32, device="cuda")
    dst = torch.full_like(src, 7)
    copy_device(src, dst)
    torch.cuda.synchronize()
    assert torch.equal(dst, src)
    bw = copy_bandwidth(256 << 20, reps=5)
    assert len(bw) == 5
    # torch's own copy on the same buffer size: the raw kernel must be within 2x of it
    a = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    b.copy_(a)
    start.record()
    for _ in range(5):
        b.copy_(a)
    end.record()
    torch.cuda.synchronize()
    torch_bw = 2 * a.numel() * 5 / (start.elapsed_time(end) * 1e-3)
    med = sorted(bw)[2]
    assert 0.5 * torch_bw < med < 2.0 * torch_bw, (med, torch_bw)
