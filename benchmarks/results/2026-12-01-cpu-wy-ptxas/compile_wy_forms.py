"""ptxas (sm_90a) registers and spill of `_wy_kernel` forms, D 64, 8 warps, bf16 and float32 inputs, chunks 32/64.

    git show 36f2a6b:kernels/triton/wy.py > kernels/triton/_wy_36f2a6b.py   # the Neumann product, fast 2026-11-30
    PYTHONPATH=/tmp/t36 python compile_wy_forms.py pytest_goni.kernels.triton._wy_36f2a6b pytest_goni.kernels.triton.wy
    rm kernels/triton/_wy_36f2a6b.py
BV=128 in the environment: the value width of gated-deltanet 8M (expand_v 2: Dv 128). Current `wy` is compiled with MASK_RESULT off (masks on A, 40c0c90..5cdbdaa) and on (this change).
"""
import importlib
import os
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))  # benchmarks/
from compile_sm90 import ptxas_usage  # noqa: E402

print("# triton", triton.__version__)
for modname in sys.argv[1:]:
    fn = importlib.import_module(modname)._wy_kernel
    has_mask = any(p.name == "MASK_RESULT" for p in fn.params)
    for mask in (False, True) if has_mask else (None,):
        for dt, prec in (("bf16", "tf32"), ("fp32", "tf32x3")):
            for c in (32, 64):
                cv = {"C": c, "LOG2C": c.bit_length() - 1, "BK": 64, "BV": int(os.environ.get("BV", 64)), "HAS_G": True, "PRECISION": prec,
                      "INV_PRECISION": prec, "STORE_ATT": False, "MASK_RESULT": mask}
                types, consts = {}, {}
                for i, p in enumerate(fn.params):
                    if p.name in cv:
                        types[p.name], consts[(i,)] = "constexpr", cv[p.name]
                    elif p.name.endswith("_ptr"):
                        types[p.name] = f"*{dt}" if p.name not in ("g_ptr",) else "*fp32"
                    else:
                        types[p.name] = "i32"
                k = triton.compile(ASTSource(fn=fn, signature=types, constexprs=consts),
                                   target=GPUTarget("cuda", 90, 32), options={"num_warps": 8})
                regs, spill = ptxas_usage(k)
                print(f"{modname.split('.')[-1]:12s} mask_result={mask!s:5} {dt} C{c} gated: regs {regs} "
                      f"spill {spill} B smem {k.metadata.shared}", flush=True)
