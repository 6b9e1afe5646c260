"""Where the host time of one call goes: cProfile over repeated dispatcher calls, or a model's prefill.

    python benchmarks/host_profile.py --op simple_gla --T 2048 [--calls 200]
    python benchmarks/host_profile.py --model gla --T 1024 [--calls 20]      # 125M class, bf16, B=1
    python benchmarks/host_profile.py --model gated-deltanet --T 64 --tiny --device cpu   # plumbing

At short sequences the GPU work takes tens of microseconds (an op) or a few milliseconds (a model's
prefill), so Python-side work (input checks, segment plans, allocation, Triton's launcher) decides
the wall time; this prints the functions that cost most. A model's eager prefill returned after
5.5-40 ms at 1k on the H200 (2026-12-01) while its CUDA graph replayed in 1.4-4.6 ms: ``--model``
says where those milliseconds go.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from pytest_goni.kernels.testing import DISPATCH, make_inputs

#: the 125M class of benchmarks/models.py (mamba2 with 24 mixers there too)
CLASS_125M = {"size": "125M", "vocab_size": 50257}
PER_BACKEND = {"mamba2": {"n_layers": 24}}
TINY = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2}


def op_call(a: argparse.Namespace) -> Callable[[], Any]:
    args = make_inputs(a.op, 1, a.T, 16, 128, 128, dtype=torch.bfloat16, device=a.device, seed=1)
    fn = DISPATCH[a.op]
    return lambda: fn(**args, backend="triton")


def model_call(a: argparse.Namespace) -> Callable[[], Any]:
    from pytest_goni.registry import load_builtins, resolve_backend

    load_builtins()
    cfg: dict[str, Any] = dict(TINY) if a.tiny else {**CLASS_125M, **PER_BACKEND.get(a.model, {})}
    if a.model in ("gpt2", "transformer-vanilla"):
        cfg["max_seq_len"] = max(1024, a.T)
    dtype = torch.bfloat16 if a.device.startswith("cuda") else torch.float32
    model = resolve_backend(a.model)(**cfg).to(device=a.device, dtype=dtype).eval()
    tokens = torch.randint(0, cfg["vocab_size"], (1, a.T), generator=torch.Generator().manual_seed(0)).to(a.device)

    def call() -> Any:
        with torch.inference_mode():
            return model.prefill(tokens)
    return call


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--op", default="simple_gla", choices=sorted(DISPATCH))
    p.add_argument("--model", help="a backend: profile its prefill instead of one operator")
    p.add_argument("--T", type=int, default=2048)
    p.add_argument("--calls", type=int, default=None, help="default 200 for an op, 20 for a model")
    p.add_argument("--top", type=int, default=18)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a tiny model (with --model): checks the plumbing")
    a = p.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("needs a CUDA device (or --device cpu)", file=sys.stderr)
        return 2
    calls = a.calls or (20 if a.model else 200)
    fn = model_call(a) if a.model else op_call(a)
    what = f"{a.model} prefill" if a.model else a.op
    for _ in range(3 if a.model else 5):
        fn()
    host = []
    for _ in range(calls):  # the GPU idle before each call: its host time alone, as models.py measures it
        sync(a.device)
        t0 = time.perf_counter()
        fn()
        host.append(time.perf_counter() - t0)
    sync(a.device)
    host.sort()
    print(f"{what} T={a.T}: {host[len(host) // 2] * 1e6:.1f} us host time per call, median of {calls} "
          "(no profiler)")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    sync(a.device)
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(a.top)
    stats.sort_stats("cumulative").print_stats(a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
