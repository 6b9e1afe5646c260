"""Model benchmark: every backend at the 125M class, bf16, batch 1, on one GPU, each number with its floor.

    source benchmarks/device_env.sh && python3 benchmarks/models.py --quick --out $OUT/models.jsonl
    python benchmarks/models.py --cpu-smoke --out /tmp/models.jsonl      # tiny sizes, CPU, seconds
    python benchmarks/models.py --render results/models-*.jsonl          # Markdown table of a run

Measures per backend (issue 14: inference as deployed):

- prefill at each length: ``model.prefill`` eagerly (last-position logits, as serving computes
  them) and replayed from a CUDA graph (`models.decoding.PrefillRunner`); the host time of an eager
  call (until it returns, before the GPU finishes) apart; peak memory;
- decode at each context: the kernel launches of one step (`models.launches`: torch.profiler's CUDA
  kernels on a GPU); one ``model.step`` eagerly, and the step captured in a CUDA graph with a
  static state (`models.decoding.StepRunner`: static KV cache for attention, fixed buffers for
  recurrent states) replayed per token; greedy generation of ``--generate`` tokens as one loop of
  replays (tokens/s);
- the floor of every point (`models.cost`: bytes and FLOPs counted) against this device's measured
  copy bandwidth and bf16 matmul rate (`measurements.roofline`), and each time's fraction of it;
- ``--reference``: the ~60-line static-cache graphed SDPA transformer of benchmarks/reference_decode.py
  at the decode contexts, side by side (the baseline recipe).

An OOM is a data point (``status: "oom"``, larger contexts of that backend are then skipped), any
other failure is recorded with its message and the run goes on. Every jsonl line carries date,
device, versions, the model config, the roofline and the exact command, written as soon as measured.

The 125M class: the V5 seed's 125M shape (12 layers, d_model 768, 12 heads, vocab 50257) for every
backend, except Mamba-2 with 24 mixer layers (no MLP: two mixers per Transformer block, as the
Mamba-2 paper's 130M model). Learned-position models get a position table long enough for the
longest context. ``--quick`` bounds the run to ``--budget-s``: each backend gets an equal share of
the time left when it starts; a measurement that would start past its share is skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from pytest_goni.models.cost import decode_cost, prefill_cost
from pytest_goni.models.decoding import PrefillRunner, StepRunner
from pytest_goni.models.fusion import decode_fusion
from pytest_goni.models.launches import count_launches, step_launches

from pytest_goni.errors import exception_note
from pytest_goni.registry import REGISTRIES, load_builtins, resolve_backend
from pytest_goni.report.results import git_commit as results_git_commit
from pytest_goni.timing import peak_memory, time_fn

CLASS_125M = {"size": "125M", "vocab_size": 50257}
#: --decode-fusion: the decode steps measured (models/fusion.py): (fused, fused GEMVs) of each
FUSION_FLAGS = {"default": (True, None), "unfused": (False, False), "fused": (True, False), "gemv": (True, True)}
DECODE_VARIANTS = {"on": ["default"], "off": ["unfused"], "both": ["unfused", "default"],
                   "all": ["unfused", "fused", "gemv"]}
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
    out["git"] = results_git_commit(Path(__file__).parent)[0] or "unknown"
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
                     "commit": results_git_commit(Path(__file__).parent)[0] or "unknown",
                     "command": " ".join(sys.argv), "dtype": args.dtype, "batch": 1,
                     "quick": bool(args.quick), "cpu_smoke": bool(args.cpu_smoke)}
        self.out = open(args.out, "a")  # noqa: SIM115 - closed in main()
        self.rows: list[dict[str, Any]] = []
        if args.quick or args.cpu_smoke:
            self.prefill_reps, self.prefill_warmup, self.decode_reps, self.decode_warmup = 3, 1, 10, 2
        else:
            self.prefill_reps, self.prefill_warmup, self.decode_reps, self.decode_warmup = 10, 2, 50, 5
        self.graph_reps = 5 * self.decode_reps
        self.bandwidth, self.flops = roofline(self.device)
        self.meta["roofline"] = {"copy_B_per_s": self.bandwidth, "bf16_matmul_flop_per_s": self.flops,
                                 "probe": "measurements.roofline.default_roofline (best of 10)"}

    def floor(self, cost: Any) -> dict[str, Any]:
        """The cost's counts, its floor time on this device and which ceiling sets it."""
        return {"flops": cost.flops, "bytes": cost.bytes, "floor_s": cost.floor_s(self.flops, self.bandwidth),
                "bound": cost.bound(self.flops, self.bandwidth)}

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


def roofline(device: str) -> tuple[float, float]:
    """(copy bytes/s, bf16 matmul FLOP/s) measured here; the CPU smoke run uses fixed stand-ins."""
    if not device.startswith("cuda"):
        return 1e10, 1e11  # the CPU smoke run checks the plumbing, not the CPU
    from pytest_goni.measurements.roofline import default_roofline

    roof = default_roofline(device, "bfloat16")
    return roof.bandwidth, roof.flops


def best_time(rec: dict[str, Any]) -> float:
    """The fastest way this point ran: graph replay where it ran, else eager."""
    return rec.get("graph_latency_s") or rec["latency_s"]


def _summary(rec: dict[str, Any]) -> str:
    if rec["status"] != "ok":
        return ""
    floor = f"floor {rec['floor_s'] * 1e3:.3f} ms ({rec['floor_s'] / best_time(rec):.0%})"
    if rec["phase"] == "prefill":
        g = f" graph {rec['graph_latency_s'] * 1e3:.2f} ms" if rec.get("graph_latency_s") else ""
        return (f"{rec['latency_s'] * 1e3:>9.2f} ms{g} host {rec['host_s'] * 1e3:.2f} ms  {floor}  "
                f"peak {rec['peak_mem_bytes'] / 2**20:,.0f} MiB")
    graph = rec.get("graph_latency_s")
    g = f"  graph {graph * 1e3:.3f} ms, {rec['generate_tok_s']:,.0f} tok/s" if graph else ""
    return f"{rec['latency_s'] * 1e3:>9.3f} ms/token{g}  {floor}  state {rec['state_bytes'] / 2**20:,.1f} MiB"


def is_oom(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in msg


def release(device: str) -> None:
    """Free what the last measurement left, so the next one starts from the weights alone."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _failure(exc: BaseException) -> tuple[str, str]:
    if is_oom(exc):
        return "oom", str(exc).splitlines()[0][:200] if str(exc) else "out of memory"
    return "error", exception_note(exc, 600)


def bench_backend(run: Run, name: str) -> None:
    args = run.args
    longest = (max(args.prefill + args.decode) + run.prefill_warmup + run.decode_reps + run.decode_warmup
               + run.graph_reps + args.generate + 512)
    cfg = model_config(name, args.cpu_smoke, longest)
    base = {"backend": name, "config": cfg}
    # decode first: under a time budget the per-token numbers are the ones not to lose
    variants = DECODE_VARIANTS[args.decode_fusion]
    measurements = ([("decode", t, v) for t in args.decode for v in variants]
                    + [("prefill", t, None) for t in args.prefill])

    def label(variant: str | None) -> dict[str, Any]:
        """Each decode variant but the default fused step is its own row when several are measured."""
        if variant is None:
            return {}
        fused, gemv = FUSION_FLAGS[variant]
        row = {} if variant in ("default", "gemv") or len(variants) == 1 else {"backend": f"{name} ({variant})"}
        return {"decode_fusion": fused, "decode_gemv": gemv, **row}

    if run.over_budget():
        for phase, t, variant in measurements:
            run.emit({**base, **label(variant), "phase": phase, "context": t, "status": "skipped",
                      "note": "time budget spent"})
        return
    try:
        t0 = time.perf_counter()
        model = resolve_backend(name)(**cfg).to(device=run.device, dtype=run.dtype).eval()
        build_s = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - a backend that cannot build is a data point too
        status, note = _failure(exc)
        for phase, t, variant in measurements:
            run.emit({**base, **label(variant), "phase": phase, "context": t, "status": status,
                      "note": f"build: {note}"})
        release(run.device)
        return
    base.update(params=model.num_params(), params_non_embedding=model.num_params(embedding=False),
                build_s=round(build_s, 3))
    vocab = cfg["vocab_size"]
    oom_at: int | None = None
    try:
        for phase, t, variant in measurements:
            rec = {**base, **label(variant), "phase": phase, "context": t}
            if oom_at is not None and t >= oom_at:
                run.emit({**rec, "status": "skipped", "note": f"OOM at {oom_at} tokens"})
                continue
            if run.over_budget():
                run.emit({**rec, "status": "skipped", "note": "time budget spent"})
                continue
            try:
                flags = FUSION_FLAGS[variant] if variant is not None else (True, None)
                with torch.inference_mode(), decode_fusion(*flags):
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


def host_time(run: Run, fn: Any, reps: int) -> list[float]:
    """Seconds until ``fn()`` returns with the GPU idle before it: the host's share of a call."""
    out = []
    for _ in range(reps):
        run.sync()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    run.sync()
    return out


def prefill(run: Run, model: torch.nn.Module, tokens: torch.Tensor) -> dict[str, Any]:
    t = tokens.shape[1]
    run.sync()
    t0 = time.perf_counter()
    _, state = model.prefill(tokens)
    run.sync()
    first = time.perf_counter() - t0
    out: dict[str, Any] = {"logits": "last", **run.floor(prefill_cost(model, state, 1, t))}
    del state
    samples = time_fn(lambda: model.prefill(tokens), run.device, warmup=run.prefill_warmup - 1,
                      reps=run.prefill_reps)
    host = host_time(run, lambda: model.prefill(tokens), run.prefill_reps)
    peak = peak_memory(lambda: model.prefill(tokens), run.device)
    median = statistics.median(samples)
    out.update({"tokens_per_s": t / median, "latency_s": median, "samples_s": samples, "first_call_s": first,
                "host_s": statistics.median(host), "host_samples_s": host, "peak_mem_bytes": peak,
                "graph_latency_s": None})
    if run.device.startswith("cuda") and not run.args.no_graph:
        release(run.device)
        runner = PrefillRunner(model, tokens)
        g = time_fn(runner, run.device, warmup=1, reps=run.prefill_reps)
        out.update({"graph_latency_s": statistics.median(g), "graph_samples_s": g,
                    "graph_host_s": statistics.median(host_time(run, runner, 3))})
        del runner
    out["floor_fraction"] = out["floor_s"] / best_time(out)
    return out


def decode(run: Run, model: torch.nn.Module, tokens: torch.Tensor) -> dict[str, Any]:
    _, state = model.prefill(tokens)
    out: dict[str, Any] = {"state_bytes": int(model.state_bytes(state)), **run.floor(decode_cost(model, state))}
    token = tokens[:, -1]
    launches = step_launches(model, token, state)  # one eager step on a copy of the state
    out.update({"launches": launches.launches, "launch_ops": dict(launches.by_op.most_common(12)),
                "launches_how": launches.how})
    box = {"state": state}

    def one_step() -> None:
        _, box["state"] = model.step(token, box["state"])

    out["peak_mem_bytes"] = peak_memory(one_step, run.device)  # also the first step (Triton JIT)
    samples = time_fn(one_step, run.device, warmup=run.decode_warmup, reps=run.decode_reps)
    out.update({"latency_s": statistics.median(samples), "samples_s": samples, "graph_latency_s": None,
                "host_s": statistics.median(host_time(run, one_step, 3))})
    if run.device.startswith("cuda") and not run.args.no_graph:
        n = run.args.generate
        runner = StepRunner(model, token, box["state"], greedy=True,
                            max_steps=run.decode_warmup + run.graph_reps + n + 1)
        g = time_fn(runner.step, run.device, warmup=run.decode_warmup, reps=run.graph_reps)
        run.sync()
        t0 = time.perf_counter()
        runner.generate(n)
        run.sync()
        gen = time.perf_counter() - t0
        out.update({"graph_latency_s": statistics.median(g), "graph_samples_s": g, "graph_note": runner.mode,
                    "generate_tokens": n, "generate_s": gen, "generate_tok_s": n / gen})
    out["floor_fraction"] = out["floor_s"] / best_time(out)
    return out


def bench_reference(run: Run) -> None:
    """The ~60-line static-cache graphed SDPA transformer (benchmarks/reference_decode.py) side by side."""
    from reference_decode import graphed_step

    cfg = {"d_model": 768, "n_layers": 12, "n_heads": 12, "vocab_size": 50257,
           "recipe": "benchmarks/reference_decode.py"}
    base = {"backend": "reference-sdpa-graph", "config": cfg}
    for t in run.args.decode:
        rec: dict[str, Any] = {**base, "phase": "decode", "context": t}
        try:
            replay, eager, model = graphed_step(t)
            d, layers, v = 768, 12, 50257
            params = sum(p.numel() for n, p in model.named_parameters() if n != "pos.weight")
            kv = 2 * layers * d * t * 2
            flops, moved = 2.0 * params + 2.0 * kv / 2, params * 2 + kv + v * 2
            rec.update({"params": params, "state_bytes": kv, "flops": flops, "bytes": moved,
                        "floor_s": max(flops / run.flops, moved / run.bandwidth), "bound": "memory"})
            e = time_fn(eager, run.device, warmup=2, reps=run.decode_reps)
            counted = count_launches(eager, run.device)  # what its graph replays, as for the backends
            rec.update({"launches": counted.launches, "launch_ops": dict(counted.by_op.most_common(12)),
                        "launches_how": counted.how})
            g = time_fn(replay, run.device, warmup=run.decode_warmup, reps=run.graph_reps)
            run.sync()
            t0 = time.perf_counter()
            for _ in range(run.args.generate):
                replay()
            run.sync()
            gen = time.perf_counter() - t0
            rec.update({"latency_s": statistics.median(e), "samples_s": e, "graph_latency_s": statistics.median(g),
                        "graph_samples_s": g, "graph_note": "cuda graph", "generate_tokens": run.args.generate,
                        "generate_s": gen, "generate_tok_s": run.args.generate / gen, "peak_mem_bytes": 0,
                        "host_s": 0.0, "status": "ok"})
            rec["floor_fraction"] = rec["floor_s"] / best_time(rec)
            del replay, eager, model
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            rec["status"], rec["note"] = _failure(exc)
        release(run.device)
        run.emit(rec)


def _rate(tok_s: float) -> str:
    if tok_s >= 1e6:
        return f"{tok_s / 1e6:.2f}M tok/s"
    return f"{tok_s / 1e3:.1f}K tok/s" if tok_s >= 1e4 else f"{tok_s:,.0f} tok/s"


def _ms(x: float) -> str:
    return f"{x * 1e3:.3f}" if x < 0.01 else f"{x * 1e3:.2f}" if x < 1 else f"{x * 1e3:,.0f}"


def _cell(rec: dict[str, Any]) -> str:
    """eager ms / graph ms (floor ms, graph's fraction of it), or the failure."""
    if rec["status"] != "ok":
        return rec["status"].upper() if rec["status"] == "oom" else rec["status"]
    text = _ms(rec["latency_s"])
    if rec.get("graph_latency_s"):
        text += f" / **{_ms(rec['graph_latency_s'])}**"
    if "floor_s" in rec:
        text += f" ({_ms(rec['floor_s'])}, {rec['floor_s'] / best_time(rec):.0%})"
    if rec["phase"] == "prefill" and "host_s" in rec:
        text += f", host {_ms(rec['host_s'])}"
    if rec.get("launches"):
        text += f", {rec['launches']} launches"
    return text


def render(paths: list[Path]) -> str:
    """Markdown tables (backend x context), one per phase, from jsonl runs; the last record of a cell wins.

    A cell reads "eager / **graph** (floor, floor / graph)", times in ms (prefill: + host time of
    an eager call; decode: + kernel launches of one step)."""
    cells: dict[str, dict[str, dict[int, str]]] = {}
    params: dict[str, int] = {}
    meta: dict[str, Any] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            meta = rec
            cells.setdefault(rec["phase"], {}).setdefault(rec["backend"], {})[rec["context"]] = _cell(rec)
            if "params" in rec:
                params[rec["backend"]] = rec["params"]
    roof = meta.get("roofline", {})
    lines = [f"{meta.get('device', '?')}, {meta.get('dtype', '?')}, batch 1, {meta.get('date', '?')}, "
             f"torch {meta.get('versions', {}).get('torch', '?')}"
             + (f"; measured copy {roof['copy_B_per_s'] / 1e12:.2f} TB/s, bf16 matmul "
                f"{roof['bf16_matmul_flop_per_s'] / 1e12:.0f} TFLOP/s" if roof else "")]
    for phase in ("decode", "prefill"):
        if phase not in cells:
            continue
        ctxs = sorted({t for row in cells[phase].values() for t in row})
        heads = [f"{phase} {t // 1024}k" if t >= 1024 else f"{phase} {t}" for t in ctxs]
        lines += ["", "| backend | params | " + " | ".join(heads) + " |", "|---|---:|" + "---:|" * len(ctxs)]
        for backend in sorted(cells[phase]):
            row = cells[phase][backend]
            lines.append(f"| {backend} | {params.get(backend, 0) / 1e6:.1f}M | "
                         + " | ".join(row.get(t, "") for t in ctxs) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="jsonl file to append results to")
    p.add_argument("--render", nargs="+", type=Path, help="print a Markdown table of these jsonl files")
    p.add_argument("--backends", help="comma-separated backends (default: every registered one)")
    p.add_argument("--prefill", type=int, nargs="*",
                   help="prefill lengths (default 8192 32768 131072; the flag alone: none, decode only)")
    p.add_argument("--decode", type=int, nargs="+", help="decode contexts (default 1024 32768)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--quick", action="store_true", help="fewer repetitions, bounded by --budget-s")
    p.add_argument("--budget-s", type=float, help="stop starting measurements after this (quick: 270)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny models on the CPU: checks the script runs")
    p.add_argument("--no-graph", action="store_true", help="skip the CUDA-graph timings")
    p.add_argument("--decode-fusion", choices=list(DECODE_VARIANTS), default="on",
                   help="the decode step as models/fusion.py makes it by default (on), unfused (off), both "
                        "(the unfused as its own row '<backend> (unfused)'), or all three: unfused, fused "
                        "without the GEMVs ('<backend> (fused)') and with them ('<backend>': the default); "
                        "side by side")
    p.add_argument("--generate", type=int, default=256, help="greedy tokens generated as one loop of replays")
    p.add_argument("--reference", action="store_true",
                   help="also time benchmarks/reference_decode.py (the static-cache graphed SDPA recipe)")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of failed measurements")
    args = p.parse_args(argv)
    if args.render:
        return args
    if not args.out:
        p.error("--out is required (or --render FILES)")
    smoke = args.cpu_smoke
    if args.prefill is None:
        args.prefill = [32, 64, 96] if smoke else [8192, 32768, 131072]
    args.decode = args.decode or ([32, 96] if smoke else [8192, 32768, 131072])
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
        if args.reference and run.device.startswith("cuda"):
            sys.path.insert(0, str(Path(__file__).parent))
            bench_reference(run)
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
