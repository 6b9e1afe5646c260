"""Sequence operators, installed as pytest_goni.kernels.

Dispatchers (Triton on CUDA, chunked torch elsewhere; layout [B, T, H, D], state [B, H, Dk, Dv]
float32) and single-token decode steps. Definitions: `pytest_goni.kernels.reference`.
"""

from .kv_attention import kv_decode
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

__all__ = [
    "delta_rule",
    "delta_rule_step",
    "gated_delta_rule",
    "gated_delta_rule_step",
    "gla",
    "gla_step",
    "kv_decode",
    "rwkv6",
    "rwkv6_step",
    "rwkv7",
    "rwkv7_step",
    "simple_gla",
    "simple_gla_step",
    "sliding_window_attention",
]
