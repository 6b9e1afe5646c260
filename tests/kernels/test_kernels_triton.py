"""Triton kernels against the float64 references.

Without CUDA the root conftest sets TRITON_INTERPRET=1 and these run in Triton's CPU interpreter
at small shapes, fp32 and fp16 only (the interpreter's bf16 dot is wrong). Tests marked `gpu` run
on a CUDA device at model-sized shapes, bf16 included; there fp32 dots use tf32.
"""

import os

import pytest
import torch
from pytest_goni.kernels import reference
from pytest_goni.kernels.testing import (
    DISPATCH,
    OPS,
    REFERENCE,
    STEP,
    at_time,
    make_inputs,
    random_state,
    rel_err,
    slice_time,
)

from pytest_goni import kernels

pytest.importorskip("triton")

CUDA = torch.cuda.is_available()
if not CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)

DEV = "cuda" if CUDA else "cpu"
FP32_TOL = 5e-3 if CUDA else 1e-4  # tf32 dots on the GPU, exact fp32 in the interpreter
B, T, H, DK, DV = 1, 70, 2, 16, 16  # T spans two 64-token chunks, the second one short


@pytest.mark.parametrize("op", OPS)
def test_triton_fp32_matches_reference(op):
    args = make_inputs(op, B, T, H, DK, DV, device=DEV, seed=21)
    s0 = random_state(B, H, DK, DV, device=DEV)
    o, s = DISPATCH[op](**args, scale=0.3, initial_state=s0, output_final_state=True, backend="triton")
    o_ref, s_ref = REFERENCE[op](**args, scale=0.3, initial_state=s0)
    assert rel_err(o, o_ref) <= FP32_TOL
    assert rel_err(s, s_ref) <= FP32_TOL


@pytest.mark.parametrize("op", OPS)
def test_triton_fp16_matches_reference(op):
    args = make_inputs(op, B, 33, H, DK, DV, dtype=torch.float16, device=DEV, seed=22)
    o, s = DISPATCH[op](**args, output_final_state=True, backend="triton")
    assert o.dtype == torch.float16
    o_ref, s_ref = REFERENCE[op](**args)
    assert rel_err(o, o_ref) <= 2e-2
    assert rel_err(s, s_ref) <= 2e-2


@pytest.mark.parametrize("op", ("gla", "rwkv6", "rwkv7", "simple_gla", "gated_delta_rule"))
def test_triton_strong_decay_stays_finite_and_exact(op):
    args = make_inputs(op, B, T, 1, DK, DV, device=DEV, seed=23, decay_scale=30.0)
    o, s = DISPATCH[op](**args, output_final_state=True, backend="triton")
    o_ref, s_ref = REFERENCE[op](**args)
    assert rel_err(o, o_ref) <= FP32_TOL
    assert rel_err(s, s_ref) <= FP32_TOL


@pytest.mark.parametrize("op", OPS)
def test_triton_state_carry_equals_one_call(op):
    args = make_inputs(op, B, T, H, DK, DV, device=DEV, seed=24)
    o_full, s_full = DISPATCH[op](**args, output_final_state=True, backend="triton")
    o1, s1 = DISPATCH[op](**slice_time(op, args, 0, 29), output_final_state=True, backend="triton")
    o2, s2 = DISPATCH[op](**slice_time(op, args, 29, T), initial_state=s1, output_final_state=True,
                          backend="triton")
    assert rel_err(torch.cat([o1, o2], 1), o_full) <= FP32_TOL
    assert rel_err(s2, s_full) <= FP32_TOL


@pytest.mark.parametrize("op", OPS)
def test_triton_decode_steps_reproduce_prefill(op):
    args = make_inputs(op, 2, 8, H, DK, DV, device=DEV, seed=25)
    o_all, _ = DISPATCH[op](**args, backend="triton")
    _, s = DISPATCH[op](**slice_time(op, args, 0, 5), output_final_state=True, backend="triton")
    keep = s.clone()
    for i in range(5, 8):
        o_i, s_new = STEP[op](**at_time(op, args, i), state=s, backend="triton")
        assert torch.equal(s, keep)  # the input state is not modified
        assert rel_err(o_i, o_all[:, i]) <= FP32_TOL
        s = keep = s_new.clone()
    assert rel_err(s, REFERENCE[op](**args)[1]) <= FP32_TOL


@pytest.mark.parametrize("op", OPS)
def test_triton_decode_inplace(op):
    args = make_inputs(op, 2, 1, H, DK, DV, device=DEV, seed=26)
    s0 = random_state(2, H, DK, DV, device=DEV)
    o_ref, s_ref = STEP[op](**at_time(op, args, 0), state=s0, backend="torch")
    buf = s0.clone()
    o, s = STEP[op](**at_time(op, args, 0), state=buf, backend="triton", inplace=True)
    assert s.data_ptr() == buf.data_ptr()
    assert rel_err(o, o_ref) <= 1e-5
    assert rel_err(buf, s_ref) <= 1e-5


@pytest.mark.parametrize("op", OPS)
def test_triton_nan_is_not_hidden(op):
    args = make_inputs(op, B, 20, 1, DK, DV, device=DEV, seed=27)
    first = next(iter(args))
    args[first][0, 5, 0, 0] = float("nan")
    o, _ = DISPATCH[op](**args, backend="triton")
    assert torch.isnan(o[0, 5:]).any()


@pytest.mark.parametrize("window", [1, 5, 40, 300])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_sliding_window(window, dtype):
    q, k, v = (torch.randn(1, 150, 2, 16).to(device=DEV, dtype=dtype) for _ in range(3))
    o = kernels.sliding_window_attention(q, k, v, window, scale=0.25, backend="triton")
    tol = 2e-2 if dtype != torch.float32 else FP32_TOL
    assert rel_err(o, reference.sliding_window_attention_ref(q, k, v, window, 0.25)) <= tol


# ---------------------------------------------------------------- GPU only: real shapes, bf16, graphs


@pytest.mark.gpu
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_gpu_model_shapes(op, dtype):
    args = make_inputs(op, 2, 1000, 4, 128, 128, dtype=dtype, device="cuda", seed=31)
    s0 = random_state(2, 4, 128, 128, device="cuda")
    o, s = DISPATCH[op](**args, initial_state=s0, output_final_state=True)
    o_ref, s_ref = REFERENCE[op](**args, initial_state=s0)
    tol = 2e-2 if dtype == torch.bfloat16 else 5e-3
    assert rel_err(o, o_ref) <= tol
    assert rel_err(s, s_ref) <= tol


@pytest.mark.gpu
@pytest.mark.parametrize("op", OPS)
def test_gpu_decode_in_cuda_graph(op):
    args = make_inputs(op, 4, 3, 4, 128, 128, dtype=torch.bfloat16, device="cuda", seed=32)
    state = random_state(4, 4, 128, 128, device="cuda")
    expect_o, expect_s = STEP[op](**at_time(op, args, 0), state=state.clone(), backend="torch")
    static_in = {n: x.clone() for n, x in at_time(op, args, 0).items()}
    buf = state.clone()
    STEP[op](**static_in, state=buf.clone())  # compile outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, _ = STEP[op](**static_in, state=buf, inplace=True)
    buf.copy_(state)
    graph.replay()
    torch.cuda.synchronize()
    assert rel_err(out, expect_o) <= 2e-2
    assert rel_err(buf, expect_s) <= 1e-5


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gpu_sliding_window(dtype):
    q, k, v = (torch.randn(2, 3000, 4, 128, device="cuda", dtype=dtype) for _ in range(3))
    o = kernels.sliding_window_attention(q, k, v, 512)
    assert rel_err(o, reference.sliding_window_attention_ref(q, k, v, 512)) <= 2e-2
