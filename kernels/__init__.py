"""Sequence operators, installed as pytest_goni.kernels.

Dispatchers (Triton on CUDA, chunked torch elsewhere; layout [B, T, H, D], state [B, H, Dk, Dv]
float32) and single-token decode steps. Definitions: `pytest_goni.kernels.reference`.
"""

from .decode_fusion import add_norm, norm_linear, shift_linear, silu_mul, silu_mul_linear
from .kv_attention import kv_decode
from .mixer_steps import (
    delta_mixer_step,
    gla_mixer_step,
    mamba2_ssd_step,
    rwkv6_mamba2_step,
    rwkv6_mixer_step,
    short_conv_step,
)
from .ops import (
    delta_rule,
    delta_rule_step,
    gated_delta_rule,
    gated_delta_rule_step,
    gla,
    gla_step,
    rwkv6,
    rwkv6_step,
    rwkv7,
    rwkv7_step,
    simple_gla,
    simple_gla_step,
    sliding_window_attention,
)
from .short_conv import causal_conv

__all__ = [
    "add_norm",
    "causal_conv",
    "delta_mixer_step",
    "delta_rule",
    "delta_rule_step",
    "gated_delta_rule",
    "gated_delta_rule_step",
    "gla",
    "gla_mixer_step",
    "gla_step",
    "kv_decode",
    "mamba2_ssd_step",
    "norm_linear",
    "rwkv6",
    "rwkv6_mamba2_step",
    "rwkv6_mixer_step",
    "rwkv6_step",
    "rwkv7",
    "rwkv7_step",
    "simple_gla",
    "shift_linear",
    "short_conv_step",
    "silu_mul",
    "silu_mul_linear",
    "simple_gla_step",
    "sliding_window_attention",
]
