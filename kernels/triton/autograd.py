"""torch.autograd.Function wrappers: each Triton forward with its Triton backward.

The dispatchers in `pytest_goni.kernels.ops` call these on CUDA whether or not autograd is on.
Each forward keeps what its backward reuses (see the backward modules' docstrings for what is
stored and what is recomputed); without autograd nothing is kept past the call. The entry points are
`torch.compiler.disable`d: inside a torch.compile'd model they run eagerly (a graph break) rather
than being traced (their host code plans launches; the kernels are Triton's either way).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import delta_bwd, delta_rule, diagonal_bwd, rwkv7, rwkv7_bwd
from .common import tiles
from .diagonal import BV as SCALAR_BV
from .diagonal import NUM_WARPS as SCALAR_WARPS
from .diagonal import diagonal_fwd_keep
from .gla import BV as VECTOR_BV
from .gla import CHUNK as VECTOR_CHUNK
from .gla import WARPS as VECTOR_WARPS
from .intra import pairwise


@dataclass(frozen=True)
class _Diag:
    """Static settings of one diagonal-operator call (not tensors: autograd gets no gradient)."""

    scale: float
    scalar: bool
    shift_q: bool
    chunk: int
    output_final_state: bool
    bv: int | None
    num_warps: int | None
    segment_chunks: int | None


class _DiagonalFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, g, u, initial_state, cfg: _Diag):
        q, k, v, g = (x.contiguous() for x in (q, k, v, g))
        dk, dv = q.shape[-1], v.shape[-1]
        if cfg.scalar:
            att = None
            bv = tiles(dk, dv, cfg.bv, SCALAR_BV)[1]
            warps = cfg.num_warps or SCALAR_WARPS
        else:
            att = pairwise(q, k, g, cfg.chunk, strict=cfg.shift_q, u=u, shift_x=cfg.shift_q)
            bv = tiles(dk, dv, cfg.bv, VECTOR_BV)[1]
            warps = cfg.num_warps or VECTOR_WARPS
        o, st, starts, seg_len = diagonal_fwd_keep(
            q, k, v, g, cfg.scale, initial_state, cfg.output_final_state, scalar=cfg.scalar, att=att,
            shift_q=cfg.shift_q, chunk=cfg.chunk, segment_chunks=cfg.segment_chunks, bv=bv, num_warps=warps)
        s0 = initial_state.float().contiguous() if initial_state is not None else None
        ctx.save_for_backward(q, k, v, g, u, s0, starts, att, st)
        ctx.cfg, ctx.seg_len = cfg, seg_len
        ctx.s0_dtype = initial_state.dtype if initial_state is not None else None
        return o, st

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, g, u, s0, starts, att, st = ctx.saved_tensors
        cfg = ctx.cfg
        if do is None:
            do = torch.zeros(*q.shape[:3], v.shape[-1], device=q.device, dtype=q.dtype)
        need_dh0 = s0 is not None and ctx.needs_input_grad[5]
        dq, dk, dv, dg, du, dh0 = diagonal_bwd.diagonal_bwd(
            q, k, v, g, do, dht, cfg.scale, scalar=cfg.scalar, chunk=cfg.chunk, seg_len=ctx.seg_len, starts=starts,
            initial_state=s0, final_state=st, att=att, shift_q=cfg.shift_q, u=u, bv=cfg.bv, need_dh0=need_dh0)
        if du is not None:
            du = du.to(u.dtype)
        if dh0 is not None:
            dh0 = dh0.to(ctx.s0_dtype)
        return dq, dk, dv, dg, du, dh0, None


@torch.compiler.disable
def simple_gla(q, k, v, g, scale, initial_state=None, output_final_state=False, chunk=None, bv=None,
               segment_chunks=None, num_warps=None):
    """Scalar decay with gradients: (o, final state or None). g: [B, T, H].

    Chunk 64 (32 for float32 inputs: the backward's chunk kernel would not fit shared memory)."""
    chunk = chunk or (32 if q.dtype == torch.float32 else 64)
    cfg = _Diag(scale, True, False, chunk, output_final_state, bv, num_warps, segment_chunks)
    return _DiagonalFunction.apply(q, k, v, g, None, initial_state, cfg)


@torch.compiler.disable
def gla(q, k, v, g, scale, initial_state=None, output_final_state=False, chunk=None, bv=None,
           segment_chunks=None, num_warps=None):
    """GLA with gradients: (o, final state or None). g: log-decay [B, T, H, Dk]."""
    cfg = _Diag(scale, False, False, chunk or VECTOR_CHUNK, output_final_state, bv, num_warps, segment_chunks)
    return _DiagonalFunction.apply(q, k, v, g, None, initial_state, cfg)


@torch.compiler.disable
def rwkv6(r, k, v, w, u, scale, initial_state=None, output_final_state=False, chunk=None, bv=None,
          segment_chunks=None, num_warps=None):
    """RWKV-6 with gradients: (o, final state or None). w: log-decay [B, T, H, Dk], u: [H, Dk]."""
    cfg = _Diag(scale, False, True, chunk or VECTOR_CHUNK, output_final_state, bv, num_warps, segment_chunks)
    return _DiagonalFunction.apply(r, k, v, w, u.contiguous(), initial_state, cfg)


class _DeltaFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, g, beta, initial_state, scale: float, output_final_state: bool, options: tuple):
        q, k, v = (x.contiguous() for x in (q, k, v))
        opts = dict(options)
        o, st = delta_rule.gated_delta_rule_fwd(q, k, v, g, beta, scale, initial_state, output_final_state,
                                                **opts)
        s0 = initial_state.float().contiguous() if initial_state is not None else None
        ctx.save_for_backward(q, k, v, g, beta, s0)
        ctx.scale = scale
        ctx.s0_dtype = initial_state.dtype if initial_state is not None else None
        return o, st

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, g, beta, s0 = ctx.saved_tensors
        if do is None:
            do = torch.zeros(*q.shape[:3], v.shape[-1], device=q.device, dtype=q.dtype)
        need_dh0 = s0 is not None and ctx.needs_input_grad[5]
        dq, dk, dv, dg, dbeta, dh0 = delta_bwd.delta_bwd(q, k, v, g, beta, do, dht, ctx.scale, initial_state=s0,
                                                          need_dh0=need_dh0)
        if dh0 is not None:
            dh0 = dh0.to(ctx.s0_dtype)
        return dq, dk, dv, dg, dbeta, dh0, None, None, None


@torch.compiler.disable
def gated_delta_rule(q, k, v, g, beta, scale, initial_state=None, output_final_state=False, **options):
    """(Gated) delta rule with gradients: (o, final state or None); g None: the plain delta rule.

    options: chunk, segment_chunks, bv, num_warps of the forward (the backward picks its own).
    """
    return _DeltaFunction.apply(q, k, v, g, beta, initial_state, scale, output_final_state,
                                tuple(sorted(options.items())))


class _Rwkv7Function(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r, w, k, v, a, b, initial_state, scale: float, output_final_state: bool, options: tuple):
        r, w, k, v, a, b = (x.contiguous() for x in (r, w, k, v, a, b))
        opts = dict(options)
        o, st = rwkv7.rwkv7_fwd(r, w, k, v, a, b, scale, initial_state, output_final_state, **opts)
        s0 = initial_state.float().contiguous() if initial_state is not None else None
        ctx.save_for_backward(r, w, k, v, a, b, s0)
        ctx.scale = scale
        ctx.s0_dtype = initial_state.dtype if initial_state is not None else None
        return o, st

    @staticmethod
    def backward(ctx, do, dht):
        r, w, k, v, a, b, s0 = ctx.saved_tensors
        if do is None:
            do = torch.zeros(*r.shape[:3], v.shape[-1], device=r.device, dtype=r.dtype)
        need_dh0 = s0 is not None and ctx.needs_input_grad[6]
        dr, dw, dk, dv, da, db, dh0 = rwkv7_bwd.rwkv7_bwd(r, w, k, v, a, b, do, dht, ctx.scale, initial_state=s0,
                                                           need_dh0=need_dh0)
        if dh0 is not None:
            dh0 = dh0.to(ctx.s0_dtype)
        return dr, dw, dk, dv, da, db, dh0, None, None, None


@torch.compiler.disable
def rwkv7_op(r, w, k, v, a, b, scale, initial_state=None, output_final_state=False, **options):
    """RWKV-7 with gradients: (o, final state or None). options: those of `rwkv7.rwkv7_fwd`.

    k, v, a, b are cast to r's dtype (the output's, as in the torch form): under bf16 autocast the
    RWKV-7 layer hands r (and layer 0's v) in bf16 but k, a, b and the value-residual v in float32,
    and the kernels' dots take one dtype. Cast here, outside the Function, autograd returns each
    gradient in its input's dtype. w keeps its dtype (the kernels read it as float32).
    """
    k, v, a, b = (x.to(r.dtype) for x in (k, v, a, b))
    return _Rwkv7Function.apply(r, w, k, v, a, b, initial_state, scale, output_final_state,
                                tuple(sorted(options.items())))
