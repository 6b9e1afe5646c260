"""Random operator inputs and error measures shared by the kernel tests and the benchmark.

`make_inputs(op, ...)` draws inputs in the ranges the layers produce (log-decays from logsigmoid,
L2-normalized keys for the delta rules, RWKV-7's a = -kk, b = kk * a_iclr), so every operator is
numerically well-posed and the relative error against the float64 reference means something.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from . import ops, reference

Tensor = torch.Tensor

OPS = ("gla", "simple_gla", "delta_rule", "gated_delta_rule", "rwkv6", "rwkv7")

DISPATCH = {name: getattr(ops, name) for name in OPS}
STEP = {name: getattr(ops, f"{name}_step") for name in OPS}
REFERENCE = {
    "gla": reference.gla_ref,
    "simple_gla": reference.simple_gla_ref,
    "delta_rule": reference.delta_rule_ref,
    "gated_delta_rule": reference.gated_delta_rule_ref,
    "rwkv6": reference.rwkv6_ref,
    "rwkv7": reference.rwkv7_ref,
}
# which arguments carry a time axis (sliced for state-carry and decode tests); u never does
TIME_ARGS = {
    "gla": ("q", "k", "v", "g"),
    "simple_gla": ("q", "k", "v", "g"),
    "delta_rule": ("q", "k", "v", "beta"),
    "gated_delta_rule": ("q", "k", "v", "g", "beta"),
    "rwkv6": ("r", "k", "v", "w"),
    "rwkv7": ("r", "w", "k", "v", "a", "b"),
}


def make_inputs(op: str, b: int, t: int, h: int, dk: int, dv: int, dtype=torch.float32,
                device="cpu", seed: int = 0, decay_scale: float = 1.0, key_mix: float = 0.0) -> dict[str, Tensor]:
    """Keyword arguments for `op` (positional order of the dispatcher), fresh from `seed`.

    key_mix > 0 (delta rules): every key is key_mix * one shared direction per head + (1 - key_mix)
    * its own, normalized: correlated keys, as a trained layer's conv + SiLU features make them
    (0.7: mean cosine ~0.85), where a chunk's (I + A)^-1 is hard to form stably.
    """
    gen = torch.Generator(device=device).manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, device=device)

    def uni(*shape):
        return torch.rand(*shape, generator=gen, device=device)

    q, k, v = rnd(b, t, h, dk), rnd(b, t, h, dk), rnd(b, t, h, dv)
    if key_mix:
        k = key_mix * F.normalize(rnd(1, 1, h, dk), dim=-1) * dk**0.5 + (1 - key_mix) * k
    vec_decay = F.logsigmoid(rnd(b, t, h, dk) + 2.0) * decay_scale
    scal_decay = F.logsigmoid(rnd(b, t, h) + 2.0) * decay_scale
    if op == "gla":
        args = dict(q=q, k=k, v=v, g=vec_decay)
    elif op == "simple_gla":
        args = dict(q=q, k=k, v=v, g=scal_decay)
    elif op == "delta_rule":
        args = dict(q=q, k=F.normalize(k, dim=-1), v=v, beta=uni(b, t, h))
    elif op == "gated_delta_rule":
        args = dict(q=q, k=F.normalize(k, dim=-1), v=v, g=scal_decay,
                    beta=uni(b, t, h))
    elif op == "rwkv6":
        args = dict(r=q, k=k, v=v, w=vec_decay, u=rnd(h, dk))
    elif op == "rwkv7":
        kk = F.normalize(rnd(b, t, h, dk), dim=-1)
        a_iclr = uni(b, t, h, dk)
        w = -0.6065 * torch.sigmoid(rnd(b, t, h, dk)) * decay_scale  # log w = -e^-0.5 sigmoid(.)
        args = dict(r=q, w=w, k=k, v=v, a=-kk, b=kk * a_iclr)
    else:
        raise ValueError(f"unknown op {op!r}; known: {OPS}")
    return {name: x.to(device=device, dtype=dtype) for name, x in args.items()}


def random_state(b: int, h: int, dk: int, dv: int, device="cpu", seed: int = 1) -> Tensor:
    gen = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(b, h, dk, dv, generator=gen, device=device) * 0.5


def slice_time(op: str, args: dict[str, Tensor], start: int, stop: int) -> dict[str, Tensor]:
    return {n: (x[:, start:stop] if n in TIME_ARGS[op] else x) for n, x in args.items()}


def at_time(op: str, args: dict[str, Tensor], i: int) -> dict[str, Tensor]:
    """The decode-step inputs of token i (time axis dropped)."""
    return {n: (x[:, i] if n in TIME_ARGS[op] else x) for n, x in args.items()}


def rel_err(actual: Tensor, expected: Tensor) -> float:
    """||actual - expected|| / ||expected|| in float64; inf when `actual` holds NaN or inf."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if a.shape != e.shape:
        raise AssertionError(f"shape {tuple(a.shape)} != expected {tuple(e.shape)}")
    if not torch.isfinite(a).all():
        return float("inf")
    return ((a - e).norm() / e.norm().clamp_min(1e-30)).item()


def grads(fn, args: dict[str, Tensor], initial_state: Tensor | None = None, seed: int = 0,
          state_grad: bool = True) -> dict[str, Tensor]:
    """Gradients of sum(o * Wo) + sum(S_T * Ws) (fixed random Wo, Ws from `seed`) for every input.

    fn(**args, initial_state=...) -> (o, S_T). Returns {name: grad} with "initial_state" when one is
    given and "o" (the output, detached); inputs are cloned, so `args` is left as it was.
    """
    leaves = {n: x.detach().clone().requires_grad_() for n, x in args.items()}
    s0 = None if initial_state is None else initial_state.detach().clone().requires_grad_()
    o, s = fn(**leaves, initial_state=s0)
    gen = torch.Generator(device="cpu").manual_seed(seed)

    def weights(shape):  # bf16 values: the same weights whether o is bf16, fp16, fp32 or float64
        return torch.randn(shape, generator=gen).bfloat16().float()
    loss = (o * weights(o.shape).to(o)).sum()
    if state_grad:
        loss = loss + (s * weights(s.shape).to(s)).sum()
    loss.backward()
    out = {n: x.grad for n, x in leaves.items()}
    if s0 is not None:
        out["initial_state"] = s0.grad
    out["o"] = o.detach()
    return out


# A Hopper wgmma on float32 (tf32) operands with N = 8 per instruction reads past its shared-memory operand
# (the allocator does not pad it: triton-lang/triton#10629). Triton 3.6 and 3.9 emit one when a [64, 16]
# float32 dot is split over two warp groups; the WY kernel's at head size 16 gave the H200's "illegal
# memory access" (tests/models/test_decode_fusion.py, gated-deltanet, 2026-12-01).
_TF32_N8 = re.compile(r"nvidia_mma<\{versionMajor = 3,[^}]*instrShape = \[\d+, 8, 8\]")


def tf32_n8_wgmma(ttgir: str) -> bool:
    """Does a kernel's TTGIR (``compiled.asm["ttgir"]``) hold a tf32 wgmma layout with N = 8?"""
    return _TF32_N8.search(ttgir) is not None


SM90_PRELUDE = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import importlib
m = importlib.import_module("pytest_goni.kernels.triton." + MODULE)

def compile90(fn, names, types, const, **options):
    s = dict(zip(names, types))
    s.update({k: "constexpr" for k in const})
    c = {(list(s).index(k),): v for k, v in const.items()}
    return triton.compile(ASTSource(fn=fn, signature=s, constexprs=c), target=GPUTarget("cuda", 90, 32),
                          options=options or None)

def ttgir90(fn, names, types, const, **options):
    # the TTGIR for sm_90 alone (frontend and layout passes: seconds, where LLVM and ptxas take a minute)
    from triton._C.libtriton import ir
    from triton.compiler.compiler import make_backend
    s = dict(zip(names, types))
    s.update({k: "constexpr" for k in const})
    src = ASTSource(fn=fn, signature=s, constexprs={(list(s).index(k),): v for k, v in const.items()})
    target = GPUTarget("cuda", 90, 32)
    backend = make_backend(target)
    opts = backend.parse_options(dict(options))
    stages = {}
    backend.add_stages(stages, opts, src.language)
    ctx = ir.context()
    ir.load_dialects(ctx)
    backend.load_dialects(ctx)
    mod = src.make_ir(target, opts, backend.get_codegen_implementation(opts), backend.get_module_map(), ctx)
    for ext in ("ttir", "ttgir"):
        mod = stages[ext](mod, {})
    return str(mod)
"""


def compile_sm90(module: str, body: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Compile kernels of ``pytest_goni.kernels.triton.<module>`` for sm_90 without a GPU, in a fresh
    Python without TRITON_INTERPRET (the interpreter accepts what Triton's frontend rejects). ``body``
    calls ``compile90(m.<kernel>, names, types, constexprs)``. Returns ("ok" | "no-ptxas" | "failed",
    the stderr tail): a Triton install without ptxas cannot say."""
    import os
    import subprocess
    import sys

    run_env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | (env or {})
    code = f"MODULE = {module!r}\n{SM90_PRELUDE}\n{body}\nprint('compiled')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env, timeout=120)
    if "ptxas" in proc.stderr and ("not found" in proc.stderr or "No such file" in proc.stderr):
        return "no-ptxas", proc.stderr[-2000:]
    ok = proc.returncode == 0 and "compiled" in proc.stdout
    return ("ok" if ok else "failed"), proc.stderr[-2000:]
