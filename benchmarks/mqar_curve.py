"""MQAR validation accuracy against training steps for one model: when does the strong baseline
(attention) leave the 1/kv plateau? Calibrates the archcomp profiles' budget (benchmarks/README.md,
"next GPU run").

The same pieces as the ``synthetic_task`` kind (pytest_goni.tasks.MQAR, EpochBatches, the shared
training loop, predict_scored), one model at a time, with the validation accuracy every ``--every``
steps and an early stop once it reaches ``--stop`` (Zoology stops at 0.99). One JSON line per run
(config, curve, first step at 0.95, seconds) goes to stdout and to ``--out`` if given.

    python benchmarks/mqar_curve.py --d 64 --layers 4 --heads 4 --V 128 --steps 600      # CPU, ~1 min
    python benchmarks/mqar_curve.py --device cuda --V 8192 --d 256 --layers 4 --heads 4 \\
        --batch 128 512 --lr 0.00046 0.0022 --steps 500 1000 2000 --out curves.jsonl        # one GPU
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from pytest_goni.models.layers import ShortConv
from pytest_goni.models.transformer import Attention

from pytest_goni.measurements.synthetic_task import EpochBatches, first_step_at, predict_scored, scores
from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.tasks.mqar import MQAR
from pytest_goni.training import OptimConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoology_attention import ZoologyAttentionLM  # noqa: E402 - a sibling file, found once the path is set

#: ``--backend`` name of the hand-written reference of Zoology fig. 2's attention model.
REFERENCE = "zoology-attention"


class _Stop(Exception):
    """Raised from the evaluation once the target accuracy is reached."""


class _Timeout(Exception):
    """Raised on SIGTERM (``timeout``): the run so far is still written, marked ``killed``."""


def _on_term(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Timeout


def attention_variant(model: torch.nn.Module, qkv_conv: int, no_mlp: bool) -> torch.nn.Module:
    """Diagnostic changes to a transformer backend, forward (training) form only:

    ``qkv_conv`` K > 0 puts a depthwise causal convolution (kernel K, no activation) after each
    attention's q/k/v projection, the short convolution DeltaNet, Mamba-2 and Zoology's "BASED
    recipe" put before their mixers: each position's key then carries the previous tokens, the
    binding an attention layer otherwise has to learn with a previous-token head.
    ``no_mlp`` drops each block's MLP (Zoology fig. 2's attention block: the state mixer is Identity).
    """
    for layer in model.layers:
        attn = layer.parts[0].inner
        if not isinstance(attn, Attention):
            raise SystemExit(f"--qkv-conv / --no-mlp apply to the transformer backends, not {type(attn).__name__}")
        if qkv_conv:
            conv = ShortConv(attn.qkv.out_features, qkv_conv, activation=False)
            attn.qkv = torch.nn.Sequential(attn.qkv, conv)
        if no_mlp:
            layer.parts = torch.nn.ModuleList([layer.parts[0]])
    return model


def one_run(a: argparse.Namespace, backend: str, batch: int, lr: float, steps: int, task: MQAR, val) -> dict:
    train_set = task.generate(a.n, np.random.default_rng([a.seed, 0]))
    kw = dict(vocab_size=a.V, d_model=a.d, n_layers=a.layers, n_heads=a.heads, max_seq_len=a.T, seed=a.seed)
    if backend == REFERENCE:  # the hand-written fig. 2 model (benchmarks/zoology_attention.py)
        model = ZoologyAttentionLM(**kw, dropout=a.dropout, embed_dropout=a.dropout)
    else:
        model = resolve_backend(backend)(**kw)
    if backend == REFERENCE and a.qkv_conv:
        raise SystemExit(f"--qkv-conv applies to the transformer backends, not {REFERENCE}")
    if (a.qkv_conv or a.no_mlp) and backend != REFERENCE:  # the reference has no MLP already
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(a.seed)
            model = attention_variant(model, a.qkv_conv, a.no_mlp)
    model = model.to(a.device).train()
    cfg = OptimConfig(lr=lr, warmup=a.warmup, weight_decay=a.wd, grad_clip=a.clip, min_lr_ratio=a.min_lr_ratio,
                      betas=(a.beta1, a.beta2), autocast=False if a.fp32 else None)
    curve: list[list[float]] = []
    t_eval = 0.0

    def evaluate(m: torch.nn.Module) -> float:
        nonlocal t_eval
        t0 = time.perf_counter()
        acc = scores(predict_scored(m, val, a.device), val)[0]
        t_eval += time.perf_counter() - t0
        curve.append([(len(curve) + 1) * a.every, round(acc, 4)])
        print(f"  {backend} B {batch} lr {lr:g}: step {curve[-1][0]} val {acc:.3f}", file=sys.stderr, flush=True)
        if acc >= a.stop:
            raise _Stop
        return acc

    t0 = time.perf_counter()
    stopped, killed, step_seconds = False, False, None
    try:
        res = train(model, EpochBatches(train_set, batch, a.seed), steps, cfg, device=a.device,
                    evaluate=evaluate, eval_every=a.every, compile=False)  # eager, as gpu-quick's runs
        step_seconds = res.train_seconds / max(1, res.steps - 1)  # the loop's timing: first step apart
    except _Stop:
        stopped = True
    except _Timeout:
        killed = True
    seconds = time.perf_counter() - t0 - t_eval
    if not (stopped or killed):  # the loop does not evaluate after its last step
        try:
            curve.append([steps, round(scores(predict_scored(model, val, a.device), val)[0], 4)])
        except _Timeout:
            killed = True
    return {"backend": backend, "V": a.V, "T": a.T, "kv": a.kv, "random_non_queries": bool(a.rnq),
            "d_model": a.d, "n_layers": a.layers, "n_heads": a.heads, "qkv_conv": a.qkv_conv, "no_mlp": a.no_mlp,
            "dropout": a.dropout if backend == REFERENCE else 0.0,
            "batch": batch, "lr": lr, "train_examples": a.n, "steps": steps, "warmup": a.warmup,
            "weight_decay": a.wd, "grad_clip": a.clip, "betas": [a.beta1, a.beta2], "min_lr_ratio": a.min_lr_ratio,
            "autocast": "off" if a.fp32 or a.device == "cpu" else "bf16",
            "seed": a.seed, "killed": killed,
            "device": a.device, "curve": curve, "final_val": curve[-1][1] if curve else None,
            "first_step_095": first_step_at({"0": curve}, 0.95)["0"], "stopped_at": a.stop if stopped else None,
            "train_seconds": round(seconds, 2),
            "seconds_per_step": round(seconds / max(1, curve[-1][0]), 4) if curve else None,
            "step_seconds_after_first": None if step_seconds is None else round(step_seconds, 5)}


def _variant(r: dict) -> str:
    """What a run changed from gpu-quick's recipe (4 x 4 heads, zero filler, AdamW wd 0.1 / b2 0.95 / clip 1)."""
    parts = [f"h{r.get('n_heads')}" if r.get("n_heads") != 4 else "",
             f"L{r.get('n_layers')}" if r.get("n_layers") != 4 else "",
             f"conv{r['qkv_conv']}" if r.get("qkv_conv") else "", "no-mlp" if r.get("no_mlp") else "",
             "random" if r.get("random_non_queries") else "", f"drop{r['dropout']:g}" if r.get("dropout") else ""]
    if r.get("weight_decay", 0.1) != 0.1 or r.get("grad_clip", 1.0) != 1.0 or (r.get("betas") or [0, 0.95])[1] != 0.95:
        parts.append(f"wd{r.get('weight_decay')} clip{r.get('grad_clip')} b2 {(r.get('betas') or [0, 0])[1]}")
    if r.get("warmup", 0.1) != 0.1:
        parts.append(f"warm{r['warmup']:g}")
    parts.append("KILLED" if r.get("killed") else "")
    return " ".join(x for x in parts if x) or "-"


def table(paths: list[Path]) -> str:
    """One line per run of the JSON-lines files: config, final accuracy, first step at 0.95, step cost."""
    rows = [json.loads(line) for f in paths for line in f.read_text().splitlines() if line.startswith("{")]
    out = [f"{'backend':17s} {'variant':30s} {'V':>5s} {'d':>4s} {'B':>4s} {'lr':>7s} {'sched':>5s} {'final':>6s} "
           f"{'step@.95':>8s} {'s/step':>7s}  curve"]
    for r in rows:
        points = r.get("curve") or []
        curve = " ".join(f"{s}:{acc:.2f}" for s, acc in points[::max(1, len(points) // 12)])
        cost = r.get("step_seconds_after_first") or r.get("seconds_per_step") or 0
        out.append(f"{r.get('backend', '?'):17s} {_variant(r):30s} {r.get('V', 0):5d} {r.get('d_model', 0):4d} "
                   f"{r.get('batch', 0):4d} "
                   f"{r.get('lr', 0):7.5f} {r.get('steps', 0):5d} {r.get('final_val') or 0:6.3f} "
                   f"{str(r.get('first_step_095')):>8s} {cost:7.4f}  {curve}")
    return "\n".join(out)


def best_per_backend(paths: list[Path]) -> dict[str, dict]:
    """Zoology's report: per backend, the run with the highest final validation accuracy over its lrs."""
    best: dict[str, dict] = {}
    for r in (json.loads(line) for f in paths for line in f.read_text().splitlines() if line.startswith("{")):
        b = r.get("backend", "?")
        if r.get("final_val") is not None and (b not in best or r["final_val"] > best[b]["final_val"]):
            best[b] = r
    return best


def ranking(paths: list[Path], spec_path: Path, measurement: str = "mqar", tie_at: float | None = None) -> str:
    """The best run per backend as a markdown table, named as the spec's models, and Kendall tau-b
    against the measurement's ``expected_ranking`` by the synthetic_task kind's own code
    (pytest_goni.tasks.ranking), with the pairs that disagree. Backends the ranking does not name
    (mamba2, groundthink) are listed but not ranked. ``tie_at``: accuracies above it count as equal
    (runs stopped at 0.99 end at their first evaluation past it, so their order there is not measured)."""
    from pytest_goni.spec import load_spec
    from pytest_goni.tasks.ranking import kendall_ranking

    load_builtins()
    spec = load_spec(spec_path, str(spec_path), "cpu")
    name = {m["backend"]: n for n, m in spec.models.items()}
    best = best_per_backend(paths)
    out = ["| model (backend) | best lr | final val. accuracy | step at 0.95 | steps run | s/step (shared) |",
           "|---|---:|---:|---:|---:|---:|"]
    for b, r in sorted(best.items(), key=lambda kv: -kv[1]["final_val"]):
        steps = r["curve"][-1][0] if r.get("curve") else 0
        end = " (cut)" if r.get("killed") else (" (stopped)" if r.get("stopped_at") else "")
        out.append(f"| {name.get(b, b)} ({b}) | {r['lr']:g} | {r['final_val']:.3f} | {r.get('first_step_095') or '-'} "
                   f"| {steps:,}{end} | {r.get('seconds_per_step') or 0:.3f} |")
    measured = {name[b]: min(r["final_val"], tie_at if tie_at is not None else 1.0) for b, r in best.items()
                if b in name}
    tau, pairs = kendall_ranking(spec.measurements[measurement].params["expected_ranking"], measured)
    tied = f" (accuracies above {tie_at:g} tied)" if tie_at is not None else ""
    out += ["", f"Kendall tau-b vs {spec_path} {measurement}.expected_ranking{tied}: {tau:.3f}",
            "pairs against the expected order: " + ("; ".join(pairs) or "none")]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, nargs="+", help="print the runs of these JSON-lines files and exit")
    p.add_argument("--rank", type=Path, metavar="SPEC",
                   help="with --table: the best lr per backend and Kendall tau-b against SPEC's mqar expected_ranking")
    p.add_argument("--tie-at", type=float, help="with --rank: accuracies above this count as equal (the stop level)")
    p.add_argument("--backend", nargs="+", default=["transformer-rope"],
                   help=f"registered backends, or {REFERENCE} (benchmarks/zoology_attention.py)")
    p.add_argument("--V", type=int, default=128)
    p.add_argument("--T", type=int, default=64)
    p.add_argument("--kv", type=int, default=4)
    p.add_argument("--rnq", type=int, default=0, help="random non-query filler (Zoology fig. 2: 0)")
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, nargs="+", default=[64])
    p.add_argument("--lr", type=float, nargs="+", default=[2e-3])
    p.add_argument("--steps", type=int, nargs="+", default=[600],
                   help="schedule lengths (warm-up and cosine are laid out over each): one run per value")
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--stop", type=float, default=0.99, help="stop once validation accuracy reaches this")
    p.add_argument("--n", type=int, default=20_000, help="training examples (reshuffled every epoch)")
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--wd", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0, help="gradient clipping norm (0: none)")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="the cosine's floor (1: constant after warm-up)")
    p.add_argument("--qkv-conv", type=int, default=0, help="diagnostic: short conv after attention's qkv (kernel)")
    p.add_argument("--no-mlp", action="store_true", help="diagnostic: transformer blocks without their MLP")
    p.add_argument("--dropout", type=float, default=0.1,
                   help=f"{REFERENCE} only: attention and embedding dropout (Zoology fig. 2: 0.1)")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA (Zoology trains in float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if a.table:
        print(ranking(a.table, a.rank, tie_at=a.tie_at) if a.rank else table(a.table))
        return 0
    torch.set_num_threads(a.threads)
    signal.signal(signal.SIGTERM, _on_term)
    load_builtins()
    task = MQAR(a.V, a.T, a.kv, random_non_queries=bool(a.rnq))
    val = task.generate(500, np.random.default_rng([0, 2]))
    for backend, batch, lr, steps in ((b, n, r, t) for b in a.backend for n in a.batch for r in a.lr for t in a.steps):
        row = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
               "commit": os.environ.get("GONI_GIT_COMMIT"),
               "command": "python benchmarks/mqar_curve.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               **one_run(a, backend, batch, lr, steps, task, val)}
        line = json.dumps(row)
        print(line, flush=True)
        if a.out:
            with a.out.open("a") as f:
                f.write(line + "\n")
        if row["killed"]:
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
