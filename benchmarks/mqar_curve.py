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
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pytest_goni.measurements.synthetic_task import EpochBatches, first_step_at, predict_scored, scores
from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.tasks.mqar import MQAR
from pytest_goni.training import OptimConfig, train


class _Stop(Exception):
    """Raised from the evaluation once the target accuracy is reached."""


def one_run(a: argparse.Namespace, backend: str, batch: int, lr: float, steps: int, task: MQAR, val) -> dict:
    train_set = task.generate(a.n, np.random.default_rng([a.seed, 0]))
    kw = dict(vocab_size=a.V, d_model=a.d, n_layers=a.layers, n_heads=a.heads, max_seq_len=a.T, seed=a.seed)
    model = resolve_backend(backend)(**kw).to(a.device).train()
    cfg = OptimConfig(lr=lr, warmup=a.warmup, weight_decay=a.wd, grad_clip=1.0, min_lr_ratio=0.1)
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
    stopped, step_seconds = False, None
    try:
        res = train(model, EpochBatches(train_set, batch, a.seed), steps, cfg, device=a.device,
                    evaluate=evaluate, eval_every=a.every)
        step_seconds = res.train_seconds / max(1, res.steps - 1)  # the loop's timing: first step apart
    except _Stop:
        stopped = True
    seconds = time.perf_counter() - t0 - t_eval
    if not stopped:  # the loop does not evaluate after its last step
        curve.append([steps, round(scores(predict_scored(model, val, a.device), val)[0], 4)])
    return {"backend": backend, "V": a.V, "T": a.T, "kv": a.kv, "random_non_queries": bool(a.rnq),
            "d_model": a.d, "n_layers": a.layers, "n_heads": a.heads, "batch": batch, "lr": lr,
            "train_examples": a.n, "steps": steps, "warmup": a.warmup, "weight_decay": a.wd, "seed": a.seed,
            "device": a.device, "curve": curve, "final_val": curve[-1][1] if curve else None,
            "first_step_095": first_step_at({"0": curve}, 0.95)["0"], "stopped_at": a.stop if stopped else None,
            "train_seconds": round(seconds, 2), "seconds_per_step": round(seconds / max(1, curve[-1][0]), 4),
            "step_seconds_after_first": None if step_seconds is None else round(step_seconds, 5)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", nargs="+", default=["transformer-rope"])
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    load_builtins()
    task = MQAR(a.V, a.T, a.kv, random_non_queries=bool(a.rnq))
    val = task.generate(500, np.random.default_rng([0, 2]))
    for backend, batch, lr, steps in ((b, n, r, t) for b in a.backend for n in a.batch for r in a.lr for t in a.steps):
        row = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
               "command": "python benchmarks/mqar_curve.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               **one_run(a, backend, batch, lr, steps, task, val)}
        line = json.dumps(row)
        print(line, flush=True)
        if a.out:
            with a.out.open("a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
