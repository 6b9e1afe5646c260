"""Compile the Triton backwards for sm_90 without a GPU, as they launch, and print ptxas' spills.

The interpreter accepts kernels that Triton's compiler rejects, and says nothing of registers. This
runs the operators' forward+backward once in the interpreter (a subprocess with TRITON_INTERPRET=1),
records every launch (argument dtypes, constexprs, num_warps / num_stages), then compiles each one for
sm_90 in a second subprocess (Triton's frontend, LLVM and ptxas: the wheel's `ptxas-blackwell`, which
reads the PTX of Triton 3.9) and prints spill bytes per thread, registers and shared memory.

  python benchmarks/compile_sm90.py --d 64 128 --modules diagonal_bwd delta_bwd rwkv7_bwd
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

PTR = {"bfloat16": "*bf16", "float32": "*fp32", "float16": "*fp16", "int64": "*i64", "int32": "*i32"}
SHAPE_ARGS = {"T", "H", "B", "DK", "DV", "NT", "L", "NSEG", "TP", "NCHUNK", "BK", "LOG2C", "SUB", "LIMIT"}


def record(d: int, path: str) -> None:
    """Run every operator's forward+backward (bf16 and fp32, T 200) in the interpreter; save the launches."""
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
    for op in testing.OPS:
        for dtype in (torch.bfloat16, torch.float32):
            a = testing.make_inputs(op, 1, 200, 1, d, d, dtype=dtype, seed=1)
            s0 = testing.random_state(1, 1, d, d)

            def ours(initial_state=None, op=op, **x):
                return testing.DISPATCH[op](**x, initial_state=initial_state, output_final_state=True,
                                            backend="triton")
            testing.grads(ours, a, s0, seed=1)
    with open(path, "w") as f:
        json.dump([list(k) for k in seen], f)


def compile_all(path: str, modules: list[str]) -> None:
    """Compile each recorded launch of `modules` for sm_90; one line per launch."""
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas-blackwell")
    with open(path) as f:
        launches = json.load(f)
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
            print(f"FAILED {label}: {str(e).splitlines()[-1] if str(e) else repr(e)}", flush=True)
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
            f.write(kernel.asm["ptx"])
        info = subprocess.run([ptxas, "-v", "--gpu-name", "sm_90a", f.name, "-o", os.devnull],
                              capture_output=True, text=True).stderr
        os.unlink(f.name)
        spill = re.findall(r"(\d+) bytes spill stores", info)
        regs = re.findall(r"Used (\d+) registers", info)
        print(f"{label} spill {spill[0] if spill else '?'} B regs {regs[0] if regs else '?'} "
              f"smem {kernel.metadata.shared}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", nargs="+", type=int, default=[64, 128], help="head dims (Dk = Dv)")
    p.add_argument("--modules", nargs="*", default=["diagonal_bwd", "delta_bwd", "rwkv7_bwd"],
                   help="kernels/triton modules to compile (none: every recorded launch)")
    p.add_argument("--phase", choices=["record", "compile"], help=argparse.SUPPRESS)
    p.add_argument("--launches", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase == "record":
        return record(args.d[0], args.launches)
    if args.phase == "compile":
        return compile_all(args.launches, args.modules)
    for d in args.d:
        print(f"# D = {d}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            launches = os.path.join(tmp, "launches.json")
            env = {**os.environ, "TRITON_INTERPRET": "1"}
            subprocess.run([sys.executable, __file__, "--phase", "record", "--d", str(d), "--launches", launches],
                           env=env, check=True, stderr=subprocess.DEVNULL)
            env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
            env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
            subprocess.run([sys.executable, __file__, "--phase", "compile", "--launches", launches,
                            "--modules", *args.modules], env=env, check=True)


if __name__ == "__main__":
    main()
