"""Compile the Triton backwards for sm_90 without a GPU, as they launch, and print ptxas' spills.

The interpreter accepts kernels that Triton's compiler rejects, and says nothing of registers. This
runs the operators' forward+backward once in the interpreter (a subprocess with TRITON_INTERPRET=1),
records every launch (argument dtypes, constexprs, num_warps / num_stages), then compiles each one for
sm_90 in a second subprocess (Triton's frontend, LLVM and ptxas: the wheel's `ptxas-blackwell`, which
reads the PTX of Triton 3.9) and prints spill bytes per thread, registers and shared memory.

  python benchmarks/compile_sm90.py --d 64 128 --modules diagonal_bwd delta_bwd rwkv7_bwd
  python benchmarks/compile_sm90.py --models rwkv7 --d 64 --modules rwkv7 rwkv7_bwd
  python benchmarks/compile_sm90.py --decode --models gla gated-deltanet mamba2 transformer-rope rwkv6 gpt2 \
      --d 16 --modules --triton-path /tmp/t36

--models records instead the launches of one training step of each named LM (2 layers, 2 heads of D,
bf16 autocast, every operator dispatched as on CUDA: `kernels.ops.dispatch_as`), so the kernels are
compiled at the signatures the model makes (mixed dtypes under autocast), not only the operators' own
tests' (one dtype for all inputs); with --decode, the launches of their forward, prefill and fused decode
steps (tests/models/test_decode_fusion.py's check). A kernel whose TTGIR holds a float32 (tf32) wgmma
with N = 8 fails too: Triton reads past its shared operand there (the H200's illegal memory access at
head size 16, 2026-12-01). Exit status 1 when a launch fails to compile (or the interpreter
run fails: the launches up to the failing one are compiled all the same). --triton-path compiles with
another Triton's frontend (the GPU image has 3.6, this machine 3.9).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

from pytest_goni.errors import exception_note, one_line

PTR = {"bfloat16": "*bf16", "float32": "*fp32", "float16": "*fp16", "int64": "*i64", "int32": "*i32"}
SHAPE_ARGS = {"T", "H", "B", "DK", "DV", "NT", "L", "NSEG", "TP", "NCHUNK", "BK", "LOG2C", "SUB", "LIMIT"}


def record(d: int, path: str, models: list[str], decode: bool = False) -> int:
    """Run every operator's forward+backward (bf16 and fp32, T 200), or one training step of each of
    `models` (with `decode`: their forward, prefill and fused decode steps), in the interpreter; save
    the launches."""
    import torch
    from pytest_goni.kernels import testing
    from triton.runtime import interpreter

    seen: dict[tuple, None] = {}
    run = interpreter.InterpretedFunction.run

    def recording_run(self, *args, grid, warmup, **kwargs):
        bound = dict(zip(self.arg_names, args)) | {k: v for k, v in kwargs.items() if k in self.arg_names}
        sig = {n: (["ptr", str(v.dtype).removeprefix("torch.")] if isinstance(v, torch.Tensor) else
                   ["val", v if isinstance(v, (bool, int, float, str)) or v is None else str(v)])
               for n, v in bound.items()}
        opts = {k: v for k, v in kwargs.items() if k in ("num_warps", "num_stages")}
        seen[(self.fn.__module__, self.fn.__name__, json.dumps(sig, sort_keys=True), json.dumps(opts))] = None
        return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    interpreter.InterpretedFunction.run = recording_run
    try:
        for name in models:
            (decode_steps if decode else model_step)(name, d)
        for op in testing.OPS if not models else ():
            for dtype in (torch.bfloat16, torch.float32):
                a = testing.make_inputs(op, 1, 200, 1, d, d, dtype=dtype, seed=1)
                s0 = testing.random_state(1, 1, d, d)

                def ours(initial_state=None, op=op, **x):
                    return testing.DISPATCH[op](**x, initial_state=initial_state, output_final_state=True,
                                                backend="triton")
                testing.grads(ours, a, s0, seed=1)
    except Exception as e:  # noqa: BLE001 - the launches so far (the failing one too) are still compiled
        print(f"interpreter run failed: {one_line(exception_note(e))}", flush=True)
        return 1
    finally:
        with open(path, "w") as f:
            json.dump([list(k) for k in seen], f)
    return 0


def model_step(name: str, d: int) -> float:
    """One bf16-autocast training step (B 1, T 40) of LM `name` with 2 layers of 2 heads of d, its
    operators dispatched as on CUDA (CPU tensors: needs TRITON_INTERPRET=1); returns the loss."""
    import torch
    from pytest_goni.kernels import ops

    from pytest_goni.registry import load_builtins, resolve_backend

    load_builtins()
    torch.manual_seed(0)
    model = resolve_backend(name)(vocab_size=64, d_model=2 * d, n_layers=2, n_heads=2)
    ids = torch.randint(0, 64, (1, 41), generator=torch.Generator().manual_seed(1))
    with ops.dispatch_as("cuda"), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    return loss.item()


def decode_steps(name: str, d: int) -> None:
    """tests/models/test_decode_fusion.py's check of LM `name` (2 layers, 2 heads of d, float32): the
    parallel forward, a prefill, then fused decode steps with and without the GEMVs, every operator
    dispatched as on CUDA."""
    import torch
    from pytest_goni.kernels import ops
    from pytest_goni.models.fusion import decode_fusion

    from pytest_goni.registry import load_builtins, resolve_backend

    load_builtins()
    torch.manual_seed(0)
    model = resolve_backend(name)(vocab_size=64, d_model=2 * d, n_layers=2, n_heads=2).eval()
    ids = torch.randint(0, 64, (1, 12), generator=torch.Generator().manual_seed(3))
    for gemv in (False, True):
        with torch.inference_mode(), ops.dispatch_as("cuda"):
            model(ids)
            _, state = model.prefill(ids[:, :9])
            with decode_fusion(True, gemv=gemv):
                for t in range(9, 11):
                    _, state = model.step(ids[:, t], state)


def ptxas_usage(kernel) -> tuple[str, str]:
    """(registers, spill store bytes) per thread of a compiled Triton kernel, by ptxas -v for sm_90a
    (the wheel's `ptxas-blackwell` where present: it reads the PTX of newer Tritons); '?' where unread."""
    import triton

    bin_dir = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    ptxas = next(p for p in (os.path.join(bin_dir, "ptxas-blackwell"), os.path.join(bin_dir, "ptxas"))
                 if os.path.exists(p))
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(kernel.asm["ptx"])
    info = subprocess.run([ptxas, "-v", "--gpu-name", "sm_90a", f.name, "-o", os.devnull],
                          capture_output=True, text=True).stderr
    os.unlink(f.name)
    spill = re.findall(r"(\d+) bytes spill stores", info)
    regs = re.findall(r"Used (\d+) registers", info)
    return (regs[0] if regs else "?"), (spill[0] if spill else "?")


def compile_all(path: str, modules: list[str]) -> int:
    """Compile each recorded launch of `modules` for sm_90; one line per launch. Returns the failures."""
    import importlib

    import triton
    from pytest_goni.kernels.testing import tf32_n8_wgmma
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    print(f"# Triton {triton.__version__} ({os.path.dirname(triton.__file__)})", flush=True)
    with open(path) as f:
        launches = json.load(f)
    failed = 0
    for mod, name, sig_s, opts_s in sorted(launches):
        if modules and mod.split(".")[-1] not in modules:
            continue
        fn = getattr(importlib.import_module(mod), name)
        sig, opts = json.loads(sig_s), json.loads(opts_s)
        types, consts = {}, {}
        for i, p in enumerate(fn.params):
            kind, v = sig[p.name]
            if p.is_constexpr or (kind == "val" and not isinstance(v, (bool, int, float))):
                types[p.name], consts[(i,)] = "constexpr", v
            elif kind == "ptr":
                types[p.name] = PTR[v]
            else:
                types[p.name] = "i1" if isinstance(v, bool) else "i32" if isinstance(v, int) else "fp32"
        flags = {k: v for k, (kind, v) in sig.items() if kind == "val" and k.isupper() and k not in SHAPE_ARGS}
        dtypes = "/".join(sorted({v for kind, v in sig.values() if kind == "ptr"} - {"float32", "int64", "int32"}))
        label = f"{mod.split('.')[-1]}.{name} [{dtypes or 'float32'}] {json.dumps(flags, separators=(',', ':'))} {opts}"
        try:
            kernel = triton.compile(ASTSource(fn=fn, signature=types, constexprs=consts),
                                    target=GPUTarget("cuda", 90, 32), options=opts)
        except Exception as e:  # noqa: BLE001 - report every kernel, not only the first failure
            print(f"FAILED {label}: {exception_note(e)}", flush=True)
            failed += 1
            continue
        if tf32_n8_wgmma(kernel.asm["ttgir"]):
            print(f"FAILED {label}: a tf32 wgmma with N = 8 (reads past its shared operand on sm_90)", flush=True)
            failed += 1
            continue
        regs, spill = ptxas_usage(kernel)
        print(f"{label} spill {spill} B regs {regs} "
              f"smem {kernel.metadata.shared}", flush=True)
    return failed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", nargs="+", type=int, default=[64, 128], help="head dims (Dk = Dv)")
    p.add_argument("--modules", nargs="*", default=["diagonal_bwd", "delta_bwd", "rwkv7_bwd"],
                   help="kernels/triton modules to compile (none: every recorded launch)")
    p.add_argument("--models", nargs="*", default=[],
                   help="record one bf16-autocast training step of these LMs instead of the operators' tests")
    p.add_argument("--decode", action="store_true",
                   help="with --models: record their forward, prefill and fused decode steps (float32, as "
                   "tests/models/test_decode_fusion.py) instead of a training step")
    p.add_argument("--triton-path", help="compile with the Triton installed here (e.g. `pip install --no-deps "
                   "--target DIR triton==3.6.0`, the GPU image's), put first on the compile phase's PYTHONPATH")
    p.add_argument("--phase", choices=["record", "compile"], help=argparse.SUPPRESS)
    p.add_argument("--launches", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase == "record":
        return record(args.d[0], args.launches, args.models, args.decode)
    if args.phase == "compile":
        return 1 if compile_all(args.launches, args.modules) else 0
    failed = False
    for d in args.d:
        print(f"# D = {d}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            launches = os.path.join(tmp, "launches.json")
            env = {**os.environ, "TRITON_INTERPRET": "1"}
            failed |= subprocess.run([sys.executable, __file__, "--phase", "record", "--d", str(d), "--launches",
                                      launches, "--models", *args.models] + ["--decode"] * args.decode, env=env,
                                     stderr=subprocess.DEVNULL).returncode != 0
            env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
            env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
            if args.triton_path:
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.triton_path, env.get("PYTHONPATH")]))
            failed |= subprocess.run([sys.executable, __file__, "--phase", "compile", "--launches", launches,
                                      "--modules", *args.modules], env=env).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
