"""The fused, segment-parallel RWKV-7 Triton forward against the float64 reference.

Without CUDA these run in Triton's interpreter at small shapes (fp32 and fp16; its bf16 dot is
wrong), over one segment and several, with and without an initial state, T not a multiple of
the chunk. The `gpu` tests run the model-sized shapes in bf16 and every tile option.
"""

import os

import pytest
import torch
from pytest_goni.kernels.testing import REFERENCE, make_inputs, random_state, rel_err

pytest.importorskip("triton")

CUDA = torch.cuda.is_available()
if not CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)

from pytest_goni.kernels.triton.rwkv7 import rwkv7_fwd  # noqa: E402

DEV = "cuda" if CUDA else "cpu"
FP32_TOL = 5e-3 if CUDA else 1e-4  # tf32 dots on the GPU, exact fp32 in the interpreter
H, D = 2, 16


def _check(args, tol, s0=None, scale=0.3, **options):
    o, s = rwkv7_fwd(**args, scale=scale, initial_state=s0, output_final_state=True, **options)
    o_ref, s_ref = REFERENCE["rwkv7"](**args, scale=scale, initial_state=s0)
    assert o.dtype == args["r"].dtype and o.shape == args["v"].shape
    assert rel_err(o, o_ref) <= tol
    assert rel_err(s, s_ref) <= tol


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("segment_chunks", [0, 1, 2, 3])
@pytest.mark.parametrize("t", [70, 200])
def test_fp32_segments_match_reference(t, segment_chunks, with_state, fused):
    args = make_inputs("rwkv7", 1, t, H, D, D, device=DEV, seed=t + segment_chunks)
    s0 = random_state(1, H, D, D, device=DEV) if with_state else None
    _check(args, FP32_TOL, s0, segment_chunks=segment_chunks, fused=fused)


@pytest.mark.parametrize(("segment_chunks", "fused"), [(0, False), (2, False), (2, True)])
def test_fp16_segments_match_reference(segment_chunks, fused):
    args = make_inputs("rwkv7", 1, 200, H, D, D, dtype=torch.float16, device=DEV, seed=5)
    _check(args, 2e-2, random_state(1, H, D, D, device=DEV), segment_chunks=segment_chunks, fused=fused)


@pytest.mark.parametrize("chunk", [32])
def test_larger_chunks_match_reference(chunk):
    args = make_inputs("rwkv7", 1, 200, H, D, D, device=DEV, seed=chunk)
    _check(args, FP32_TOL, random_state(1, H, D, D, device=DEV), segment_chunks=1, chunk=chunk)


def test_key_width_not_a_power_of_two_and_wide_value_block():
    """Dk = 48, value block 32: the summary's last M block is cut at Dk; masked rows stay zero."""
    args = make_inputs("rwkv7", 1, 70, 1, 48, 16, device=DEV, seed=7)
    _check(args, FP32_TOL, random_state(1, 1, 48, 16, device=DEV), segment_chunks=2, bv=32)


@pytest.mark.parametrize(("chunk", "fused"), [(16, False), (32, False), (16, True)])
def test_strong_decay_stays_finite_and_exact(chunk, fused):
    """w down to -18 per step: the exact-difference path, no overflow, across segments."""
    args = make_inputs("rwkv7", 1, 70, 1, D, D, device=DEV, seed=8, decay_scale=30.0)
    _check(args, FP32_TOL, random_state(1, 1, D, D, device=DEV), segment_chunks=1, chunk=chunk, fused=fused)


def test_nan_input_gives_nan_output_in_later_segments():
    args = make_inputs("rwkv7", 1, 70, 1, D, D, device=DEV, seed=9)
    args["v"][0, 20, 0, 0] = float("nan")  # chunk 1 (inside a chunk, matmuls spread it to every row)
    o, s = rwkv7_fwd(**args, scale=0.3, output_final_state=True, segment_chunks=1)
    assert not torch.isnan(o[0, :16]).any()
    assert torch.isnan(o[0, 20]).any()
    assert torch.isnan(o[0, -1]).any()  # carried through the segment summaries
    assert torch.isnan(s).any()


def test_without_final_state_over_segments():
    args = make_inputs("rwkv7", 1, 100, H, D, D, device=DEV, seed=10)
    s0 = random_state(1, H, D, D, device=DEV)
    o, s = rwkv7_fwd(**args, scale=0.3, initial_state=s0, segment_chunks=2)
    assert s is None
    assert rel_err(o, REFERENCE["rwkv7"](**args, scale=0.3, initial_state=s0)[0]) <= FP32_TOL


def test_bad_chunk_is_a_clear_error():
    args = make_inputs("rwkv7", 1, 8, 1, D, D, device=DEV)
    with pytest.raises(ValueError, match="chunk must be 16 or 32"):
        rwkv7_fwd(**args, scale=0.3, chunk=24)


# ---------------------------------------------------------------- GPU only: model shapes, bf16, options


@pytest.mark.gpu
@pytest.mark.parametrize("segment_chunks", [None, 0, 8])
@pytest.mark.parametrize("t", [1000, 5000])
def test_gpu_bf16_model_shapes(t, segment_chunks):
    args = make_inputs("rwkv7", 2, t, 4, 128, 128, dtype=torch.bfloat16, device="cuda", seed=t)
    _check(args, 2e-2, random_state(2, 4, 128, 128, device="cuda"), scale=None, segment_chunks=segment_chunks)


@pytest.mark.gpu
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("chunk", [16, 32])
@pytest.mark.parametrize(("bv", "num_warps"), [(32, 4), (64, 4), (64, 8), (128, 8)])
def test_gpu_tile_options(chunk, bv, num_warps, fused):
    args = make_inputs("rwkv7", 2, 1000, 4, 128, 128, dtype=torch.bfloat16, device="cuda", seed=11)
    _check(args, 2e-2, random_state(2, 4, 128, 128, device="cuda"), scale=None, chunk=chunk, bv=bv,
           num_warps=num_warps, fused=fused)


@pytest.mark.gpu
def test_gpu_fp32_and_strong_decay():
    args = make_inputs("rwkv7", 2, 1000, 4, 128, 128, device="cuda", seed=12)
    _check(args, FP32_TOL, random_state(2, 4, 128, 128, device="cuda"), scale=None)
    args = make_inputs("rwkv7", 2, 1000, 4, 128, 128, device="cuda", seed=13, decay_scale=30.0)
    _check(args, FP32_TOL, random_state(2, 4, 128, 128, device="cuda"), scale=None)
