"""The Triton backwards' gradient errors as the GPU's dot rounding makes them, measured on a CPU.

Runs each operator's backward in Triton's interpreter with `gpu_dot_rounding` (tf32 / bf16 dot inputs
as the tensor cores round them) against autograd through the float64 reference, at the GPU test's
shape (or a smaller one), with the H200's segment plan (132 SMs). Prints rel err per gradient and
the issue's threshold (fp32/tf32 5e-3, bf16 2e-2). Slow (interpreter): minutes per operator at T 1000.

  TRITON_INTERPRET=1 python benchmarks/grad_precision.py --ops gla rwkv6 --t 1000 --d 128
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
import triton  # noqa: E402
from pytest_goni.kernels import testing  # noqa: E402
from pytest_goni.kernels.triton import gpu_dots, segments  # noqa: E402

TOL = {"bf16": 2e-2, "fp32": 5e-3}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def measure(op: str, dtype: str, b: int, t: int, h: int, d: int, tf32: str, emulate: bool = True,
            ref_cache: dict | None = None) -> dict[str, float]:
    """{gradient name: rel err} of the Triton backward (interpreted, GPU dot rounding) at one shape.

    As the GPU test (`test_gpu_grads_model_shapes`): bf16 values held in float32, one float64
    reference per op for both dtypes (cached in `ref_cache`), seeds 65 / 6."""
    a = testing.make_inputs(op, b, t, h, d, d, seed=65)
    a = {n: x.bfloat16().float() for n, x in a.items()}
    s0 = testing.random_state(b, h, d, d)

    def ours(initial_state=None, **x):
        return testing.DISPATCH[op](**x, initial_state=initial_state, output_final_state=True, backend="triton")

    def ref(initial_state=None, **x):
        return testing.REFERENCE[op](**{n: y.double() for n, y in x.items()}, initial_state=initial_state.double())

    key = (op, b, t, h, d)
    if ref_cache is not None and key in ref_cache:
        expected = ref_cache[key]
    else:
        expected = testing.grads(ref, a, s0, seed=6)
        if ref_cache is not None:
            ref_cache[key] = expected
    with gpu_dots.gpu_dot_rounding(tf32) if emulate else _nothing():
        got = testing.grads(ours, {n: x.to(DTYPES[dtype]) for n, x in a.items()}, s0, seed=6)
    return {n: testing.rel_err(got[n], expected[n]) for n in got}


def _commit() -> str:
    sha = os.environ.get("GONI_GIT_COMMIT")
    if sha:
        return sha
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", nargs="+", default=list(testing.OPS))
    p.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=list(DTYPES))
    p.add_argument("--b", type=int, default=1)
    p.add_argument("--t", type=int, default=1000)
    p.add_argument("--h", type=int, default=1)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--sms", type=int, default=132, help="SMs of the emulated GPU (segment plan); H200: 132")
    p.add_argument("--tf32", default="trunc", choices=["trunc", "rne"])
    p.add_argument("--exact", action="store_true", help="no GPU rounding (the interpreter's exact fp32 dots)")
    p.add_argument("--jsonl", help="append one line per case here")
    args = p.parse_args()
    segments._sms.cache_clear()
    segments._sms = lambda device_type, index: args.sms  # noqa: E731 - the emulated GPU's segment plan
    torch.set_num_threads(1)
    cache: dict = {}
    for op in args.ops:
        for dt in args.dtypes:
            t0 = time.perf_counter()
            errs = measure(op, dt, args.b, args.t, args.h, args.d, args.tf32, not args.exact, cache)
            worst = max((e, n) for n, e in errs.items() if n != "o")
            ok = "ok  " if worst[0] <= TOL[dt] else "FAIL"
            detail = " ".join(f"{n}={e:.2e}" for n, e in errs.items())
            print(f"{ok} {op:17s} {dt} worst {worst[1]}={worst[0]:.2e} (tol {TOL[dt]}) | {detail} "
                  f"[{time.perf_counter() - t0:.0f} s]", flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(dict(
                        date=time.strftime("%Y-%m-%d"), device="cpu: Triton interpreter, GPU tl.dot rounding emulated",
                        torch=torch.__version__, triton=triton.__version__, commit=_commit(),
                        command="python " + " ".join(sys.argv), op=op, dtype=dt, b=args.b, t=args.t, h=args.h,
                        d=args.d, tf32=args.tf32, emulated=not args.exact, sms=args.sms, errors=errs)) + "\n")


if __name__ == "__main__":
    main()
