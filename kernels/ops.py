"""Dispatchers: one per operator, Triton on CUDA and the chunked torch form elsewhere.

The operators in TRAINABLE run a torch.autograd.Function (Triton forward + Triton backward,
`kernels.triton.autograd`) on CUDA whether or not autograd is on; the others' Triton kernels are
forward-only, so when autograd needs their graph (grad enabled and an input requires grad) their
torch form runs on CUDA as well. `backend="torch"` / `"triton"` forces a path (the benchmark and
the tests use it); "triton" on CPU runs only under TRITON_INTERPRET=1.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator

import torch

from . import checks, chunked, steps
from .sliding_window import sliding_window_attention_torch

Tensor = torch.Tensor

BACKENDS = (None, "torch", "triton")
# operators whose Triton backward trains by default on CUDA: all six. RWKV-7's passed the GPU gradient tests
# (D 128, all inputs one dtype, H200 2026-12-01) but failed to compile in the 8M/30M models' training there
# ("CompilationError: at 50:13": the reverse walk's dot of bf16 prep terms with the float32 value-residual v
# that the layer makes under bf16 autocast). Fixed (rwkv7_op casts k, v, a, b to r's dtype; the reverse walk
# casts its operands) and checked in the interpreter at the model's signature (tests/kernels/
# test_triton_grads.py::test_rwkv7_model_training_step) and compiled for sm_90 by Triton 3.9 without a GPU;
# on the H200 since (commit e9babc7, benchmarks/results/2026-12-01-h200-rwkv7-train/) that test passes and
# rwkv7 8M / 30M train through it (229k / 111k tok/s, no divergence).
TRAINABLE = frozenset({"simple_gla", "gla", "rwkv6", "gated_delta_rule", "delta_rule", "rwkv7"})


_DISPATCH_AS: str | None = None  # set by dispatch_as


@contextlib.contextmanager
def dispatch_as(device: str) -> Iterator[None]:
    """Inside, calls that name no backend pick their path as on `device` ("cuda" or "cpu"), wherever the
    tensors are. "cuda" on CPU tensors (needs TRITON_INTERPRET=1) runs a whole model's training step
    through the Triton kernels and their autograd wrappers in the interpreter, at the signatures a GPU
    run makes (dtypes under autocast, head size); "cpu" on a GPU runs the torch forms there."""
    global _DISPATCH_AS
    if device not in ("cuda", "cpu"):
        raise ValueError(f"dispatch_as takes 'cuda' or 'cpu', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("dispatch_as('cuda') without CUDA needs TRITON_INTERPRET=1 (set before triton is imported)")
    before, _DISPATCH_AS = _DISPATCH_AS, device
    try:
        yield
    finally:
        _DISPATCH_AS = before


def _triton(module: str, fn: str):
    return getattr(importlib.import_module(f"pytest_goni.kernels.triton.{module}"), fn)


def _pick(backend: str | None, tensors, op: str | None = None) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend is not None:
        return backend
    ts = [x for x in tensors if isinstance(x, torch.Tensor)]
    if not _as_cuda(ts[0]):
        return "torch"
    if op not in TRAINABLE and torch.is_grad_enabled() and any(x.requires_grad for x in ts):
        return "torch"
    return "triton"


def use_triton(backend: str | None, ref: Tensor) -> bool:
    """Whether a single-path kernel (mixer steps, decode fusion) takes its Triton form: `backend` forces it,
    else the reference tensor's device, or the device `dispatch_as` names."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be None, 'torch' or 'triton', got {backend!r}")
    if backend is not None:
        return backend == "triton"
    return _as_cuda(ref)


def _as_cuda(ref: Tensor) -> bool:
    """Dispatch as on CUDA? The reference tensor's device, or the device `dispatch_as` names."""
    return ref.is_cuda if _DISPATCH_AS is None else _DISPATCH_AS == "cuda"


def _scalar_gate(name: str, x: Tensor, b: int, t: int, h: int) -> None:
    checks.tensor(name, x, 3)
    checks.same(name, x, (b, t, h), "[B, T, H]")


def _vector_gate(name: str, x: Tensor, b: int, t: int, h: int, dk: int) -> None:
    checks.tensor(name, x, 4)
    checks.same(name, x, (b, t, h, dk), "[B, T, H, Dk]")


def gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, backend=None):
    """GLA: S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t; g log-decay [B,T,H,Dk]."""
    b, t, h, dk, dv = checks.qkv(q, k, v)
    _vector_gate("g", g, b, t, h, dk)
    checks.state(initial_state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (q, k, v, g, initial_state), "gla") == "triton":
        return _triton("autograd", "gla")(q, k, v, g, sc, initial_state, output_final_state)
    return chunked.gla_chunked(q, k, v, g, sc, initial_state, output_final_state)


def _first_token(q, k, v, scale, output_final_state, u=None):
    """One token from a zero state, in closed form: S_1 = k^T v (the decay multiplies the zero state)
    and o = scale q S_1, or for RWKV-6 (which reads S_0 plus its bonus) o = scale r diag(u) k^T v.
    The chunked and Triton forms pad that one token to a whole chunk (64x the work); a model whose
    state is reset every token (the V5 broken candidate) runs every token this way. Float32 inside,
    autograd through torch; o in q's dtype, the state in float32 as the other forms return it."""
    kk = k.float() if u is None else k.float() * u.float()          # [B, 1, H, Dk]
    o = scale * (q.float() * kk).sum(-1, keepdim=True) * v.float()   # [B, 1, H, Dv]
    s = k.float()[:, 0, :, :, None] * v.float()[:, 0, :, None, :] if output_final_state else None  # [B, H, Dk, Dv]
    return o.to(q.dtype), s


def simple_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, backend=None):
    """Scalar decay (RetNet / Mamba2 SSD): S_t = exp(g_t) S_{t-1} + k_t^T v_t; g [B, T, H]."""
    b, t, h, dk, dv = checks.qkv(q, k, v)
    _scalar_gate("g", g, b, t, h)
    checks.state(initial_state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if t == 1 and initial_state is None and backend is None:
        return _first_token(q, k, v, sc, output_final_state)
    if _pick(backend, (q, k, v, g, initial_state), "simple_gla") == "triton":
        return _triton("autograd", "simple_gla")(q, k, v, g, sc, initial_state, output_final_state)
    return chunked.simple_gla_chunked(q, k, v, g, sc, initial_state, output_final_state)


def gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
                     backend=None):
    """Gated delta rule: S_t = exp(g_t)(I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t; g, beta [B,T,H].

    Keys are used as given (the layer L2-normalizes them; unnormalized keys can diverge).
    """
    b, t, h, dk, dv = checks.qkv(q, k, v)
    _scalar_gate("g", g, b, t, h)
    _scalar_gate("beta", beta, b, t, h)
    checks.state(initial_state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (q, k, v, g, beta, initial_state), "gated_delta_rule") == "triton":
        fn = _triton("autograd", "gated_delta_rule")
        return fn(q, k, v, g, beta, sc, initial_state, output_final_state)
    return chunked.gated_delta_rule_chunked(q, k, v, g, beta, sc, initial_state, output_final_state)


def delta_rule(q, k, v, beta, scale=None, initial_state=None, output_final_state=False, backend=None):
    """Delta rule: S_t = (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t; beta [B, T, H]."""
    b, t, h, dk, dv = checks.qkv(q, k, v)
    _scalar_gate("beta", beta, b, t, h)
    checks.state(initial_state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (q, k, v, beta, initial_state), "delta_rule") == "triton":
        fn = _triton("autograd", "gated_delta_rule")
        return fn(q, k, v, None, beta, sc, initial_state, output_final_state)
    return chunked.delta_rule_chunked(q, k, v, beta, sc, initial_state, output_final_state)


def rwkv6(r, k, v, w, u, scale=None, initial_state=None, output_final_state=False, backend=None):
    """RWKV-6: o_t = scale r_t (S_{t-1} + diag(u) k_t^T v_t), S_t = diag(exp(w_t)) S_{t-1} + k_t^T v_t."""
    b, t, h, dk, dv = checks.qkv(r, k, v, names=("r", "k", "v"))
    _vector_gate("w", w, b, t, h, dk)
    checks.tensor("u", u, 2)
    checks.same("u", u, (h, dk), "[H, Dk]")
    checks.state(initial_state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if t == 1 and initial_state is None and backend is None:
        return _first_token(r, k, v, sc, output_final_state, u=u)
    if _pick(backend, (r, k, v, w, u, initial_state), "rwkv6") == "triton":
        return _triton("autograd", "rwkv6")(r, k, v, w, u, sc, initial_state, output_final_state)
    return chunked.rwkv6_chunked(r, k, v, w, u, sc, initial_state, output_final_state)


def rwkv7(r, w, k, v, a, b, scale=None, initial_state=None, output_final_state=False, backend=None):
    """RWKV-7: S_t = diag(exp(w_t)) S_{t-1} + b_t^T (a_t S_{t-1}) + k_t^T v_t, o_t = scale r_t S_t.

    w is the log-decay; the RWKV-7 layer passes a = -kappa_hat and b = kappa_hat * a_iclr.
    """
    bs, t, h, dk, dv = checks.qkv(r, k, v, names=("r", "k", "v"))
    for name, x in (("w", w), ("a", a), ("b", b)):
        _vector_gate(name, x, bs, t, h, dk)
    checks.state(initial_state, bs, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (r, w, k, v, a, b, initial_state), "rwkv7") == "triton":
        return _triton("autograd", "rwkv7_op")(r, w, k, v, a, b, sc, initial_state, output_final_state)
    return chunked.rwkv7_chunked(r, w, k, v, a, b, sc, initial_state, output_final_state)


def sliding_window_attention(q, k, v, window: int, scale=None, backend=None):
    """Causal softmax attention over the last `window` tokens (the current one included)."""
    checks.qkv(q, k, v)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    sc = checks.scale(scale, q.shape[-1])
    use = _pick(backend, (q, k, v))
    if use == "triton" and backend is None and v.shape[-1] != q.shape[-1]:
        use = "torch"  # the Triton kernel needs Dv == Dk
    if use == "triton":
        return _triton("sliding_window", "sliding_window_fwd")(q, k, v, window, sc)
    return sliding_window_attention_torch(q, k, v, window, sc)


# ---- decode steps: one token, inputs [B, H, D], state [B, H, Dk, Dv] float32 -> (o, new state).
# The input state is left as it was unless inplace=True (then it is overwritten and returned:
# fixed buffers for CUDA-graph capture).


def _step_state(state, b, h, dk, dv):
    if state is None:
        raise ValueError("state is required for a decode step: [B, H, Dk, Dv] float32")
    checks.state(state, b, h, dk, dv, name="state")


def _keep(state, inplace, result):
    """Torch steps return a new state; with inplace=True it is copied into `state` as well."""
    o, s = result
    if inplace:
        state.copy_(s)
        return o, state
    return o, s


def _step_gate(name, x, shape, what):
    checks.tensor(name, x, len(shape))
    checks.same(name, x, shape, what)


def gla_step(q, k, v, g, state, scale=None, backend=None, inplace=False):
    """GLA decode step: g log-decay [B, H, Dk]."""
    b, h, dk, dv = checks.step_qkv(q, k, v)
    _step_gate("g", g, (b, h, dk), "[B, H, Dk]")
    _step_state(state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (q, k, v, g, state)) == "triton":
        return _triton("steps", "gla_step")(q, k, v, g, state, sc, inplace)
    return _keep(state, inplace, steps.gla_step_torch(q, k, v, g, state, sc))


def simple_gla_step(q, k, v, g, state, scale=None, backend=None, inplace=False):
    """Scalar-decay decode step: g [B, H]."""
    b, h, dk, dv = checks.step_qkv(q, k, v)
    _step_gate("g", g, (b, h), "[B, H]")
    _step_state(state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (q, k, v, g, state)) == "triton":
        return _triton("steps", "simple_gla_step")(q, k, v, g, state, sc, inplace)
    return _keep(state, inplace, steps.simple_gla_step_torch(q, k, v, g, state, sc))


def gated_delta_rule_step(q, k, v, g, beta, state, scale=None, backend=None, inplace=False):
    """Gated delta rule decode step: g, beta [B, H]."""
    b, h, dk, dv = checks.step_qkv(q, k, v)
    _step_gate("g", g, (b, h), "[B, H]")
    _step_gate("beta", beta, (b, h), "[B, H]")
    _step_state(state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (q, k, v, g, beta, state)) == "triton":
        return _triton("steps", "gated_delta_rule_step")(q, k, v, g, beta, state, sc, inplace)
    return _keep(state, inplace, steps.gated_delta_rule_step_torch(q, k, v, g, beta, state, sc))


def delta_rule_step(q, k, v, beta, state, scale=None, backend=None, inplace=False):
    """Delta rule decode step: beta [B, H]."""
    b, h, dk, dv = checks.step_qkv(q, k, v)
    _step_gate("beta", beta, (b, h), "[B, H]")
    _step_state(state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (q, k, v, beta, state)) == "triton":
        return _triton("steps", "gated_delta_rule_step")(q, k, v, None, beta, state, sc, inplace)
    return _keep(state, inplace, steps.delta_rule_step_torch(q, k, v, beta, state, sc))


def rwkv6_step(r, k, v, w, u, state, scale=None, backend=None, inplace=False):
    """RWKV-6 decode step: w log-decay [B, H, Dk], u [H, Dk]."""
    b, h, dk, dv = checks.step_qkv(r, k, v, names=("r", "k", "v"))
    _step_gate("w", w, (b, h, dk), "[B, H, Dk]")
    _step_gate("u", u, (h, dk), "[H, Dk]")
    _step_state(state, b, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (r, k, v, w, u, state)) == "triton":
        return _triton("steps", "rwkv6_step")(r, k, v, w, u, state, sc, inplace)
    return _keep(state, inplace, steps.rwkv6_step_torch(r, k, v, w, u, state, sc))


def rwkv7_step(r, w, k, v, a, b, state, scale=None, backend=None, inplace=False):
    """RWKV-7 decode step: w log-decay, a, b [B, H, Dk]."""
    bs, h, dk, dv = checks.step_qkv(r, k, v, names=("r", "k", "v"))
    for name, x in (("w", w), ("a", a), ("b", b)):
        _step_gate(name, x, (bs, h, dk), "[B, H, Dk]")
    _step_state(state, bs, h, dk, dv)
    sc = checks.scale(scale, dk)
    if _pick(backend, (r, w, k, v, a, b, state)) == "triton":
        return _triton("steps", "rwkv7_step")(r, w, k, v, a, b, state, sc, inplace)
    return _keep(state, inplace, steps.rwkv7_step_torch(r, w, k, v, a, b, state, sc))
