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
  Epilogues: ``norm_linear(blend=(other, logit))`` returns lerp(other, y, sigmoid(logit)) (groundthink's
  mix of its two mixers; ``other`` may be a second GEMV's product, made in the same kernel),
  ``silu_mul_linear(act="relu2", gate=r)`` sigmoid(r) * y (RWKV's channel mix);
- ``shift_linear``: RWKV's token shift and the projections after it as one grouped GEMV: the optional
  add + norm, then per group f of output rows the lerp z_f = lerp(xn, prev, mix_f (+ a_f B_f: the
  ddlerp's low-rank term)) and y_f = W_f z_f (tanh on chosen groups): the ddlerp chain of a layer in two
  launches where it took a dozen;
- ``conv=`` (``norm_linear``, ``shift_linear``): Mamba-2's short conv step on the x, B, C columns of its
  in_proj in the same GEMV's epilogue (each program owns its columns' conv state): one launch fewer.

Rows may be strided views (a merged projection's output split in columns); the last dim must
have a unit stride.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F

from . import checks, ops
from .mixer_steps import short_conv_step_torch

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


def _check_conv(conv: tuple | None, b: int, n: int) -> None:
    """conv = (state [B, C, K-1] contiguous, weight [C, K], bias [C] or None, activation, offset): the
    short conv step of output columns offset..offset+C-1 in the GEMV's epilogue."""
    if conv is None:
        return
    state, weight, bias, _, offset = conv
    checks.tensor("conv_state", state, 3)
    c, km1 = state.shape[1], state.shape[2]
    if state.shape[0] != b or not state.is_contiguous():
        raise ValueError(f"conv_state must be a contiguous [B={b}, C, K-1] tensor, got {tuple(state.shape)}")
    checks.tensor("conv_weight", weight, 2)
    checks.same("conv_weight", weight, (c, km1 + 1), "[C, K]")
    if bias is not None:
        checks.same("conv_bias", bias, (c,), "[C]")
    if not 0 <= offset <= n - c:
        raise ValueError(f"the conv's columns {offset}..{offset + c - 1} are not inside the output's {n}")


def _conv_torch(y: Tensor, conv: tuple | None) -> Tensor:
    """The definition of the conv epilogue: the columns' short conv step (state shifted in place)."""
    if conv is None:
        return y
    state, weight, bias, act, offset = conv
    c = state.shape[1]
    y = y.clone()
    y[:, offset:offset + c] = short_conv_step_torch(y[:, offset:offset + c], state, weight, bias, act)
    return y


def _other(other: Tensor | tuple[Tensor, Tensor]) -> Tensor:
    """The blend's other output: a tensor, or (x2, w2) for x2 w2^T (a second linear's product)."""
    if isinstance(other, torch.Tensor):
        return other
    x2, w2 = other
    return F.linear(x2.to(w2.dtype), w2)


def blend_torch(y: Tensor, other: Tensor | tuple[Tensor, Tensor], logit: Tensor) -> Tensor:
    """lerp(other, y, sigmoid(logit)): groundthink's per-channel mix of its two mixers' outputs;
    ``other`` = (x2, w2): the other mixer's out projection x2 w2^T, made here."""
    other = _other(other)
    return torch.lerp(other, y.to(other.dtype), torch.sigmoid(logit).to(other.dtype))


def _check_blend(blend: tuple, b: int, n: int) -> None:
    other, logit = blend
    if isinstance(other, torch.Tensor):
        _rows("other", other)
        checks.same("other", other, (b, n), "[B, N]: the output's shape")
    else:
        x2, w2 = other
        _rows("x2", x2)
        checks.tensor("w2", w2, 2)
        if w2.shape[0] != n or x2.shape != (b, w2.shape[1]) or w2.shape[1] > GEMV_MAX_K:
            raise ValueError(f"blend's other linear must be x2 [B={b}, K2], w2 [N={n}, K2] (K2 <= {GEMV_MAX_K}), "
                             f"got {tuple(x2.shape)} and {tuple(w2.shape)}")
    checks.tensor("logit", logit, 1)
    checks.same("logit", logit, (n,), "[N]")


def norm_linear(x: Tensor, r: Tensor | None, norm_weight: Tensor | None, norm_bias: Tensor | None, eps: float,
                layer: bool, weight: Tensor, bias: Tensor | None = None, backend: str | None = None,
                blend: tuple | None = None, conv: tuple | None = None) -> tuple[Tensor, Tensor]:
    """:func:`add_norm` and the linear layer after it as one kernel on CUDA: (h, norm(h) W^T + b), the
    product in W's dtype (under autocast the caller passes W already cast, as F.linear would).
    ``blend=(other, logit [N])``: the product y returned as lerp(other, y, sigmoid(logit)), in other's
    dtype (:func:`blend_torch`), in the same kernel; ``other`` is [B, N], or (x2 [B, K2], w2 [N, K2]):
    a second GEMV x2 w2^T in the same kernel too (groundthink: RWKV's out projection beside Mamba-2's).
    ``conv`` = (state, weight, bias, activation, offset): output columns offset.. go through the short
    conv step (:func:`~pytest_goni.kernels.mixer_steps.short_conv_step`, state in place) in the same
    kernel (Mamba-2's in_proj and conv); not with ``blend``."""
    _check_add_norm(x, r, norm_weight, norm_bias)
    _linear_args("weight", weight, bias, x.shape[1])
    if blend is not None:
        _check_blend(blend, x.shape[0], weight.shape[0])
    if blend is not None and conv is not None:
        raise ValueError("norm_linear takes a blend or a conv, not both")
    _check_conv(conv, x.shape[0], weight.shape[0])
    if ops.use_triton(backend, x):
        return _triton("norm_linear")(x, r, norm_weight, norm_bias, float(eps), bool(layer), weight, bias, blend,
                                      conv)
    h, n = add_norm_torch(x, r, norm_weight, norm_bias, eps, layer)
    y = F.linear(n.to(weight.dtype), weight, bias)
    return h, (_conv_torch(y, conv) if blend is None else blend_torch(y, *blend))


def silu_mul_linear(a: Tensor, b: Tensor | None, weight: Tensor, bias: Tensor | None = None,
                    backend: str | None = None, act: str = "silu", gate: Tensor | None = None) -> Tensor:
    """:func:`silu_mul` and the linear layer after it (SwiGLU's down projection) as one kernel on CUDA;
    ``act="relu2"`` (b None): relu(a)^2 W^T (RWKV's channel-mix value); ``gate`` [B, N]: the result
    times sigmoid(gate) (``silu_mul(gate, y, act="sigmoid")``, RWKV's receptance) in the same kernel."""
    if act not in ("silu", "relu2"):
        raise ValueError(f"act must be 'silu' or 'relu2', got {act!r}")
    _rows("a", a)
    if (b is None) != (act == "relu2"):
        raise ValueError("b is required, except for act='relu2' which takes none")
    if b is not None:
        _rows("b", b)
        checks.same("b", b, tuple(a.shape), "like a: [B, F]")
    _linear_args("weight", weight, bias, a.shape[1])
    if gate is not None:
        _rows("gate", gate)
        checks.same("gate", gate, (a.shape[0], weight.shape[0]), "[B, N]: the output's shape")
    if ops.use_triton(backend, a):
        return _triton("silu_mul_linear")(a, b, weight, bias, act, gate)
    y = F.linear(silu_mul_torch(a, b, act).to(weight.dtype), weight, bias)
    return y if gate is None else silu_mul_torch(gate, y, "sigmoid")


def shift_linear_torch(x: Tensor, r: Tensor | None, norm: tuple | None, prev: Tensor, mix: Tensor, weight: Tensor,
                       sizes: list[int], lora: Tensor | None = None, lora_weight: Tensor | None = None,
                       tanh_groups: tuple[int, ...] = (), conv: tuple | None = None) -> tuple[Tensor, Tensor, Tensor]:
    if norm is not None:
        h, xn = add_norm_torch(x, r, *norm)
    else:
        h = xn = x
    rank = 0 if lora is None else lora_weight.shape[1]
    ys = []
    for f, w in enumerate(weight.split(sizes)):
        m = mix[f].to(torch.promote_types(mix.dtype, torch.float32))
        if lora is not None:
            m = m + lora[:, f * rank:(f + 1) * rank].to(m.dtype) @ lora_weight[f].to(m.dtype)
        z = torch.lerp(xn, prev.to(xn.dtype), m.to(xn.dtype))  # as the unfused ddlerp (x's dtype)
        y = F.linear(z.to(weight.dtype), w)
        ys.append(torch.tanh(y) if f in tanh_groups else y)
    return h, xn, _conv_torch(torch.cat(ys, -1), conv)


#: The most groups of rows one shift_linear launch takes (RWKV-6's w, k, v, r, g).
SHIFT_GROUPS = 5


def shift_linear(x: Tensor, r: Tensor | None, norm: tuple | None, prev: Tensor, mix: Tensor, weight: Tensor,
                 sizes: list[int], lora: Tensor | None = None, lora_weight: Tensor | None = None,
                 tanh_groups: tuple[int, ...] = (), backend: str | None = None, conv: tuple | None = None
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """x, prev [B, K] -> (h, xn, y [B, sum(sizes)]): h = x + r, xn = norm(h) (``norm`` = (weight, bias,
    eps, layer) as :func:`add_norm` takes them; None: h = xn = x, r must be None), and for each group f
    of ``sizes`` rows of ``weight`` [N, K]: y_f = W_f lerp(xn, prev, m_f), m_f = mix[f] ([G, K]) plus,
    with ``lora`` [B, G*R] and ``lora_weight`` [G, R, K], lora_f lora_weight[f]; tanh of the groups in
    ``tanh_groups``. y in W's dtype (under autocast the caller passes W cast), h and xn in x's dtype.
    ``conv``: a short conv step over some of y's columns, as :func:`norm_linear`'s."""
    _rows("x", x)
    _rows("prev", prev)
    b, k = x.shape
    checks.same("prev", prev, (b, k), "like x: [B, K]")
    if norm is None and r is not None:
        raise ValueError("r (a pending residual) needs a norm: without one h = xn = x")
    _check_add_norm(x, r, *(norm[:2] if norm is not None else (None, None)))
    _linear_args("weight", weight, None, k)
    if not 1 <= len(sizes) <= SHIFT_GROUPS or sum(sizes) != weight.shape[0] or min(sizes) < 1:
        raise ValueError(f"sizes must be 1 to {SHIFT_GROUPS} positive group widths summing to weight's "
                         f"{weight.shape[0]} rows, got {list(sizes)}")
    checks.tensor("mix", mix, 2)
    checks.same("mix", mix, (len(sizes), k), "[groups, K]")
    if (lora is None) != (lora_weight is None):
        raise ValueError("lora and lora_weight go together")
    if lora is not None:
        checks.tensor("lora_weight", lora_weight, 3)
        if lora_weight.shape[0] != len(sizes) or lora_weight.shape[2] != k:
            raise ValueError(f"lora_weight must be [groups={len(sizes)}, R, K={k}], got {tuple(lora_weight.shape)}")
        _rows("lora", lora)
        checks.same("lora", lora, (b, len(sizes) * lora_weight.shape[1]), "[B, groups * R]")
    if any(not 0 <= f < len(sizes) for f in tanh_groups):
        raise ValueError(f"tanh_groups must name groups 0..{len(sizes) - 1}, got {tanh_groups}")
    _check_conv(conv, b, weight.shape[0])
    if ops.use_triton(backend, x):
        return _triton("shift_linear")(x, r, norm, prev, mix, weight, list(sizes), lora, lora_weight,
                                       tuple(tanh_groups), conv)
    return shift_linear_torch(x, r, norm, prev, mix, weight, list(sizes), lora, lora_weight, tuple(tanh_groups),
                              conv)
