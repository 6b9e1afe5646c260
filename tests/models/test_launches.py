"""Kernel launches per decode step (models/launches.py), counted on CPU with torch.profiler.

The count is what a launch-bound decode step's time is made of on a GPU. These tests check the
counter on known calls, and that every recurrent backend's step runs its mixer as one fused kernel
per layer (kernels/mixer_steps.py) with none of the small gate ops it used to dispatch around it.
"""

import pytest
import torch
from pytest_goni.models.launches import count_launches, step_launches

from pytest_goni import kernels
from pytest_goni.registry import load_builtins, resolve_backend

load_builtins()

SHAPE = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2}
#: backend -> the fused kernels its step must call once per layer
FUSED = {
    "gla": ["gla_mixer_step"],
    "gated-deltanet": ["delta_mixer_step"],
    "mamba2": ["short_conv_step", "mamba2_ssd_step"],
    "rwkv6": ["rwkv6_mixer_step"],
    "groundthink": ["short_conv_step", "mamba2_ssd_step", "rwkv6_mixer_step"],
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
