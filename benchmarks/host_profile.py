"""Where the host time of one forward call goes: cProfile over repeated dispatcher calls.

    python benchmarks/host_profile.py --op simple_gla --T 2048 [--calls 200]

At short sequences the GPU work takes tens of microseconds, so Python-side work (input checks,
allocation, Triton's launcher) decides the wall time; this prints the functions that cost most.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

import torch
from pytest_goni.kernels.testing import DISPATCH, make_inputs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--op", default="simple_gla", choices=sorted(DISPATCH))
    p.add_argument("--T", type=int, default=2048)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--top", type=int, default=18)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA device", file=sys.stderr)
        return 2
    args = make_inputs(a.op, 1, a.T, 16, 128, 128, dtype=torch.bfloat16, device="cuda", seed=1)
    fn = DISPATCH[a.op]
    for _ in range(5):
        fn(**args, backend="triton")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.calls):
        fn(**args, backend="triton")
    host = (time.perf_counter() - t0) / a.calls * 1e6
    torch.cuda.synchronize()
    print(f"{a.op} T={a.T}: {host:.1f} us host time per call (no profiler)")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(a.calls):
        fn(**args, backend="triton")
    prof.disable()
    torch.cuda.synchronize()
    pstats.Stats(prof).sort_stats("tottime").print_stats(a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
