"""The elementwise ops around a decode step's matmuls, fused: one launch each on CUDA.

At batch 1 a decode step is launch-bound (benchmarks/README.md, "Inference as deployed"): a
pre-norm block spends a launch on the residual add and another on the next norm, and a SwiGLU MLP
two on SiLU and the product. These operators do each pair in one kernel
(`kernels.triton.decode_fusion`); here are their definitions in plain torch (the CPU path and the
tests' reference):

- ``add_norm(x, r, weight, bias, eps)``: ``h = x + r`` (rounded to x's dtype, as the unfused add
  stores it) and its RMSNorm (``bias is None and not layer``) or LayerNorm over the last dim;
  returns ``(h, norm(h))``, both in x's dtype;
- ``silu_mul(a, b)``: ``silu(a) * b`` (SwiGLU's activation) in a's dtype; ``act="sigmoid"`` and
  ``"relu2"`` (RWKV's channel mix) likewise;
- ``norm_linear`` / ``silu_mul_linear``: each of the above with the matmul that follows it, as one
  GEMV kernel whose prologue makes the input row (batch-1 decode: the weight read is the work).
  Used by default in the decode step (models/fusion.py's ``DECODE_GEMV``; ``GONI_DECODE_GEMV=0`` off).

Rows may be strided views (a merged projection's output split in columns); the last dim must
have a unit stride.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F

from . import checks, ops

Tensor = torch.Tensor


def _triton(fn: str):
    return getattr(importlib.import_module("pytest_goni.kernels.triton.decode_fusion"), fn)


def _rows(name: str, x: Tensor) -> None:
    checks.tensor(name, x, 2)
    if x.stride(-1) != 1:
        raise ValueError(f"{name} must have a unit stride in its last dim")


def add_norm_torch(x: Tensor, r: Tensor | None, weight: Tensor | None, bias: Tensor | None, eps: float,
                   layer: bool) -> tuple[Tensor, Tensor]:
    h = x if r is None else x + r
    acc = torch.promote_types(h.dtype, torch.float32)
    y = h.to(acc)
    if layer:
        y = y - y.mean(-1, keepdim=True)
    y = y * torch.rsqrt(y.square().mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.to(acc)
    if bias is not None:
        y = y + bias.to(acc)
    return h, y.to(x.dtype)


def _check_add_norm(x: Tensor, r: Tensor | None, weight: Tensor | None, bias: Tensor | None) -> None:
    _rows("x", x)
    if r is not None:
        _rows("r", r)
        checks.same("r", r, tuple(x.shape), "like x: [B, d]")
    d = x.shape[1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (d,):
            raise ValueError(f"{name} must have shape ({d},), got {tuple(p.shape)}")


def add_norm(x: Tensor, r: Tensor | None, weight: Tensor | None, bias: Tensor | None = None, eps: float = 1e-5,
             layer: bool = False, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """x, r [B, d] -> (x + r, norm(x + r)): RMSNorm, or LayerNorm when ``layer`` (weight, bias [d],
    either may be None); ``r=None`` norms x alone. Both outputs in x's dtype."""
    _check_add_norm(x, r, weight, bias)
    if ops.use_triton(backend, x):
        return _triton("add_norm")(x, r, weight, bias, float(eps), bool(layer))
    return add_norm_torch(x, r, weight, bias, eps, layer)


def silu_mul_torch(a: Tensor, b: Tensor | None, act: str = "silu") -> Tensor:
    if act == "relu2":
        return torch.relu(a).square()
    return ((F.silu(a) if act == "silu" else torch.sigmoid(a)) * b).to(a.dtype)


ACTS = ("silu", "sigmoid", "relu2")


def silu_mul(a: Tensor, b: Tensor | None, backend: str | None = None, act: str = "silu") -> Tensor:
    """a, b [B, F] -> silu(a) * b [B, F] (SwiGLU's activation), in a's dtype; ``act="sigmoid"``:
    sigmoid(a) * b (RWKV's receptance gate); ``act="relu2"``: relu(a)^2, b None (RWKV's channel-mix key)."""
    if act not in ACTS:
        raise ValueError(f"act must be one of {ACTS}, got {act!r}")
    _rows("a", a)
    if (b is None) != (act == "relu2"):
        raise ValueError("b is required, except for act='relu2' which takes none")
    if b is not None:
        _rows("b", b)
        checks.same("b", b, tuple(a.shape), "like a: [B, F]")
    if ops.use_triton(backend, a):
        return _triton("silu_mul")(a, b, act)
    return silu_mul_torch(a, b, act)


#: The widest input row the fused GEMVs take (the whole row is one block of the kernel).
GEMV_MAX_K = 8192


def _linear_args(name: str, weight: Tensor, bias: Tensor | None, k: int) -> None:
    checks.tensor(name, weight, 2)
    if weight.shape[1] != k:
        raise ValueError(f"{name} must be [N, {k}] (the input row's width), got {tuple(weight.shape)}")
    if k > GEMV_MAX_K:
        raise ValueError(f"the fused GEMV takes rows of at most {GEMV_MAX_K}, got {k}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")


def norm_linear(x: Tensor, r: Tensor | None, norm_weight: Tensor | None, norm_bias: Tensor | None, eps: float,
                layer: bool, weight: Tensor, bias: Tensor | None = None, backend: str | None = None
                ) -> tuple[Tensor, Tensor]:
    """:func:`add_norm` and the linear layer after it as one kernel on CUDA: (h, norm(h) W^T + b), the
    product in W's dtype (under autocast the caller passes W already cast, as F.linear would)."""
    _check_add_norm(x, r, norm_weight, norm_bias)
    _linear_args("weight", weight, bias, x.shape[1])
    if ops.use_triton(backend, x):
        return _triton("norm_linear")(x, r, norm_weight, norm_bias, float(eps), bool(layer), weight, bias)
    h, n = add_norm_torch(x, r, norm_weight, norm_bias, eps, layer)
    return h, F.linear(n.to(weight.dtype), weight, bias)


def silu_mul_linear(a: Tensor, b: Tensor, weight: Tensor, bias: Tensor | None = None,
                    backend: str | None = None) -> Tensor:
    """:func:`silu_mul` and the linear layer after it (SwiGLU's down projection) as one kernel on CUDA."""
    _rows("a", a)
    _rows("b", b)
    checks.same("b", b, tuple(a.shape), "like a: [B, F]")
    _linear_args("weight", weight, bias, a.shape[1])
    if ops.use_triton(backend, a):
        return _triton("silu_mul_linear")(a, b, weight, bias)
    return F.linear(silu_mul_torch(a, b).to(weight.dtype), weight, bias)
