"""Kernel launches per decode step (models/launches.py), counted on CPU with torch.profiler.

The count is what a launch-bound decode step's time is made of on a GPU. These tests check the
counter on known calls, and that every recurrent backend's step runs its mixer as one fused kernel
per layer (kernels/mixer_steps.py) with none of the small gate ops it used to dispatch around it.
"""

import contextlib

import pytest
import torch
from pytest_goni.models import fusion
from pytest_goni.models.base import Residual
from pytest_goni.models.decoding import clone_state
from pytest_goni.models.fusion import decode_fusion
from pytest_goni.models.launches import count_launches, step_launches
from pytest_goni.models.mamba2 import Mamba2Mixer

from pytest_goni import kernels
from pytest_goni.registry import load_builtins, resolve_backend

load_builtins()

SHAPE = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2}
#: backend -> the fused kernels its step must call once per layer
FUSED = {
    "gla": ["gla_mixer_step"],
    "gated-deltanet": ["delta_mixer_step"],
    "mamba2": ["mamba2_ssd_step"],  # its conv step: inside the in_proj GEMV (the default; below)
    "rwkv6": ["rwkv6_mixer_step"],
    "groundthink": ["rwkv6_mamba2_step"],  # both mixers' steps in one launch
}
#: ops the fused steps no longer dispatch (the gates, norms and shifts now inside the kernels)
GONE = {"aten::softplus", "aten::exp", "aten::log_sigmoid_forward", "aten::cat", "aten::sub", "aten::native_group_norm",
        "aten::linalg_vector_norm"}


def test_counter_counts_kernels_not_views():
    x = torch.randn(4, 6)
    assert count_launches(lambda: (x + 1) * 2).launches == 2
    assert count_launches(lambda: x.view(2, 12).t()[0]).launches == 0
    w = torch.ones(3, 6)
    assert count_launches(lambda: torch.nn.functional.linear(x, w)).launches == 1
    assert count_launches(lambda: torch.ones(3)).launches == 1  # a fill is a kernel too


def test_counter_counts_a_kernels_operator_as_one_launch():
    q, k, v = (torch.randn(1, 2, 8) for _ in range(3))
    g, s = -torch.rand(1, 2, 8), torch.zeros(1, 2, 8, 8)
    n = count_launches(lambda: kernels.gla_step(q, k, v, g, s))
    assert n.launches == 1 and n.by_op["goni.kernel::gla_step"] == 1


def _step_count(name):
    cfg = dict(SHAPE, max_seq_len=32) if name in ("gpt2", "transformer-vanilla") else dict(SHAPE)
    model = resolve_backend(name)(**cfg).eval()
    tokens = torch.randint(0, 64, (1, 7), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        _, state = model.prefill(tokens)
    return step_launches(model, tokens[:, -1], state)


@pytest.mark.parametrize("name", sorted(FUSED))
def test_recurrent_step_is_one_fused_kernel_per_layer(name):
    count = _step_count(name)
    for fused in FUSED[name]:
        assert count.by_op[f"goni.kernel::{fused}"] == SHAPE["n_layers"], count.by_op
    assert not GONE & set(count.by_op), count.by_op


def test_attention_baseline_step_is_counted_too():
    count = _step_count("gpt2")
    assert count.launches > 10 * SHAPE["n_layers"]  # matmuls, norms, cache writes, SDPA per layer
    assert count.by_op["aten::index_copy_"] == 2 * SHAPE["n_layers"]  # K and V into the static cache


def test_cuda_count_leaves_out_the_annotation_ranges():
    """On CUDA torch.profiler puts each record_function range (our one-launch ranges among them) on
    the GPU timeline too; those are not kernels (the H200 run of 2026-12-01 counted them: gla 219
    "launches" for 207 kernels)."""
    from types import SimpleNamespace

    from pytest_goni.models.launches import cuda_kernels

    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    ev = [SimpleNamespace(name="_mixer_kernel", device_type=cuda, is_user_annotation=False),
          SimpleNamespace(name="goni.kernel::gla_mixer_step", device_type=cuda, is_user_annotation=True),
          SimpleNamespace(name="goni.kernel::gla_mixer_step", device_type=cpu, is_user_annotation=False),
          SimpleNamespace(name="my_range", device_type=cuda, is_user_annotation=True),
          SimpleNamespace(name="Memcpy HtoD", device_type=cuda, is_user_annotation=False)]
    assert cuda_kernels(ev) == {"_mixer_kernel": 1, "Memcpy HtoD": 1}



def _step_under(name, settings, model=None):
    """One decode step after a 7-token prefill under each ``{key: (fusion on, gemv)}``: its launch
    count and its logits per key."""
    model = model if model is not None else resolve_backend(name)(**SHAPE).eval()
    tokens = torch.randint(0, 64, (1, 7), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        _, state = model.prefill(tokens)
    counts, logits = {}, {}
    for key, (on, gemv) in settings.items():
        with decode_fusion(on, gemv=gemv):
            counts[key] = step_launches(model, tokens[:, -1], state)
            with torch.inference_mode():
                logits[key] = model.step(tokens[:, -1], clone_state(state))[0]
    return model, counts, logits


def _fused_and_unfused(name, model=None):
    """Fusion off (False) and on (True), the GEMVs off: they have their own count tests below."""
    return _step_under(name, {False: (False, False), True: (True, False)}, model)


def _with_and_without_gemvs(name):
    """Fusion on, the GEMVs off (False) and on (True)."""
    return _step_under(name, {False: (True, False), True: (True, True)})


@pytest.mark.parametrize("name", ["gla", "gated-deltanet", "mamba2", "rwkv6", "groundthink", "transformer-rope",
                                  "gpt2"])
def test_fused_step_launches_fewer_kernels_for_the_same_logits(name):
    """models/fusion.py: merged projections and add+norm cut the step's launches, not its result;
    every pre-norm block's norm (and the final one, and Mamba-2's inner norm) is one add_norm kernel."""
    model, counts, logits = _fused_and_unfused(name)
    assert counts[True].launches < counts[False].launches, (counts[True].by_op, counts[False].by_op)
    blocks = sum(isinstance(m, Residual) for m in model.modules()) or 2 * SHAPE["n_layers"]  # gpt2: its own blocks
    inner = sum(isinstance(m, Mamba2Mixer) for m in model.modules())  # its gated RMSNorm: one kernel too
    assert counts[True].by_op["goni.kernel::add_norm"] == blocks + 1 + inner, counts[True].by_op
    torch.testing.assert_close(logits[True], logits[False], atol=2e-5, rtol=1e-5)


def test_merged_weights_follow_the_model_and_training_steps_stay_unfused():
    """The merged projection is rebuilt when a weight changes in place; with gradients on, the step
    runs the plain modules (training never sees the merged copies)."""
    model, _, before = _fused_and_unfused("gla")
    with torch.no_grad():
        model.layers[0].parts[0].inner.v.weight.mul_(2.0)
    _, _, after = _fused_and_unfused("gla", model)
    assert not torch.allclose(before[True], after[True])
    torch.testing.assert_close(after[True], after[False], atol=2e-5, rtol=1e-5)
    assert fusion.enabled() is False  # gradients on: the plain modules run
    with torch.no_grad():
        assert fusion.enabled() is True
    tokens = torch.randint(0, 64, (1, 7), generator=torch.Generator().manual_seed(1))
    _, state = model.prefill(tokens)
    count = count_launches(lambda: model.step(tokens[:, -1], state))
    assert "goni.kernel::add_norm" not in count.by_op and "goni.kernel::silu_mul" not in count.by_op


def test_under_autocast_the_fused_step_casts_its_weights_once():
    """Spec runs decode under bf16 autocast without its weight cache (a CUDA graph forbids it), so the
    unfused step casts every weight every step; the fused one keeps merged copies in bf16, made once,
    and gives the same logits."""
    model = resolve_backend("gla")(**SHAPE).eval()
    tokens = torch.randint(0, 64, (1, 7), generator=torch.Generator().manual_seed(2))

    def ctx():
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False))
        return stack

    with ctx():
        _, state = model.prefill(tokens)
        with decode_fusion(False):
            plain = model.step(tokens[:, -1], clone_state(state))[0]
        fused = model.step(tokens[:, -1], clone_state(state))[0]
    torch.testing.assert_close(fused.float(), plain.float(), atol=2e-2, rtol=2e-2)
    merged = model.layers[0].parts[0].inner.__dict__["_goni_merged"]
    assert {key for key in merged} == {("in", torch.bfloat16)}
    assert all(t.dtype == torch.bfloat16 for t in merged[("in", torch.bfloat16)][1:3] if t is not None)
    assert model.head.__dict__["_goni_merged"][("self", torch.bfloat16)][1].dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["gla", "gated-deltanet", "mamba2", "transformer-rope"])
def test_the_fused_gemvs_launch_fewer_kernels_still(name):
    """With the GEMVs (the default) a pre-norm block's norm runs inside its first matmul: fewer launches
    than add_norm + matmul, the same logits."""
    model, counts, logits = _with_and_without_gemvs(name)
    assert counts[True].launches < counts[False].launches
    assert counts[True].by_op["goni.kernel::norm_linear"] > 0
    if name == "mamba2":  # the conv step in the in_proj GEMV's epilogue
        assert counts[False].by_op["goni.kernel::short_conv_step"] == SHAPE["n_layers"]
        assert "goni.kernel::short_conv_step" not in counts[True].by_op
    torch.testing.assert_close(logits[True], logits[False], atol=2e-5, rtol=1e-5)


#: backend -> kernels of one layer's step with the fused GEMVs (the default), and none of the ops they replace
RWKV_GEMV_STEP = {"rwkv6": {"shift_linear": 3, "rwkv6_mixer_step": 1, "silu_mul_linear": 1, "aten::mm": 1},
                  "groundthink": {"shift_linear": 3, "rwkv6_mamba2_step": 1, "silu_mul_linear": 1, "norm_linear": 1}}


@pytest.mark.parametrize("name", sorted(RWKV_GEMV_STEP))
def test_rwkv_token_shift_chains_run_as_grouped_gemvs(name):
    """RWKV-6's ddlerp chain (lerps, the mix and decay LoRAs, tanh), its projections and channel mix in
    the GEMVs' prologues and epilogues (kernels.shift_linear, silu_mul_linear(relu2, gate), the decay's
    up-projection in the mixer step; groundthink's blend in Mamba-2's out_proj GEMV, its conv step in the
    in_proj GEMV's epilogue, its two mixer steps one launch): per layer exactly
    the kernels listed (rwkv6: and one cuBLAS matmul, RWKV's out projection, which groundthink runs inside
    the blend's GEMV), the same logits as without the GEMVs."""
    model, counts, logits = _with_and_without_gemvs(name)
    n = SHAPE["n_layers"]
    by_op = counts[True].by_op
    for op, per_layer in RWKV_GEMV_STEP[name].items():
        key = op if op.startswith("aten::") else f"goni.kernel::{op}"
        assert by_op[key] == per_layer * n + (key == "aten::mm"), by_op  # + the LM head
    assert by_op["aten::mm"] == RWKV_GEMV_STEP[name].get("aten::mm", 0) * n + 1, by_op
    # besides: the embedding, ln0 (its LayerNorm), the final add_norm and the token check's two fills
    assert counts[True].launches == sum(RWKV_GEMV_STEP[name].values()) * n + 1 + 5, by_op
    assert counts[True].launches < counts[False].launches / 2
    torch.testing.assert_close(logits[True], logits[False], atol=2e-5, rtol=1e-5)
