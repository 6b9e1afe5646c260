"""The segment-parallel forward of the diagonal-decay operators (scalar decay, GLA, RWKV-6).

One segment (a single launch), and several (summary walk + carry + output walk), against the
float64 references: T not a multiple of the chunk, with and without an initial state. Runs in
Triton's interpreter on CPU at small shapes (fp32, fp16) and, marked `gpu`, at model shapes in bf16.
"""

import os

import pytest
import torch
from pytest_goni.kernels.testing import REFERENCE, make_inputs, random_state, rel_err

pytest.importorskip("triton")
CUDA = torch.cuda.is_available()
if not CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)

from pytest_goni.kernels.triton import gla, simple_gla  # noqa: E402

DEV = "cuda" if CUDA else "cpu"
OPS = ("simple_gla", "gla", "rwkv6")


def _run(op, a, scale, s0, **options):
    if op == "simple_gla":
        return simple_gla.simple_gla_fwd(a["q"], a["k"], a["v"], a["g"], scale, s0, True, **options)
    if op == "gla":
        return gla.gla_fwd(a["q"], a["k"], a["v"], a["g"], scale, s0, True, **options)
    return gla.rwkv6_fwd(a["r"], a["k"], a["v"], a["w"], a["u"], scale, s0, True, **options)


def _reference(op, a, scale, s0):
    return REFERENCE[op](**{n: x.double() for n, x in a.items()}, scale=scale,
                         initial_state=None if s0 is None else s0.double())


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("segment_chunks", [0, 1, 3])
@pytest.mark.parametrize("with_state", [True, False])
def test_segments_match_reference_fp32(op, segment_chunks, with_state):
    a = make_inputs(op, 1, 75, 2, 16, 16, device=DEV, seed=40 + segment_chunks)
    s0 = random_state(1, 2, 16, 16, device=DEV) if with_state else None
    o, s = _run(op, a, 0.3, s0, chunk=16, segment_chunks=segment_chunks)
    o_ref, s_ref = _reference(op, a, 0.3, s0)
    tol = 5e-3 if CUDA else 1e-4
    assert rel_err(o, o_ref) <= tol
    assert rel_err(s, s_ref) <= tol


@pytest.mark.parametrize("op", OPS)
def test_segments_match_reference_fp16(op):
    a = make_inputs(op, 1, 150, 2, 16, 16, dtype=torch.float16, device=DEV, seed=44)
    s0 = random_state(1, 2, 16, 16, device=DEV)
    o, s = _run(op, a, 0.3, s0, chunk=16, segment_chunks=2)
    o_ref, s_ref = _reference(op, a, 0.3, s0)
    assert rel_err(o, o_ref) <= 2e-2
    assert rel_err(s, s_ref) <= 2e-2


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("decay_scale", [7.0, 40.0])  # 7: blocks on both sides of intra.DIAGONAL_LIMIT
def test_segments_strong_decay_stays_exact(op, decay_scale):
    a = make_inputs(op, 1, 60, 2, 16, 16, device=DEV, seed=45, decay_scale=decay_scale)
    o, s = _run(op, a, 0.3, None, chunk=16, segment_chunks=1)
    o_ref, s_ref = _reference(op, a, 0.3, None)
    assert rel_err(o, o_ref) <= (5e-3 if CUDA else 1e-4)
    assert torch.isfinite(s).all()


@pytest.mark.parametrize("op", OPS)
def test_segments_nan_reaches_the_output(op):
    a = make_inputs(op, 1, 40, 2, 16, 16, device=DEV, seed=46)
    first = "q" if "q" in a else "r"
    a[first][0, 3, 1, 2] = float("nan")
    o, _ = _run(op, a, 0.3, None, chunk=16, segment_chunks=1)
    assert torch.isnan(o).any()


@pytest.mark.gpu
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("t", [1000, 5000])
def test_gpu_segments_bf16(op, t):
    a = make_inputs(op, 2, t, 4, 128, 128, dtype=torch.bfloat16, device="cuda", seed=47)
    s0 = random_state(2, 4, 128, 128, device="cuda")
    o, s = _run(op, a, 128**-0.5, s0, segment_chunks=4)
    o_ref, s_ref = _reference(op, a, 128**-0.5, s0)
    assert rel_err(o, o_ref) <= 2e-2
    assert rel_err(s, s_ref) <= 2e-2
