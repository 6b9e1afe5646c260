"""The short causal depthwise convolution of deltanet / gated-deltanet / mamba2 (models.layers.ShortConv),
as a training operator: x [B, T, C] -> act(sum_j w[:, j] x[t - K + 1 + j] + bias), zeros before the
first token, SiLU when ``activation``.

``causal_conv`` runs `kernels.triton.short_conv` (Triton forward and backward) on CUDA, because
cuDNN's depthwise Conv1d backward is slow; elsewhere the plain-torch definition here. The Triton path
is registered here as two torch custom ops, ``goni::short_conv_fwd`` / ``goni::short_conv_bwd``, with
fake shapes and the autograd formula: a torch.compile'd model traces through the conv without a graph
break (Inductor calls the kernels as opaque ops), and the Triton module (which decorates its kernels,
so TRITON_INTERPRET must be set first) is imported on the first call, not here.

``causal_conv_shifted`` is the conv as K shifted multiply-adds (ShortConv's "shifted" form;
elementwise, so torch.compile fuses it); ``causal_conv_torch`` adds the activation and is the
reference the Triton kernel is tested against (float64 inputs give a float64 reference).
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F

from . import checks, ops

Tensor = torch.Tensor
MAX_K = 8  # the Triton kernels unroll K*K shifted loads


def causal_conv_shifted(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Depthwise causal conv as K shifted multiply-adds: x [B, T, C], weight [C, 1, K] or [C, K] -> [B, T, C].

    y[t] = sum_j w[:, j] x[t - K + 1 + j] (+ bias), zeros before the first token: what ShortConv's
    nn.Conv1d computes. Accumulated in float32 at least (as cuDNN does), returned in x's dtype."""
    w = weight.flatten(1) if weight.dim() == 3 else weight  # [C, K]
    k, t = w.shape[-1], x.shape[1]
    acc = torch.promote_types(x.dtype, torch.float32)
    xp = F.pad(x, (0, 0, k - 1, 0)).to(acc)  # [B, T + K - 1, C]
    w = w.to(acc)
    y = sum(xp[:, j:j + t] * w[:, j] for j in range(k))
    if bias is not None:
        y = y + bias.to(acc)
    return y.to(x.dtype)


def causal_conv_torch(x: Tensor, weight: Tensor, bias: Tensor | None, activation: bool) -> Tensor:
    """The definition: the conv and its SiLU both in float32 (float64 for float64 x), then x's dtype."""
    acc = torch.promote_types(x.dtype, torch.float32)
    y = causal_conv_shifted(x.to(acc), weight, bias)
    return (F.silu(y) if activation else y).to(x.dtype)


# --------------------------------------------------------------------------- the Triton path as custom ops

_FWD_SCHEMA = "(Tensor x, Tensor weight, Tensor? bias, bool activation, int block_t, int block_c) -> Tensor"
_BWD_SCHEMA = ("(Tensor dy, Tensor x, Tensor weight, Tensor? bias, bool activation, int block_t, int block_c)"
               " -> (Tensor, Tensor, Tensor)")


def _kernels():
    return importlib.import_module("pytest_goni.kernels.triton.short_conv")


def _fwd_impl(x, weight, bias, activation, block_t, block_c):
    return _kernels().conv_fwd(x, weight, bias, activation, block_t, block_c)


def _bwd_impl(dy, x, weight, bias, activation, block_t, block_c):
    dx, dw, db = _kernels().conv_bwd(dy, x, weight, bias, activation, block_t, block_c)
    return dx, dw, weight.new_empty(0) if db is None else db  # custom ops return tensors, never None


def _fwd_fake(x, weight, bias, activation, block_t, block_c):
    return x.new_empty(x.shape)


def _bwd_fake(dy, x, weight, bias, activation, block_t, block_c):
    return (x.new_empty(x.shape), weight.new_empty(weight.shape),
            weight.new_empty(0) if bias is None else bias.new_empty(bias.shape))


def _setup_context(ctx, inputs, output):
    x, weight, bias, activation, block_t, block_c = inputs
    ctx.save_for_backward(x, weight, bias)  # only the inputs: the backward recomputes the pre-activation
    ctx.options = (activation, block_t, block_c)


def _backward(ctx, dy):
    x, weight, bias = ctx.saved_tensors
    dx, dw, db = torch.ops.goni.short_conv_bwd(dy, x, weight, bias, *ctx.options)
    return dx, dw, None if bias is None else db, None, None, None


def _register():
    """The two ops, registered once per process (a module re-imported under pytester keeps the first)."""
    try:
        return torch.ops.goni.short_conv_fwd
    except AttributeError:
        pass
    fwd = torch.library.custom_op("goni::short_conv_fwd", _fwd_impl, mutates_args=(), schema=_FWD_SCHEMA)
    bwd = torch.library.custom_op("goni::short_conv_bwd", _bwd_impl, mutates_args=(), schema=_BWD_SCHEMA)
    fwd.register_fake(_fwd_fake)
    bwd.register_fake(_bwd_fake)
    fwd.register_autograd(_backward, setup_context=_setup_context)
    return torch.ops.goni.short_conv_fwd


_FWD_OP = _register()


def causal_conv_triton(x: Tensor, weight: Tensor, bias: Tensor | None, activation: bool, block_t: int = 0,
                       block_c: int = 0) -> Tensor:
    """The Triton path, differentiable (the op and its registered backward); ``block_t`` / ``block_c``:
    tile sizes (0: the kernels' defaults; the tests use small ones). No input checks: see causal_conv."""
    return _FWD_OP(x, weight, bias, bool(activation), int(block_t), int(block_c))


def causal_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: bool = True,
                backend: str | None = None) -> Tensor:
    """x [B, T, C] (unit stride over C, else copied), weight [C, K] (K <= 8), bias [C] or None ->
    [B, T, C] in x's dtype, differentiable in x, weight and bias on either path."""
    checks.tensor("x", x, 3)
    checks.tensor("weight", weight, 2)
    c = x.shape[-1]
    if weight.shape[0] != c or not 1 <= weight.shape[1] <= MAX_K:
        raise ValueError(f"weight must be [C={c}, K] with 1 <= K <= {MAX_K}, got {tuple(weight.shape)}")
    if bias is not None:
        checks.tensor("bias", bias, 1)
        checks.same("bias", bias, (c,), "[C]")
    if ops.use_triton(backend, x):
        return causal_conv_triton(x, weight, bias, activation)
    return causal_conv_torch(x, weight, bias, activation)
