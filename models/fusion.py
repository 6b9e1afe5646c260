"""Decode-step fusion as a deployment does it: fewer launches, the same math.

At batch 1 a graphed decode step costs ~3.5 us per kernel on the H200 whatever the kernel does
(benchmarks/README.md, "Inference as deployed"), so the step's time is its launch count. These
rewrites of the *step* only (forward and prefill are untouched, so the parity laws compare the
fused step against the unfused parallel form):

- projections that read the same input run as one matmul on weights concatenated once and cached
  (:func:`split_linear`; q, k, v, gates... split from its output as views). The cache is keyed on
  each source weight's storage and version, so a moved, cast or trained model rebuilds it;
- a pre-norm block's residual add is deferred into the next block's norm (``kernels.add_norm``:
  one kernel for ``h = x + r`` and ``norm(h)``; :class:`~pytest_goni.models.base.Residual`);
- SwiGLU's SiLU and product run as one kernel (``kernels.silu_mul``; RWKV's channel mix likewise);
- the norm before a block's first matmul, and SiLU x up before SwiGLU's down projection, as the
  prologue of one Triton GEMV (:data:`DECODE_GEMV`, ``kernels.norm_linear`` / ``silu_mul_linear``);
  with them RWKV's token shift (ddlerp) and its low-rank mixes as the prologue of grouped GEMVs
  (:func:`shift_split_linear`, ``kernels.shift_linear``), its channel mix as two GEMVs, and Mamba-2's
  short conv step in its in_proj GEMV's epilogue (``conv=``);
- under autocast the merged copies, out projections and LM head are cast once (:func:`linear`).

On by default whenever gradients are off (inference mode, no_grad: every decode path); training
and any step under autograd run the unfused modules. ``GONI_DECODE_FUSION=0`` or
:func:`decode_fusion(False) <decode_fusion>` turn it off (benchmarks/models.py measures both).
The merged weights are a second copy of the projections they merge (a lone linear is used as it is),
what a deployment that kept the training layout beside them would hold.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pytest_goni import kernels

Tensor = torch.Tensor

#: The switch :func:`enabled` reads (env ``GONI_DECODE_FUSION=0`` starts it off).
DECODE_FUSION = os.environ.get("GONI_DECODE_FUSION", "1") != "0"


#: On by default (env ``GONI_DECODE_GEMV=0`` turns it off): the norm before a block's first matmul, and
#: SwiGLU's SiLU x up before its down projection, as the prologue of one Triton GEMV
#: (``kernels.norm_linear`` / ``silu_mul_linear``) instead of cuBLAS after a separate kernel: one launch
#: fewer per fused pair. Parity is shown on CPU (tests/models/test_decode_fusion.py); its speed against
#: cuBLAS's GEMV is what benchmarks/models.py --decode-fusion all measures (rows "fused" vs "gemv").
DECODE_GEMV = os.environ.get("GONI_DECODE_GEMV", "1") != "0"


def gemv_enabled() -> bool:
    """Fuse the norms into the following GEMVs (:data:`DECODE_GEMV`, on top of :func:`enabled`)?"""
    return DECODE_GEMV and enabled()


def enabled() -> bool:
    """Fuse this step? Yes when the switch is on and no gradient is recorded."""
    return DECODE_FUSION and not torch.is_grad_enabled()


@contextlib.contextmanager
def decode_fusion(on: bool, gemv: bool | None = None) -> Iterator[None]:
    """Turn the fused decode step on or off inside the block (a benchmark's old/new comparison);
    ``gemv`` sets :data:`DECODE_GEMV` too (None: left as it is)."""
    global DECODE_FUSION, DECODE_GEMV
    saved = DECODE_FUSION, DECODE_GEMV
    DECODE_FUSION = bool(on)
    if gemv is not None:
        DECODE_GEMV = bool(gemv)
    try:
        yield
    finally:
        DECODE_FUSION, DECODE_GEMV = saved


def _signature(sources: Sequence[nn.Linear | Tensor]) -> tuple:
    out = []
    for src in sources:
        for p in ((src.weight, src.bias) if isinstance(src, nn.Linear) else (src,)):
            if p is not None:
                try:
                    version = p._version
                except RuntimeError:  # an inference tensor keeps no version (it cannot change in place either)
                    version = -1
                out.append((p.data_ptr(), version, p.dtype, p.device))
    return tuple(out)


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def compute_dtype(weight: Tensor) -> torch.dtype:
    """The dtype a matmul on ``weight`` runs in here: autocast's where it is on for the weight's
    device (F.linear would cast the weight on every call), the weight's own otherwise."""
    dev = weight.device.type
    if weight.is_floating_point() and torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return weight.dtype


def _cached(owner: nn.Module, key: tuple, linears: Sequence[nn.Linear | Tensor], build: Callable[[], tuple]) -> tuple:
    """``build()`` (a tuple of tensors made from ``linears``' weights, or from tensors), made once per version and
    cached on ``owner`` under ``key``; plain tensors, usable outside inference mode too. A copy first
    made while a CUDA graph captures lives in that graph's pool, so it is not cached."""
    cache = owner.__dict__.setdefault("_goni_merged", {})
    sig = _signature(linears)
    hit = cache.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1:]
    with torch.inference_mode(False), torch.no_grad():
        values = build()
    if not _capturing():
        cache[key] = (sig, *values)
    return values


def merged_linear(owner: nn.Module, key: str, linears: Sequence[nn.Linear]) -> tuple[Tensor, Tensor | None, list[int]]:
    """(weight [sum out, in], bias or None, output widths) of ``linears`` stacked by rows, built once
    per weight version and cached on ``owner`` under ``key``. Under autocast the copy is made in
    autocast's dtype, so no step casts a weight again (what casting a model once at load does); one
    linear that needs no cast is returned as it is."""
    sizes = [lin.out_features for lin in linears]
    dtype = compute_dtype(linears[0].weight)
    if len(linears) == 1 and linears[0].weight.dtype == dtype:
        return linears[0].weight, linears[0].bias, sizes

    def build() -> tuple[Tensor, Tensor | None]:
        weight = torch.cat([lin.weight for lin in linears], 0).to(dtype)
        if all(lin.bias is None for lin in linears):
            return weight, None
        return weight, torch.cat([lin.bias if lin.bias is not None else lin.weight.new_zeros(lin.out_features)
                                  for lin in linears]).to(dtype)

    weight, bias = _cached(owner, (key, dtype), linears, build)
    return weight, bias, sizes


def split_linear(x: Tensor, owner: nn.Module, key: str, linears: Sequence[nn.Linear]) -> tuple[Tensor, ...]:
    """``tuple(lin(x) for lin in linears)`` as one matmul: views of its output, in order."""
    weight, bias, sizes = merged_linear(owner, key, linears)
    return F.linear(x, weight, bias).split(sizes, dim=-1)


def linear(x: Tensor, lin: nn.Linear) -> Tensor:
    """``lin(x)``; when fused, under autocast, on a weight cast once and cached (no cast per step)."""
    if not enabled():
        return lin(x)
    weight, bias, _ = merged_linear(lin, "self", (lin,))
    return F.linear(x, weight, bias)


def stacked_weight(owner: nn.Module, key: str, linears: Sequence[nn.Linear]) -> Tensor:
    """The weights of bias-free ``linears`` (same shape) as one [N, in, out] tensor (transposed for a
    batched matmul ``x [N, B, in] @ w``), cached like :func:`merged_linear`."""
    dtype = compute_dtype(linears[0].weight)
    (weight,) = _cached(owner, (key, dtype), linears,
                        lambda: (torch.stack([lin.weight.t() for lin in linears], 0).to(dtype).contiguous(),))
    return weight


def merged_rows(owner: nn.Module, key: str, rows: Sequence[Tensor]) -> Tensor:
    """``rows`` ([N_i, K] each: linear weights, or the transpose of an ``x @ W`` parameter) as one
    contiguous [sum N_i, K] matrix in the matmul's dtype, cached on ``owner`` like :func:`merged_linear`."""
    dtype = compute_dtype(rows[0])
    (weight,) = _cached(owner, (key, dtype), rows, lambda: (torch.cat([r.to(dtype) for r in rows], 0).contiguous(),))
    return weight


def shift_split_linear(x: Tensor, pending: Tensor | None, norm: nn.Module | None, prev: Tensor, owner: nn.Module,
                       key: str, groups: Sequence[tuple[Tensor, Tensor | None]],
                       lora: tuple[Tensor, Tensor] | None = None, tanh_groups: tuple[int, ...] = (),
                       conv: tuple | None = None) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """(h, xn, outputs) of RWKV's token shift and the projections after it as one GEMV kernel
    (``kernels.shift_linear``): h = x + pending, xn = norm(h) (``norm`` None: xn = x), and per group
    (rows [N, K], mix [K] or None for no shift) rows @ lerp(xn, prev, mix (+ the ddlerp's low-rank
    term ``lora`` = (hidden [B, G*R], weight [G, R, K]))), tanh on ``tanh_groups``. The merged rows and
    the stacked mixes are cached on ``owner`` under ``key``. ``norm`` must pass :func:`norm_args`.
    ``conv``: a short conv step over some output columns in the same kernel (``kernels.shift_linear``)."""
    rows = [g[0] for g in groups]
    weight = merged_rows(owner, key, rows)
    given = [g[1] for g in groups if g[1] is not None]
    (mix,) = _cached(owner, (key + ".mix", given[0].dtype), given, lambda: (torch.stack(
        [g[1] if g[1] is not None else given[0].new_zeros(x.shape[-1]) for g in groups]),))
    args = None if norm is None else norm_args(norm, x)
    sizes = [r.shape[0] for r in rows]
    h, xn, y = kernels.shift_linear(x, pending, args, prev, mix, weight, sizes, *(lora or (None, None)),
                                    tanh_groups=tanh_groups, conv=conv)
    return h, xn, y.split(sizes, dim=-1)


def norm_args(norm: nn.Module, x: Tensor) -> tuple[Tensor | None, Tensor | None, float, bool] | None:
    """(weight, bias, eps, layer) of an RMSNorm / LayerNorm over [B, d] rows of x that one GEMV's
    prologue takes (d <= ``GEMV_MAX_K``); None otherwise (another norm: the modules run)."""
    if x.dim() != 2 or x.shape[-1] > kernels.decode_fusion.GEMV_MAX_K:
        return None
    return _norm_args(norm, x)


def _norm_args(norm: nn.Module, x: Tensor) -> tuple[Tensor | None, Tensor | None, float, bool] | None:
    """(weight, bias, eps, layer) of a last-dim RMSNorm / LayerNorm over x's width; None for another norm."""
    if isinstance(norm, nn.RMSNorm) and tuple(norm.normalized_shape) == (x.shape[-1],):
        eps = norm.eps if norm.eps is not None else torch.finfo(x.dtype).eps
        return norm.weight, None, eps, False
    if isinstance(norm, nn.LayerNorm) and tuple(norm.normalized_shape) == (x.shape[-1],):
        return norm.weight, norm.bias, norm.eps, True
    return None


def add_norm(x: Tensor, r: Tensor | None, norm: nn.Module) -> tuple[Tensor, Tensor]:
    """(h, norm(h)) with h = x + r (x when r is None): one kernel for an RMSNorm / LayerNorm over
    [B, d] rows, the modules otherwise."""
    args = _norm_args(norm, x) if x.dim() == 2 else None
    if args is None:
        h = x if r is None else x + r
        return h, norm(h)
    return kernels.add_norm(x, r, *args)


def norm_split_linear(x: Tensor, pending: Tensor | None, norm: nn.Module, owner: nn.Module, key: str,
                      linears: Sequence[nn.Linear], blend: tuple | None = None, conv: tuple | None = None
                      ) -> tuple[Tensor, tuple[Tensor, ...]]:
    """(h, outputs of ``linears`` on norm(h)) with h = x + pending: the add, the norm and the merged
    matmul as one GEMV kernel (``kernels.norm_linear``) where the norm is an RMSNorm / LayerNorm;
    ``blend`` = (other, logit): the output lerp(other, y, sigmoid(logit)) (one linear only); ``conv`` =
    (state, weight, bias, activation, offset): a short conv step over some output columns, inside."""
    weight, bias, sizes = merged_linear(owner, key, linears)
    args = norm_args(norm, x)
    if args is None:
        h, n = add_norm(x, pending, norm)
        y = F.linear(n, weight, bias)
        if conv is not None:  # the conv step as its own kernel
            state, w, b, act, offset = conv
            y = y.clone()
            y[:, offset:offset + state.shape[1]] = kernels.short_conv_step(y[:, offset:offset + state.shape[1]],
                                                                           state, w, b, act)
        return h, (y if blend is None else kernels.decode_fusion.blend_torch(y, *blend)).split(sizes, dim=-1)
    h, y = kernels.norm_linear(x, pending, *args, weight, bias, blend=blend, conv=conv)
    return h, y.split(sizes, dim=-1)


def norm_linear(x: Tensor, norm: nn.Module, lin: nn.Linear, blend: tuple | None = None) -> Tensor:
    """``lin(norm(x))``: one GEMV kernel when :func:`gemv_enabled`, add_norm + the matmul otherwise;
    ``blend`` = (other, logit): lerp(other, that, sigmoid(logit)), in the same kernel when fused."""
    if gemv_enabled():
        return norm_split_linear(x, None, norm, lin, "self", (lin,), blend)[1][0]
    y = linear(add_norm(x, None, norm)[1], lin)
    return y if blend is None else kernels.decode_fusion.blend_torch(y, *blend)


def relu2_linear(k: Tensor, value: nn.Linear, gate: Tensor | None) -> Tensor:
    """RWKV's channel mix after its key: ``value(relu(k)^2)``, times sigmoid(gate) when given: one GEMV
    kernel when :func:`gemv_enabled` (``kernels.silu_mul_linear(act="relu2")``), else one kernel each."""
    if gemv_enabled() and k.shape[-1] <= kernels.decode_fusion.GEMV_MAX_K:
        weight, bias, _ = merged_linear(value, "self", (value,))
        return kernels.silu_mul_linear(k, None, weight, bias, act="relu2", gate=gate)
    kv = linear(kernels.silu_mul(k, None, act="relu2"), value)
    return kv if gate is None else kernels.silu_mul(gate, kv, act="sigmoid")


def swiglu_down(g: Tensor, u: Tensor, down: nn.Linear) -> Tensor:
    """``down(silu(g) * u)``: one GEMV kernel when :func:`gemv_enabled`, two kernels otherwise."""
    if gemv_enabled() and g.shape[-1] <= kernels.decode_fusion.GEMV_MAX_K:
        weight, bias, _ = merged_linear(down, "self", (down,))
        return kernels.silu_mul_linear(g, u, weight, bias)
    return linear(kernels.silu_mul(g, u), down)
