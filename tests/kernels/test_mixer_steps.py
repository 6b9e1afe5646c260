"""The fused mixer decode steps (kernels/mixer_steps.py): Triton against the plain-torch definition
computed in float64, state updated in place, over two steps (the second reads what the first wrote).

Without CUDA these run in Triton's interpreter (TRITON_INTERPRET=1, set by the root conftest) at
small fp32 shapes; odd widths (Dk, Dv, channels not powers of two) exercise the masks.
"""

import os

import pytest
import torch
from pytest_goni.kernels import mixer_steps as ms
from pytest_goni.kernels.testing import compile_sm90

pytest.importorskip("triton")
CUDA = torch.cuda.is_available()
if not CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)

DEV = "cuda" if CUDA else "cpu"
TOL = 5e-3 if CUDA else 1e-4
B, H, DK, DV = 2, 3, 12, 10


def _g(seed):
    return torch.Generator().manual_seed(seed)


def rand(*shape, seed, scale=1.0):
    return (torch.randn(*shape, generator=_g(seed)) * scale).to(DEV)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def _inputs(op, seed):
    """(args for the dispatcher, indices of its in-place state tensors) for one step of ``op``."""
    s = rand(B, H, DK, DV, seed=seed, scale=0.5)
    if op == "gla":
        return dict(q=rand(B, H * DK, seed=seed + 1), k=rand(B, H * DK, seed=seed + 2),
                    v=rand(B, H * DV, seed=seed + 3), gate=rand(B, H * DK, seed=seed + 4, scale=3.0),
                    out_gate=rand(B, H * DV, seed=seed + 5), state=s, norm_weight=rand(DV, seed=seed + 6),
                    eps=1e-5, temperature=16.0)
    if op == "rwkv6":
        return dict(r=rand(B, H * DK, seed=seed + 1), k=rand(B, H * DK, seed=seed + 2),
                    v=rand(B, H * DV, seed=seed + 3), w_lora=rand(B, H * DK, seed=seed + 4),
                    decay=rand(H * DK, seed=seed + 5) - 2, g=rand(B, H * DV, seed=seed + 6),
                    bonus=rand(H, DK, seed=seed + 7), state=s, ln_weight=rand(H * DV, seed=seed + 8),
                    ln_bias=rand(H * DV, seed=seed + 9), eps=64e-5)
    if op in ("delta", "gated_delta"):
        gated = op == "gated_delta"
        return dict(q=rand(B, H * DK, seed=seed + 1), k=rand(B, H * DK, seed=seed + 2),
                    v=rand(B, H * DV, seed=seed + 3), b=rand(B, H, seed=seed + 4), state=s,
                    norm_weight=rand(DV, seed=seed + 5), eps=1e-5,
                    a=rand(B, H, seed=seed + 6) if gated else None,
                    out_gate=rand(B, H * DV, seed=seed + 7) if gated else None,
                    A_log=rand(H, seed=seed + 8) if gated else None,
                    dt_bias=rand(H, seed=seed + 9) - 3 if gated else None)
    n, p = DK, DV
    wide = rand(B, 3 * H * p + 2 * n + H, seed=seed + 1)  # a strided view, as the projection gives
    return dict(xbc=wide[:, :H * p + 2 * n], z=wide[:, H * p + 2 * n:2 * H * p + 2 * n],
                dt=wide[:, -H:], state=s, dt_bias=rand(H, seed=seed + 2) - 4, A_log=rand(H, seed=seed + 3),
                D=rand(H, seed=seed + 4))


FNS = {"gla": (ms.gla_mixer_step, ms.gla_mixer_step_torch), "rwkv6": (ms.rwkv6_mixer_step, ms.rwkv6_mixer_step_torch),
       "delta": (ms.delta_mixer_step, ms.delta_mixer_step_torch),
       "gated_delta": (ms.delta_mixer_step, ms.delta_mixer_step_torch),
       "mamba2": (ms.mamba2_ssd_step, ms.mamba2_ssd_step_torch)}


def _ref(op, args):
    """The torch definition in float64 on copies (its state advanced in place like the kernel's)."""
    a = {k: (v.double().clone() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    if op in ("gla", "delta", "gated_delta"):
        a["scale"] = DK ** -0.5
    if op == "rwkv6":
        a["scale"] = 1.0
    if op == "delta":
        a.update(out_gate=None, a=None, A_log=None, dt_bias=None)
    return FNS[op][1](**a), a["state"]


@pytest.mark.parametrize("op", list(FNS))
def test_fused_step_matches_float64_definition_over_two_steps(op):
    args = _inputs(op, seed=10)
    ref_args = dict(args)
    for i in range(2):
        if i:
            fresh = _inputs(op, seed=40)
            args = {**fresh, "state": args["state"]}
            ref_args = {**fresh, "state": ref_state.float()}  # noqa: F821 - set in the first round
        o_ref, ref_state = _ref(op, ref_args)
        state = args["state"]
        o = FNS[op][0](**args, backend="triton")
        assert o.dtype == torch.float32
        assert args["state"] is state  # updated in place
        assert rel(o, o_ref) <= TOL, (op, i)
        assert rel(state, ref_state) <= TOL, (op, i)


def test_short_conv_step_shifts_state_in_place():
    c, k = 37, 4
    wide = rand(B, 2 * c, seed=1)
    x = wide[:, 3:3 + c]
    cs = rand(B, c, k - 1, seed=2)
    w, bias = rand(c, k, seed=3), rand(c, seed=4)
    cs_ref = cs.double().clone()
    for _ in range(2):
        y_ref = ms.short_conv_step_torch(x.double(), cs_ref, w.double(), bias.double(), True)
        y = ms.short_conv_step(x, cs, w, bias, backend="triton")
        assert rel(y, y_ref) <= TOL
        assert rel(cs, cs_ref) <= TOL
        x = wide[:, :c]


@pytest.mark.parametrize("with_bias", [True, False])
def test_gla_gate_up_projection_inside_the_kernel(with_bias):
    """gla_mixer_step with gate_weight: the low-rank gate's up-projection computed in the kernel is the
    step given the projected gate (float64 definition), on a strided low-rank input; rank 5 masks."""
    args = _inputs("gla", seed=60)
    rank = 5
    low = rand(B, rank + 3, seed=61)[:, 3:]  # a strided view, as the merged projection gives
    w2, b2 = rand(H * DK, rank, seed=62), (rand(H * DK, seed=63) if with_bias else None)
    ref_args = {**args, "gate": torch.nn.functional.linear(low, w2, b2)}
    o_ref, ref_state = _ref("gla", ref_args)
    o = ms.gla_mixer_step(**{**args, "gate": low}, gate_weight=w2, gate_bias=b2, backend="triton")
    assert rel(o, o_ref) <= TOL and rel(args["state"], ref_state) <= TOL
    o_torch = ms.gla_mixer_step(**{**_inputs("gla", seed=60), "gate": low}, gate_weight=w2, gate_bias=b2,
                                backend="torch")
    assert rel(o_torch, o_ref) <= TOL
    with pytest.raises(ValueError, match="gate_weight must be"):
        ms.gla_mixer_step(**{**args, "gate": low}, gate_weight=w2[1:], backend="torch")


def test_rwkv6_decay_up_projection_inside_the_kernel():
    """rwkv6_mixer_step with lora_weight: the decay LoRA's up-projection (tanh hidden [B, R] x W2) in the
    kernel is the step given the projected lora (float64 definition); rank 5 masks."""
    args = _inputs("rwkv6", seed=70)
    rank = 5
    low = rand(B, rank + 3, seed=71)[:, 3:]  # a strided view, as the merged projection gives
    w2 = rand(H * DK, rank, seed=72, scale=0.5)
    o_ref, ref_state = _ref("rwkv6", {**args, "w_lora": torch.nn.functional.linear(low, w2)})
    o = ms.rwkv6_mixer_step(**{**args, "w_lora": low}, lora_weight=w2, backend="triton")
    assert rel(o, o_ref) <= TOL and rel(args["state"], ref_state) <= TOL
    o_torch = ms.rwkv6_mixer_step(**{**_inputs("rwkv6", seed=70), "w_lora": low}, lora_weight=w2, backend="torch")
    assert rel(o_torch, o_ref) <= TOL
    with pytest.raises(ValueError, match="w_lora_weight must be"):
        ms.rwkv6_mixer_step(**{**args, "w_lora": low}, lora_weight=w2[1:], backend="torch")


def test_rwkv6_and_mamba2_steps_in_one_launch():
    """groundthink's two mixers side by side (rwkv6_mamba2_step): each job's output and state as its own
    float64 definition, over two steps (the second reads the states the first wrote)."""
    rwkv, mamba = _inputs("rwkv6", seed=80), _inputs("mamba2", seed=81)
    low, w2 = rand(B, 8, seed=82)[:, 3:], rand(H * DK, 5, seed=83, scale=0.5)
    rwkv["w_lora"] = low
    ref_r = {k: (v.double().clone() if isinstance(v, torch.Tensor) else v) for k, v in rwkv.items()}
    ref_m = {k: (v.double().clone() if isinstance(v, torch.Tensor) else v) for k, v in mamba.items()}
    for _ in range(2):
        o_r, o_m = ms.rwkv6_mamba2_step((*rwkv.values(), 1.0, w2), tuple(mamba.values()), backend="triton")
        want_r = ms.rwkv6_mixer_step_torch(**{**ref_r, "w_lora": torch.nn.functional.linear(low.double(), w2.double())},
                                           scale=1.0)
        want_m = ms.mamba2_ssd_step_torch(**ref_m)
        assert rel(o_r, want_r) <= TOL and rel(rwkv["state"], ref_r["state"]) <= TOL
        assert rel(o_m, want_m) <= TOL and rel(mamba["state"], ref_m["state"]) <= TOL
    o_r, o_m = ms.rwkv6_mamba2_step((*rwkv.values(), 1.0, w2), tuple(mamba.values()), backend="torch")
    assert o_r.shape == (B, H * DV) and o_m.shape == mamba["z"].shape


_SM90 = """
names = ["q_ptr", "k_ptr", "v_ptr", "gate_ptr", "beta_ptr", "og_ptr", "p0_ptr", "p1_ptr", "p2_ptr", "nw_ptr",
         "nb_ptr", "s_ptr", "o_ptr", "sq", "sk", "sv", "sgate", "sbeta", "sog", "qh", "kh", "nwh", "scale", "eps",
         "temperature", "H", "DK", "DV", "R"]
types = ["*bf16"] * 11 + ["*fp32", "*bf16"] + ["i32"] * 9 + ["fp32"] * 3 + ["i32"] * 4
for mode, br in ((0, 0), (0, 16), (1, 0), (1, 64), (3, 0)):
    const = {"MODE": mode, "HAS_G": True, "HAS_OG": True, "BK": 64, "BV": 64, "BR": br, "HAS_GB": mode == 0 and br > 0}
    compile90(m._mixer_kernel, names, types, const)
# groundthink's pair: RWKV-6 (decay up-projection inside) and Mamba-2 in one launch
const = {"MODE_A": 1, "HAS_G_A": True, "HAS_OG_A": True, "BK_A": 64, "BV_A": 64, "BR_A": 64, "HAS_GB_A": False,
         "MODE_B": 3, "HAS_G_B": True, "HAS_OG_B": True, "BK_B": 64, "BV_B": 64, "BR_B": 0, "HAS_GB_B": False}
compile90(m._mixer_pair_kernel, [n + "_a" for n in names] + [n + "_b" for n in names] + ["NVA", "NA", "NVB"],
          types + types + ["i32"] * 3, const)
"""


def test_gla_mode_compiles_for_sm90_without_a_gpu():
    """The compiled path (not the interpreter) accepts the GLA and RWKV-6 modes with and without the
    low-rank up-projection (and Mamba-2's, which reads no per-channel gate), and the RWKV-6 + Mamba-2 pair."""
    pytest.importorskip("triton.backends.nvidia")
    status, err = compile_sm90("mixer_steps", _SM90)
    if status == "no-ptxas":
        pytest.skip("this Triton install carries no ptxas")
    assert status == "ok", err
