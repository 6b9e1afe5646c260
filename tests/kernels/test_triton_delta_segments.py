"""The sequence-parallel delta-rule forward (WY on tensor cores, summary + carry + walk) vs float64.

In the interpreter (no CUDA) at small shapes, fp32 and fp16; `segment_chunks` forces one segment
(0) or several (1, 2, 3 chunks each), so the summary walk, the matrix carry and the output walk
all run. GPU tests: model shapes in bf16, several segments.
"""

import functools
import os

import pytest
import torch
from pytest_goni.kernels.testing import REFERENCE, compile_sm90, make_inputs, random_state, rel_err

pytest.importorskip("triton")

CUDA = torch.cuda.is_available()
if not CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)

from pytest_goni.kernels.triton import common, delta_rule, wy  # noqa: E402

DEV = "cuda" if CUDA else "cpu"
FP32_TOL = 5e-3 if CUDA else 1e-4
DELTA_OPS = ("delta_rule", "gated_delta_rule")


def _run(op, a, scale=0.3, s0=None, **kw):
    return delta_rule.gated_delta_rule_fwd(a["q"], a["k"], a["v"], a.get("g"), a["beta"], scale, s0, True, **kw)


def _ref(op, a, scale=0.3, s0=None):
    return REFERENCE[op](**a, scale=scale, initial_state=s0)


@functools.cache
def _case(op, with_state):
    """Inputs, initial state and float64 reference of the fp32 case (the reference is the slow part)."""
    a = make_inputs(op, 1, 200, 2, 32, 32, device=DEV, seed=40)
    s0 = random_state(1, 2, 32, 32, device=DEV) if with_state else None
    return a, s0, _ref(op, a, s0=s0)


@pytest.mark.parametrize("op", DELTA_OPS)
@pytest.mark.parametrize("segment_chunks", [0, 1, 2, 3])
@pytest.mark.parametrize("with_state", [False, True])
def test_segments_fp32_match_reference(op, segment_chunks, with_state):
    # 200 tokens in chunks of 16: 13 chunks, the last one short; 13, 7, 5 segments or one
    a, s0, (o_ref, s_ref) = _case(op, with_state)
    o, s = _run(op, a, s0=s0, chunk=16, segment_chunks=segment_chunks, bv=32)
    assert rel_err(o, o_ref) <= FP32_TOL
    assert rel_err(s, s_ref) <= FP32_TOL


@pytest.mark.parametrize("op", DELTA_OPS)
@pytest.mark.parametrize("segment_chunks", [0, 1])
@pytest.mark.parametrize("bv", [16, 32])
def test_segments_chunk64_short_tail(op, segment_chunks, bv):
    # B = 2, Dk = 16 != Dv = 32; the summary's [Dk, Dk + Dv] state in 3 blocks of 16, or in blocks of
    # 32 of which the first holds identity and state columns together
    a = make_inputs(op, 2, 70, 2, 16, 32, device=DEV, seed=50)
    s0 = random_state(2, 2, 16, 32, device=DEV)
    o, s = _run(op, a, s0=s0, chunk=64, segment_chunks=segment_chunks, bv=bv)
    o_ref, s_ref = _ref(op, a, s0=s0)
    assert rel_err(o, o_ref) <= FP32_TOL
    assert rel_err(s, s_ref) <= FP32_TOL


@pytest.mark.parametrize("op", DELTA_OPS)
@pytest.mark.parametrize("segment_chunks", [0, 2])
def test_precomputed_scores_match_reference(op, segment_chunks):
    a, s0, (o_ref, s_ref) = _case(op, True)
    o, s = _run(op, a, s0=s0, chunk=16, segment_chunks=segment_chunks, bv=16, precompute_att=True)
    assert rel_err(o, o_ref) <= FP32_TOL
    assert rel_err(s, s_ref) <= FP32_TOL


@pytest.mark.parametrize("op", DELTA_OPS)
@pytest.mark.parametrize("segment_chunks,precompute_att", [(0, False), (2, False), (2, True)])
def test_segments_fp16(op, segment_chunks, precompute_att):
    a = make_inputs(op, 1, 200, 2, 32, 32, dtype=torch.float16, device=DEV, seed=60)
    o, s = _run(op, a, chunk=16, segment_chunks=segment_chunks, bv=32, precompute_att=precompute_att)
    assert o.dtype == torch.float16 and s.dtype == torch.float32
    o_ref, s_ref = _ref(op, a)
    assert rel_err(o, o_ref) <= 2e-2
    assert rel_err(s, s_ref) <= 2e-2


def test_without_final_state_outputs_match():
    """No final state: the last segment's summary is skipped; outputs are unchanged."""
    a, s0, (o_ref, _) = _case("gated_delta_rule", True)
    o, s = delta_rule.gated_delta_rule_fwd(a["q"], a["k"], a["v"], a["g"], a["beta"], 0.3, s0, False,
                                           chunk=16, segment_chunks=3, bv=32)
    assert s is None
    assert rel_err(o, o_ref) <= FP32_TOL


@pytest.mark.parametrize("segment_chunks", [0, 2])
def test_strong_decay_stays_finite(segment_chunks):
    a = make_inputs("gated_delta_rule", 1, 200, 1, 32, 32, device=DEV, seed=80, decay_scale=30.0)
    o, s = _run("gated_delta_rule", a, chunk=16, segment_chunks=segment_chunks, bv=32)
    assert torch.isfinite(o).all() and torch.isfinite(s).all()
    o_ref, s_ref = _ref("gated_delta_rule", a)
    assert rel_err(o, o_ref) <= FP32_TOL
    assert rel_err(s, s_ref) <= FP32_TOL


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("name", ["q", "k", "v", "beta", "g"])
def test_nan_input_gives_nan_output(name):
    a = make_inputs("gated_delta_rule", 1, 200, 1, 32, 32, device=DEV, seed=90)
    a[name][0, 37, 0] = float("nan")  # chunk 2 of 13, segment 1 of 7
    o, s = _run("gated_delta_rule", a, chunk=16, segment_chunks=2, bv=32)
    assert torch.isnan(o[0, 37]).any()
    if name != "q":  # queries do not reach the state
        assert torch.isnan(s).any()


def _check_wy(a, chunk, tol):
    """U, W of `wy.wy` on the first chunk against torch.linalg.solve_triangular in float64."""
    g = a.get("g")
    u, w, att = wy.wy(a["k"], a["v"], g, a["beta"], chunk)
    assert att is None
    k, v = a["k"][0, :chunk, 0].double(), a["v"][0, :chunk, 0].double()
    beta = a["beta"][0, :chunk, 0].double()
    b = g[0, :chunk, 0].double().cumsum(0) if g is not None else torch.zeros_like(beta)
    lower = torch.tril(beta[:, None] * torch.exp(b[:, None] - b[None, :]) * (k @ k.T), -1)
    lower += torch.eye(chunk, dtype=torch.float64, device=k.device)
    rhs = beta[:, None] * torch.cat([v, k * torch.exp(b)[:, None]], 1)
    sol = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
    dv = v.shape[-1]
    assert rel_err(u[0, :chunk, 0], sol[:, :dv]) <= tol
    assert rel_err(w[0, :chunk, 0], sol[:, dv:]) <= tol


def test_wy_solves_the_unit_triangular_system():
    _check_wy(make_inputs("gated_delta_rule", 1, 64, 1, 32, 32, device=DEV, seed=95), 64, FP32_TOL)


@pytest.mark.parametrize("op", DELTA_OPS)
@pytest.mark.parametrize("chunk", [32, 64])  # the backward's chunk and the forward's
def test_wy_correlated_keys_stay_accurate(op, chunk):
    """Keys with mean cosine 0.85 and beta near 1, as a trained DeltaNet layer's can be: without decay
    the old inverse, the Neumann product (I - A)(I + A^2)..., cancelled partial sums of (1 + |A|)^C and
    gave U 1e7x off in exact float32 (the suspected cause of deltanet's NaN in bf16 training at T 4096)."""
    a = make_inputs(op, 1, chunk, 1, 16, 16, device=DEV, seed=97, key_mix=0.7)
    a["beta"] = 0.9 + 0.1 * a["beta"]
    _check_wy(a, chunk, FP32_TOL)


@pytest.mark.parametrize("chunk", [32, 64])
def test_wy_inverse_mask_forms_agree(monkeypatch, chunk):
    """`unit_lower_inverse` masking its products' rows (the default: fewer live tiles, no spill at chunk 64
    in bf16 on sm_90) computes the same X as masking A's rows (GONI_WY_MASK_RESULT=0), on correlated keys;
    each against the float64 solve."""
    a = make_inputs("delta_rule", 1, chunk, 1, 16, 16, device=DEV, seed=98, key_mix=0.7)
    a["beta"] = 0.9 + 0.1 * a["beta"]
    out = {}
    for form in (False, True):
        monkeypatch.setattr(common, "WY_MASK_RESULT", form)
        out[form] = wy.wy(a["k"], a["v"], None, a["beta"], chunk)[:2]
        _check_wy(a, chunk, FP32_TOL)
    for x, y in zip(out[False], out[True]):
        assert rel_err(y, x) <= 1e-6


_WY_SM90 = """
from pytest_goni.kernels.testing import tf32_n8_wgmma
fn = m._wy_kernel
names = [p.name for p in fn.params]
types = ["*fp32"] * 8 + ["i32"] * 4
for const, options in LAUNCHES:
    assert not tf32_n8_wgmma(ttgir90(fn, names[:12], types, const, **options)), ("tf32 wgmma, N = 8", const, options)
"""


def test_wy_float32_at_head_size_16_compiles_without_tf32_n8_wgmma(monkeypatch):
    """The WY launch the forward makes at Dk 16 (Dv 32: gated-deltanet's expand_v 2; and 16), float32,
    compiled for sm_90: no tf32 wgmma with N = 8, which reads past its shared operand (the H200's
    illegal memory access in tests/models/test_decode_fusion.py, 2026-12-01; `common.dot_width`)."""
    pytest.importorskip("triton.backends.nvidia")
    launches = []

    class Recorder:  # the launch's constexprs and options, then the real launch
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                options = {k: kwargs[k] for k in ("num_warps", "num_stages") if k in kwargs}
                launches.append(({k: v for k, v in kwargs.items() if k not in options}, options))
                return kernel[grid](*args, **kwargs)
            return launch

    kernel = wy._wy_kernel
    monkeypatch.setattr(wy, "_wy_kernel", Recorder())
    for dv in (32, 16):
        a = make_inputs("gated_delta_rule", 1, 12, 2, 16, dv, device=DEV, seed=5)
        _run("gated_delta_rule", a)
    status, err = compile_sm90("wy", f"LAUNCHES = {launches!r}\n{_WY_SM90}", {"TRITON_DEFAULT_FP_FUSION": "1"})
    if status == "no-ptxas":
        pytest.skip("this Triton install carries no ptxas")
    assert status == "ok", err


def test_bad_options_raise_clear_errors():
    a = make_inputs("delta_rule", 1, 20, 1, 16, 16, device=DEV, seed=96)
    with pytest.raises(ValueError, match="chunk"):
        _run("delta_rule", a, chunk=48)
    with pytest.raises(ValueError, match="bv"):
        _run("delta_rule", a, bv=24)
    with pytest.raises(ValueError, match="inv_precision"):
        _run("delta_rule", a, inv_precision="fp8")


# ---------------------------------------------------------------- GPU only: model shapes, bf16


@pytest.mark.gpu
@pytest.mark.parametrize("op", DELTA_OPS)
@pytest.mark.parametrize("t", [1000, 5000])
@pytest.mark.parametrize("segment_chunks", [None, 0, 4])
def test_gpu_segments_bf16(op, t, segment_chunks):
    a = make_inputs(op, 2, t, 4, 128, 128, dtype=torch.bfloat16, device="cuda", seed=t)
    s0 = random_state(2, 4, 128, 128, device="cuda")
    o, s = _run(op, a, scale=128**-0.5, s0=s0, segment_chunks=segment_chunks)
    o_ref, s_ref = _ref(op, a, scale=128**-0.5, s0=s0)
    assert rel_err(o, o_ref) <= 2e-2
    assert rel_err(s, s_ref) <= 2e-2


@pytest.mark.gpu
@pytest.mark.parametrize("inv_precision", ["tf32", "tf32x3", "ieee"])
def test_gpu_inverse_precisions(inv_precision):
    a = make_inputs("gated_delta_rule", 2, 1000, 4, 128, 128, dtype=torch.bfloat16, device="cuda", seed=11)
    o, s = _run("gated_delta_rule", a, scale=128**-0.5, segment_chunks=4, inv_precision=inv_precision)
    o_ref, s_ref = _ref("gated_delta_rule", a, scale=128**-0.5)
    assert rel_err(o, o_ref) <= 2e-2
    assert rel_err(s, s_ref) <= 2e-2


@pytest.mark.gpu
@pytest.mark.parametrize("op", DELTA_OPS)
def test_gpu_segments_fp32(op):
    a = make_inputs(op, 2, 1000, 4, 128, 128, device="cuda", seed=7)
    s0 = random_state(2, 4, 128, 128, device="cuda")
    o, s = _run(op, a, scale=128**-0.5, s0=s0, segment_chunks=4)
    o_ref, s_ref = _ref(op, a, scale=128**-0.5, s0=s0)
    assert rel_err(o, o_ref) <= 5e-3
    assert rel_err(s, s_ref) <= 5e-3


@pytest.mark.gpu
@pytest.mark.parametrize("bv,num_warps", [(16, 4), (32, 4), (32, 8), (64, 8), (128, 8)])
@pytest.mark.parametrize("precompute_att", [False, True])
def test_gpu_tiles_agree(bv, num_warps, precompute_att):
    a = make_inputs("gated_delta_rule", 1, 3000, 4, 128, 128, dtype=torch.bfloat16, device="cuda", seed=3)
    o, s = _run("gated_delta_rule", a, scale=128**-0.5, segment_chunks=5, bv=bv, num_warps=num_warps,
                precompute_att=precompute_att)
    o_ref, s_ref = _ref("gated_delta_rule", a, scale=128**-0.5)
    assert rel_err(o, o_ref) <= 2e-2
    assert rel_err(s, s_ref) <= 2e-2
