"""Model benchmark: every backend at the 125M class, bf16, batch 1, on one GPU.

    source benchmarks/device_env.sh && python3 benchmarks/models.py --quick --out $OUT/models.jsonl
    python benchmarks/models.py --cpu-smoke --out /tmp/models.jsonl      # tiny sizes, CPU, seconds
    python benchmarks/models.py --render results/models-*.jsonl          # Markdown table of a run

Measures per backend: prefill tokens/s at 1k, 8k and 32k tokens (``model.prefill``, the full
contract call: logits for every position and the decode state), and per-token decode latency
(``model.step``) at 1k and 32k tokens of context, eager and, where the state has a fixed shape,
replayed from a CUDA graph; peak memory of each (the allocator's high-water mark above what was
allocated before the call: weights excluded, the decode state included for decode). An OOM is a
data point (``status: "oom"``, larger contexts of that backend are then skipped), any other
failure is recorded with its message and the run goes on. Every jsonl line carries date, device,
versions, the model config and the exact command, and is written as soon as it is measured.

The 125M class: the V5 seed's 125M shape (12 layers, d_model 768, 12 heads, vocab 50257) for every
backend, except Mamba-2 with 24 mixer layers (it has no MLP: two mixers per Transformer block, as
the Mamba-2 paper's 130M model). Learned-position models get a position table long enough for the
longest context. ``--quick`` bounds the whole run to ``--budget-s`` (default 270 s): fewer
repetitions, each backend gets an equal share of the time left when it starts, and a measurement
that would start past its backend's share is recorded as skipped (a running one is not cut).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from pytest_goni.registry import REGISTRIES, load_builtins, resolve_backend
from pytest_goni.timing import peak_memory, time_fn

CLASS_125M = {"size": "125M", "vocab_size": 50257}
PER_BACKEND = {"mamba2": {"n_layers": 24}}
LEARNED_POSITIONS = {"gpt2", "transformer-vanilla"}
TINY = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": str(torch.version.cuda)}
    for mod in ("triton", "transformers"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception as exc:  # noqa: BLE001 - report what is missing instead of failing
            out[mod] = f"unavailable: {type(exc).__name__}"
    try:
        out["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    timeout=5, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001
        out["git"] = "unknown"
    return out


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def model_config(name: str, smoke: bool, longest: int) -> dict[str, Any]:
    cfg = dict(TINY) if smoke else {**CLASS_125M, **PER_BACKEND.get(name, {})}
    if name in LEARNED_POSITIONS:
        cfg["max_seq_len"] = longest
    return cfg


class Run:
    """One benchmark run: settings, the output file, the budget clock, and the table rows."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = "cpu" if args.cpu_smoke else args.device
        self.dtype = getattr(torch, args.dtype)
        self.deadline = time.monotonic() + args.budget_s if args.budget_s else float("inf")
        self.backend_deadline = self.deadline
        self.meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "device": device_name(self.device), "versions": versions(),
                     "command": " ".join(sys.argv), "dtype": args.dtype, "batch": 1,
                     "quick": bool(args.quick), "cpu_smoke": bool(args.cpu_smoke)}
        self.out = open(args.out, "a")  # noqa: SIM115 - closed in main()
        self.rows: list[dict[str, Any]] = []
        if args.quick or args.cpu_smoke:
            self.prefill_reps, self.prefill_warmup, self.decode_reps, self.decode_warmup = 3, 1, 10, 2
        else:
            self.prefill_reps, self.prefill_warmup, self.decode_reps, self.decode_warmup = 10, 2, 50, 5

    def emit(self, rec: dict[str, Any]) -> None:
        rec = {**self.meta, **rec}
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()
        self.rows.append(rec)
        status = rec["status"] if rec["status"] == "ok" else f"{rec['status']}: {rec.get('note', '')}"
        print(f"{rec['backend']:>20} {rec['phase']:>7} {rec['context']:>6}  {_summary(rec)}  [{status}]",
              flush=True)

    def over_budget(self) -> bool:
        return time.monotonic() > min(self.deadline, self.backend_deadline)

    def share(self, backends_left: int) -> None:
        """Give the next backend an equal share of what is left, so a slow one cannot starve the
        rest; time a backend leaves unused goes to those after it."""
        left = self.deadline - time.monotonic()
        self.backend_deadline = time.monotonic() + left / max(1, backends_left)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)


def _summary(rec: dict[str, Any]) -> str:
    if rec["status"] != "ok":
        return ""
    if rec["phase"] == "prefill":
        return f"{rec['tokens_per_s']:>12,.0f} tok/s  peak {rec['peak_mem_bytes'] / 2**20:>9,.1f} MiB"
    graph = rec.get("graph_latency_s")
    g = f"  graph {graph * 1e3:.3f} ms" if graph else ""
    return f"{rec['latency_s'] * 1e3:>9.3f} ms/token{g}  state {rec['state_bytes'] / 2**20:,.1f} MiB"


def is_oom(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in msg


def release(device: str) -> None:
    """Free what the last measurement left, so the next one starts from the weights alone."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def tensor_leaves(state: Any) -> list[torch.Tensor] | None:
    """The tensors of a state made of dicts/lists/tuples (Python scalars skipped), or None when it
    holds another object (a KV cache), which a CUDA graph cannot carry from step to step."""
    if isinstance(state, torch.Tensor):
        return [state]
    if state is None or isinstance(state, (int, float, bool)):
        return []
    if isinstance(state, (dict, list, tuple)):
        out: list[torch.Tensor] = []
        for v in state.values() if isinstance(state, dict) else state:
            sub = tensor_leaves(v)
            if sub is None:
                return None
            out.extend(sub)
        return out
    return None


def graph_step(model: torch.nn.Module, token: torch.Tensor, state: Any) -> tuple[Any, str]:
    """A CUDA-graph replay of one step that writes the new state into the old state's buffers.

    Returns (replay function or None, why). Checked: a replay gives the eager step's logits."""
    leaves = tensor_leaves(state)
    if leaves is None:
        return None, "eager only: the state is a growing KV cache"
    _, probe = model.step(token, state)
    if [t.shape for t in tensor_leaves(probe) or []] != [t.shape for t in leaves]:
        return None, "eager only: the state changes shape per step"
    saved = [t.clone() for t in leaves]
    ref, _ = model.step(token, state)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            model.step(token, state)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        logits, new = model.step(token, state)
        for dst, src in zip(leaves, tensor_leaves(new)):
            dst.copy_(src)
    for dst, src in zip(leaves, saved):
        dst.copy_(src)
    graph.replay()
    torch.cuda.synchronize()
    if not torch.allclose(logits.float(), ref.float(), rtol=2e-2, atol=2e-2):
        return None, "eager only: the graph replay disagreed with the eager step"
    return graph.replay, "cuda graph"


def _failure(exc: BaseException) -> tuple[str, str]:
    if is_oom(exc):
        return "oom", str(exc).splitlines()[0][:200] if str(exc) else "out of memory"
    return "error", f"{type(exc).__name__}: {str(exc)[:300]}"


def bench_backend(run: Run, name: str) -> None:
    args = run.args
    longest = max(args.prefill + args.decode) + run.prefill_warmup + run.decode_reps + run.decode_warmup + 64
    cfg = model_config(name, args.cpu_smoke, longest)
    base = {"backend": name, "config": cfg}
    measurements = [("prefill", t) for t in args.prefill] + [("decode", t) for t in args.decode]
    if run.over_budget():
        for phase, t in measurements:
            run.emit({**base, "phase": phase, "context": t, "status": "skipped", "note": "time budget spent"})
        return
    try:
        t0 = time.perf_counter()
        model = resolve_backend(name)(**cfg).to(device=run.device, dtype=run.dtype).eval()
        build_s = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - a backend that cannot build is a data point too
        status, note = _failure(exc)
        for phase, t in measurements:
            run.emit({**base, "phase": phase, "context": t, "status": status, "note": f"build: {note}"})
        release(run.device)
        return
    base.update(params=model.num_params(), params_non_embedding=model.num_params(embedding=False),
                build_s=round(build_s, 3))
    vocab = cfg["vocab_size"]
    oom_at: int | None = None
    try:
        for phase, t in measurements:
            rec = {**base, "phase": phase, "context": t}
            if oom_at is not None and t >= oom_at:
                run.emit({**rec, "status": "skipped", "note": f"OOM at {oom_at} tokens"})
                continue
            if run.over_budget():
                run.emit({**rec, "status": "skipped", "note": "time budget spent"})
                continue
            try:
                with torch.inference_mode():
                    tokens = torch.randint(0, vocab, (1, t), generator=torch.Generator().manual_seed(t))
                    tokens = tokens.to(run.device)
                    rec.update(prefill(run, model, tokens) if phase == "prefill" else decode(run, model, tokens))
                rec["status"] = "ok"
            except Exception as exc:  # noqa: BLE001 - OOM and errors are recorded, the run goes on
                rec["status"], rec["note"] = _failure(exc)
                if rec["status"] == "oom":
                    oom_at = t if oom_at is None else min(oom_at, t)
                elif args.verbose:
                    traceback.print_exc()
            finally:
                release(run.device)
            run.emit(rec)
    finally:
        del model
        release(run.device)


def prefill(run: Run, model: torch.nn.Module, tokens: torch.Tensor) -> dict[str, Any]:
    t = tokens.shape[1]
    run.sync()
    t0 = time.perf_counter()
    model.prefill(tokens)
    run.sync()
    first = time.perf_counter() - t0
    samples = time_fn(lambda: model.prefill(tokens), run.device, warmup=run.prefill_warmup - 1,
                      reps=run.prefill_reps)
    peak = peak_memory(lambda: model.prefill(tokens), run.device)
    median = statistics.median(samples)
    return {"tokens_per_s": t / median, "latency_s": median, "samples_s": samples, "first_call_s": first,
            "peak_mem_bytes": peak}


def decode(run: Run, model: torch.nn.Module, tokens: torch.Tensor) -> dict[str, Any]:
    _, state = model.prefill(tokens)
    token = tokens[:, -1]
    box = {"state": state}

    def one_step() -> None:
        _, box["state"] = model.step(token, box["state"])

    peak = peak_memory(one_step, run.device)  # also the first step (JIT of the step kernels)
    samples = time_fn(one_step, run.device, warmup=run.decode_warmup, reps=run.decode_reps)
    out: dict[str, Any] = {"latency_s": statistics.median(samples), "samples_s": samples,
                           "state_bytes": int(model.state_bytes(box["state"])), "peak_mem_bytes": peak,
                           "graph_latency_s": None}
    if run.device.startswith("cuda") and not run.args.no_graph:
        try:
            replay, out["graph_note"] = graph_step(model, token, box["state"])
        except Exception as exc:  # noqa: BLE001 - a capture failure leaves the eager number standing
            if is_oom(exc):
                raise
            replay, out["graph_note"] = None, f"eager only: capture failed ({type(exc).__name__}: {exc})"[:300]
        if replay is not None:
            g = time_fn(replay, run.device, warmup=run.decode_warmup, reps=run.decode_reps)
            out["graph_latency_s"], out["graph_samples_s"] = statistics.median(g), g
    return out


def _rate(tok_s: float) -> str:
    if tok_s >= 1e6:
        return f"{tok_s / 1e6:.2f}M tok/s"
    return f"{tok_s / 1e3:.1f}K tok/s" if tok_s >= 1e4 else f"{tok_s:,.0f} tok/s"


def render(paths: list[Path]) -> str:
    """A Markdown table (backend x measurement) from jsonl runs; the last record of a cell wins."""
    cells: dict[str, dict[str, str]] = {}
    params: dict[str, int] = {}
    meta: dict[str, Any] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            meta = rec
            key = f"{rec['phase']} {rec['context'] // 1024}k" if rec["context"] >= 1024 else \
                f"{rec['phase']} {rec['context']}"
            if rec["status"] != "ok":
                text = rec["status"].upper() if rec["status"] == "oom" else rec["status"]
            elif rec["phase"] == "prefill":
                text = f"{_rate(rec['tokens_per_s'])}, {rec['peak_mem_bytes'] / 2**30:.2f} GiB"
            else:
                text = f"{rec['latency_s'] * 1e3:.2f} ms"
                if rec.get("graph_latency_s"):
                    text += f" ({rec['graph_latency_s'] * 1e3:.2f} graph)"
                text += f", state {rec['state_bytes'] / 2**20:,.1f} MiB"
            cells.setdefault(rec["backend"], {})[key] = text
            if "params" in rec:
                params[rec["backend"]] = rec["params"]
    cols = sorted({k for row in cells.values() for k in row},
                  key=lambda k: (k.split()[0] != "prefill", int(k.split()[1].rstrip("k"))))
    lines = [f"{meta.get('device', '?')}, {meta.get('dtype', '?')}, batch 1, {meta.get('date', '?')}, "
             f"torch {meta.get('versions', {}).get('torch', '?')}", "",
             "| backend | params | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for backend in sorted(cells):
        row = cells[backend]
        lines.append(f"| {backend} | {params.get(backend, 0) / 1e6:.1f}M | "
                     + " | ".join(row.get(c, "") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="jsonl file to append results to")
    p.add_argument("--render", nargs="+", type=Path, help="print a Markdown table of these jsonl files")
    p.add_argument("--backends", help="comma-separated backends (default: every registered one)")
    p.add_argument("--prefill", type=int, nargs="+", help="prefill lengths (default 1024 8192 32768)")
    p.add_argument("--decode", type=int, nargs="+", help="decode contexts (default 1024 32768)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--quick", action="store_true", help="fewer repetitions, bounded by --budget-s")
    p.add_argument("--budget-s", type=float, help="stop starting measurements after this (quick: 270)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny models on the CPU: checks the script runs")
    p.add_argument("--no-graph", action="store_true", help="skip the CUDA-graph decode timing")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of failed measurements")
    args = p.parse_args(argv)
    if args.render:
        return args
    if not args.out:
        p.error("--out is required (or --render FILES)")
    smoke = args.cpu_smoke
    args.prefill = args.prefill or ([32, 64, 96] if smoke else [1024, 8192, 32768])
    args.decode = args.decode or ([32, 96] if smoke else [1024, 32768])
    if args.budget_s is None and args.quick:
        args.budget_s = 270.0
    if not smoke and args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("no CUDA device here; use --cpu-smoke for a CPU check, or --device cpu")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        sys.stdout.write(render(args.render))
        return 0
    load_builtins()
    known = sorted(REGISTRIES.backends)
    names = args.backends.split(",") if args.backends else known
    unknown = [n for n in names if n not in REGISTRIES.backends]
    if unknown:
        print(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    if args.cpu_smoke:
        torch.set_num_threads(1)  # tiny models: one thread is as fast and fights no one
    run = Run(args)
    print(f"# {run.meta['device']} | {run.meta['versions']} | {args.dtype} | out: {args.out}", flush=True)
    try:
        for i, name in enumerate(names):
            run.share(len(names) - i)
            bench_backend(run, name)
    finally:
        run.out.close()
    print()
    print(render([Path(args.out)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
