"""Training benchmark: every backend, every size preset, eager and compiled, through training.train.

    source benchmarks/device_env.sh && python3 benchmarks/training.py --out $OUT/training.jsonl
    python3 benchmarks/training.py --device cuda:1 --modes compiled --backends gpt2 --sizes 8M 125M ...
    python3 benchmarks/training.py --ddp-check --out $OUT/ddp.jsonl       # 1 GPU vs 2 GPUs, same batch
    python benchmarks/training.py --cpu-smoke --out /tmp/training.jsonl   # tiny, CPU, seconds
    python benchmarks/training.py --render results/training-*.jsonl      # Markdown tables

What a row measures: ``pytest_goni.training.train`` itself (bf16 autocast, fused AdamW, chunked
head loss, losses read once at the end) on B x T tokens of GPT-2's 50,257-token vocabulary, for
``--warmup`` untimed steps (compilation, Triton JIT, allocator warm-up: reported as
``first_steps_s``, never inside tokens/s) then ``--steps`` timed steps. MFU is 6 N tokens/s over the
bf16 matmul rate measured at the start of the same run (N = all parameters, tied head counted once,
as the issue's table counts; attention's own T-dependent FLOPs are left out, which understates
attention models at T=4096). The data is an order-1 Markov stream (each token has 4 likely
successors), so losses fall and a run that learns nothing shows it.

Modes: ``eager`` is ``train(..., compile=False)`` (the eager chunked loss, its Triton chunk kernel on
CUDA); ``compiled`` is ``train(..., compile=True)`` with the loop's default loss for a compiled run:
features, head and chunked cross-entropy compiled as one graph (``compile_loss``). Each row's
``config["loss"]`` says which loss ran (``TrainResult.loss``: after a compile failure, the eager
fallback's). ``--short-conv conv1d|shifted|triton`` sets ShortConv's parallel form
(``models.layers.SHORT_CONV_FORM``) for the run; every row records it (``short_conv``) and the table
marks the rows of the backends it changes.

``--ddp-check`` trains one model on 1 GPU and on 2 GPUs (DDP, same seed, same global batch and
order) and records both loss curves, their largest difference, and the tokens/s ratio. Under
torchrun (``WORLD_SIZE`` > 1) the ordinary benchmark runs data-parallel over the launched group
(multi-node: docs/CONTRACTS.md) and rank 0 writes the rows.

An OOM or any other failure is a row (``status``; ``note``: the message, its end kept when long, as
a Triton compile error's source line and error come last; printed in full in the log), and the run
goes on; ``--budget-s`` skips the configurations that would start past the deadline (recorded as
skipped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytest_goni.models import builtin_backends

from pytest_goni.distributed import NVLS_OFF, launched_by_torchrun
from pytest_goni.errors import exception_note, one_line
from pytest_goni.lm_data import WindowBatches
from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.report.results import git_commit as results_git_commit
from pytest_goni.training import OptimConfig, train

SIZES = ("8M", "30M", "125M")
ONLY_GPT2 = {"125M"}  # the 125M rung is GPT-2's (the MFU target); other backends stop at 30M
LEARNED_POSITIONS = {"gpt2", "transformer-vanilla"}
SHORT_CONV_BACKENDS = {"deltanet", "gated-deltanet", "mamba2", "groundthink"}  # the rows --short-conv changes
SKIP_BY_DEFAULT = {"transformer-vanilla"}  # GPT-2 is the learned-position transformer measured
VOCAB = 50257
TINY = {"vocab_size": 256, "d_model": 32, "n_layers": 2, "n_heads": 2}


def git_commit() -> str:
    return results_git_commit(Path(__file__).parent)[0] or "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": str(torch.version.cuda)}
    for mod in ("triton", "transformers"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception as exc:  # noqa: BLE001 - report what is missing instead of failing
            out[mod] = f"unavailable: {type(exc).__name__}"
    return out


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def matmul_rate(device: str, n: int = 8192, reps: int = 10) -> float:
    """bf16 n^3 matmul FLOP/s on random data (mean of ``reps`` after 3 warm-ups): the MFU ceiling."""
    if not device.startswith("cuda"):
        n, reps = 512, 3
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def markov_tokens(n: int, vocab: int, seed: int = 0, branching: int = 4) -> torch.Tensor:
    """An order-1 Markov stream: each token is followed by one of ``branching`` fixed successors
    (probabilities 0.55/0.25/0.12/0.08 for 4): loss can fall from ln(vocab) to about 1.1 nats."""
    rng = np.random.default_rng(seed)
    succ = rng.integers(0, vocab, size=(vocab, branching))
    probs = np.array([0.55, 0.25, 0.12, 0.08][:branching])
    probs = probs / probs.sum()
    choice = rng.choice(branching, size=n, p=probs).tolist()
    table = succ.tolist()
    out = [0] * n
    for i in range(1, n):  # plain lists: about 0.5 s for 2M tokens
        out[i] = table[out[i - 1]][choice[i]]
    return torch.tensor(out, dtype=torch.long)


def model_config(name: str, size: str, seq: int, smoke: bool) -> dict[str, Any]:
    cfg: dict[str, Any] = dict(TINY) if smoke else {"size": size, "vocab_size": VOCAB}
    if name in LEARNED_POSITIONS:
        cfg["max_seq_len"] = max(1024, seq)
    return cfg


class Bench:
    """One benchmark run: settings, the output file, the clock, the rows."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = "cpu" if args.cpu_smoke else args.device
        if self.device.startswith("cuda"):
            torch.cuda.set_device(torch.device(self.device))  # the kernels launch on the current device
        self.deadline = time.monotonic() + args.budget_s if args.budget_s else float("inf")
        self.rank0 = int(os.environ.get("RANK", "0")) == 0
        self.meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "device": device_name(self.device), "device_index": self.device,
                     "versions": versions(), "commit": git_commit(), "command": " ".join(sys.argv),
                     "batch": args.batch, "autocast": "bf16" if self.device.startswith("cuda") else "off",
                     "world_size": int(os.environ.get("WORLD_SIZE", "1")), "short_conv": short_conv_form()}
        self.out = open(args.out, "a") if self.rank0 else None  # noqa: SIM115 - closed in main()
        self.rows: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        self.meta["matmul_flops"] = matmul_rate(self.device)
        self.meta["matmul_probe_s"] = round(time.perf_counter() - t0, 2)
        n_tokens = 1 << 16 if args.cpu_smoke else 1 << 21
        self.ids = markov_tokens(n_tokens, TINY["vocab_size"] if args.cpu_smoke else VOCAB)

    def emit(self, rec: dict[str, Any]) -> None:
        rec = {**self.meta, **rec}
        self.rows.append(rec)
        if self.out is not None:
            self.out.write(json.dumps(rec) + "\n")
            self.out.flush()
            print(summary(rec), flush=True)


def short_conv_form() -> str:
    """ShortConv's parallel form the rows train with (deltanet, gated-deltanet, mamba2, groundthink)."""
    from pytest_goni.models import layers

    return layers.SHORT_CONV_FORM


def summary(r: dict[str, Any]) -> str:
    head = f"{r.get('backend', '?'):>15} {r.get('size', ''):>5} T={r.get('seq', ''):<5} {r.get('mode', ''):>8}"
    if r["status"] != "ok":  # a multi-line note (a Triton compile error: source, caret, error) in full below
        note = r.get("note", "")
        more = "".join(f"\n      | {line}" for line in note.splitlines()) if "\n" in note else ""
        return f"{head}  [{r['status']}: {one_line(note, 240)}]{more}"
    if r.get("mode") == "ddp-compare":
        return (f"{head} 2 GPUs / 1 GPU {r['speedup_2_vs_1']:.2f}x tok/s, max relative loss difference "
                f"{r['max_rel_loss_diff']:.2e}")
    return (f"{head} {r['tokens_per_s']:>12,.0f} tok/s  MFU {100 * r['mfu']:5.1f}%  "
            f"first {r['first_steps_s']:6.1f}s  loss {r['loss_first']:.2f}->{r['loss_last']:.2f}  "
            f"peak {r['peak_mem_bytes'] / 2**30:6.1f} GiB")


def bench_one(b: Bench, name: str, size: str, seq: int, mode: str) -> None:
    args = b.args
    world = b.meta["world_size"]
    base = {"backend": name, "size": size, "seq": seq, "mode": mode if world == 1 else f"{mode}, torchrun x{world}"}
    cfg = model_config(name, size, seq, args.cpu_smoke)
    if time.monotonic() > b.deadline:
        b.emit({**base, "status": "skipped", "config": cfg, "note": "past the run's budget"})
        return
    model = None
    try:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        model = resolve_backend(name)(**cfg).to(b.device)
        build_s = time.perf_counter() - t0
        n_params = model.num_params(embedding=True)
        batches = WindowBatches(b.ids, seq, args.batch, seed=0)
        if b.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(b.device)
        res = train(model, batches, args.warmup + args.steps, OptimConfig(lr=args.lr, warmup=0.1),
                    device=b.device, compile=mode == "compiled", untimed_steps=args.warmup, log_every=64)
        tok_s = res.tokens_per_second
        step_s = res.train_seconds / max(1, args.steps)
        b.emit({**base, "status": "ok", "config": {**cfg, "loss": res.loss, "forward": res.forward}, "params": n_params,
                "params_non_embedding": model.num_params(embedding=False), "build_s": round(build_s, 2),
                "tokens_per_s": tok_s, "step_s": step_s, "mfu": 6 * n_params * tok_s / b.meta["matmul_flops"],
                "first_steps_s": res.first_step_seconds, "warmup_steps": args.warmup, "timed_steps": args.steps,
                "compile_s_estimate": max(0.0, res.first_step_seconds - args.warmup * step_s),
                "compiled": res.compiled, "compile_error": res.compile_error,
                "loss_first": res.losses[0], "loss_last": res.losses[-1], "losses": res.losses,
                "diverged_at": next((i for i, v in enumerate(res.losses) if not math.isfinite(v)), None),
                "peak_mem_bytes": torch.cuda.max_memory_allocated(b.device) if b.device.startswith("cuda") else 0,
                "world_size": res.world_size})
    except Exception as exc:  # noqa: BLE001 - a failure is a row; the run goes on
        oom = isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
        b.emit({**base, "status": "oom" if oom else "error", "config": cfg,
                "note": exception_note(exc),
                "traceback": "" if oom else traceback.format_exc(limit=6)})
    finally:
        del model
        gc.collect()
        torch._dynamo.reset()  # each row compiles afresh: no recompile limit reached, no stale guards
        if b.device.startswith("cuda"):
            torch.cuda.empty_cache()


def ddp_check(b: Bench) -> None:
    """1 GPU vs 2 GPUs on the same model, seed, global batch and order: curves and tokens/s."""
    args = b.args
    name, size, seq = args.backends[0], args.sizes[0], args.seqs[0]
    cfg = model_config(name, size, seq, args.cpu_smoke)
    runs = {}
    for gpus in (1, 2):
        torch.manual_seed(0)
        model = resolve_backend(name)(**cfg).to(b.device)
        t0 = time.perf_counter()
        res = train(model, WindowBatches(b.ids, seq, args.batch, seed=0), args.warmup + args.steps,
                    OptimConfig(lr=args.lr, warmup=0.1), device=b.device, gpus=gpus, compile=False,
                    untimed_steps=args.warmup, log_every=16)
        runs[gpus] = res
        b.emit({"backend": name, "size": size, "seq": seq, "mode": f"ddp-{gpus}", "status": "ok",
                "config": cfg, "gpus": res.world_size, "devices": res.devices,
                "wall_s": time.perf_counter() - t0, "tokens_per_s": res.tokens_per_second,
                "mfu": 6 * model.num_params() * res.tokens_per_second / b.meta["matmul_flops"] / gpus,
                "first_steps_s": res.first_step_seconds, "losses": res.losses, "loss_first": res.losses[0],
                "loss_last": res.losses[-1], "peak_mem_bytes": 0, "global_batch": args.batch})
        del model
        gc.collect()
    one, two = runs[1].losses, runs[2].losses
    diffs = [abs(a - c) / abs(a) for a, c in zip(one, two)]
    b.emit({"backend": name, "size": size, "seq": seq, "mode": "ddp-compare", "status": "ok",
            "max_rel_loss_diff": max(diffs), "final_rel_loss_diff": diffs[-1],
            "speedup_2_vs_1": runs[2].tokens_per_second / runs[1].tokens_per_second,
            "steps": len(one), "global_batch": args.batch})


def render(paths: list[Path]) -> str:
    rows = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]
    ok = [r for r in rows if r["status"] == "ok" and not r.get("mode", "").startswith("ddp")]
    best: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in ok:
        if r.get("world_size", 1) > 1:
            continue  # a data-parallel row is no single-GPU reference
        key = (r["backend"], r["size"], r["seq"])
        if key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]:
            best[key] = r
    lines = ["| backend | size | T | mode | tok/s | MFU | x GPT-2 (best mode) | first steps (s) | peak GiB |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in sorted(ok, key=lambda r: (SIZES.index(r["size"]) if r["size"] in SIZES else 9, r["seq"],
                                       r["backend"], r["mode"])):
        ref = best.get(("gpt2", r["size"], r["seq"]))
        ratio = f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f}" if ref else "-"
        mode = r["mode"] if r["mode"] != "compiled" or r.get("compiled") else "compiled, fell back to eager"
        if r.get("short_conv", "conv1d") != "conv1d" and r["backend"] in SHORT_CONV_BACKENDS:
            mode += f", {r['short_conv']} short conv"
        if r.get("diverged_at") is not None:
            mode += f" (loss NaN at step {r['diverged_at']})"
        lines.append(f"| {r['backend']} | {r['size']} | {r['seq']} | {mode} | {r['tokens_per_s']:,.0f} | "
                     f"{100 * r['mfu']:.1f}% | {ratio} | {r['first_steps_s']:.1f} | "
                     f"{r['peak_mem_bytes'] / 2**30:.1f} |")
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['backend']} | {r.get('size', '')} | {r.get('seq', '')} | {r.get('mode', '')} | "
                         f"{r['status']}: {one_line(r.get('note', ''), 200).replace('|', '/')} | | | | |")
        elif r.get("mode") == "ddp-compare":
            lines.append(f"\nDDP {r['backend']} {r['size']} T={r['seq']} global batch {r['global_batch']}: "
                         f"2 GPUs / 1 GPU = {r['speedup_2_vs_1']:.2f}x tokens/s, max relative loss "
                         f"difference {r['max_rel_loss_diff']:.2e} over {r['steps']} steps")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="jsonl file to append rows to")
    p.add_argument("--render", nargs="+", type=Path, help="print Markdown tables of these jsonl files")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--backends", nargs="+", help="default: every built-in backend")
    p.add_argument("--sizes", nargs="+", default=["8M", "30M", "125M"], choices=SIZES)
    p.add_argument("--seqs", nargs="+", type=int, default=[1024, 4096])
    p.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (compile, JIT, warm-up)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--budget-s", type=float, default=0.0, help="skip configurations past this (0: no limit)")
    p.add_argument("--points", nargs="+", metavar="SIZE:T",
                   help="(size, T) points in this order, instead of every --sizes x --seqs")
    p.add_argument("--ddp-check", action="store_true", help="1 GPU vs 2 GPUs (first backend/size/seq)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny models on the CPU")
    p.add_argument("--short-conv", default=None, choices=["conv1d", "shifted", "triton"],
                   help="ShortConv's parallel form for every row (models.layers.SHORT_CONV_FORM; default: as is)")
    args = p.parse_args(argv)
    if not args.render and not args.out:
        p.error("--out is required (or --render FILES)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        sys.stdout.write(render(args.render))
        return 0
    os.environ.update(NVLS_OFF)
    load_builtins()
    if args.short_conv:
        from pytest_goni.models import layers

        layers.SHORT_CONV_FORM = args.short_conv
    if args.backends is None:
        args.backends = [n for n in builtin_backends() if n not in SKIP_BY_DEFAULT]
    if launched_by_torchrun():
        args.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    b = Bench(args)
    print(f"{b.meta['device']}: bf16 matmul {b.meta['matmul_flops'] / 1e12:.0f} TFLOP/s", flush=True)
    if args.ddp_check:
        ddp_check(b)
    else:
        points = ([(p.split(":")[0], int(p.split(":")[1])) for p in args.points] if args.points
                  else [(s, t) for s in args.sizes for t in args.seqs])
        plan = [(n, s, t, m) for s, t in points for n in args.backends for m in args.modes
                if n == "gpt2" or s not in ONLY_GPT2]
        for name, size, seq, mode in plan:
            bench_one(b, name, size, seq, mode)
    if b.out is not None:
        b.out.close()
        print(render([Path(args.out)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
