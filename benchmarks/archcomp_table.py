"""Markdown tables of an archcomp run from its results.json: the task checks, accuracy per model and
task (mean and spread over seeds at each model's chosen lr, with validity), rank correlations.

    python benchmarks/archcomp_table.py out/archcomp/results.json [results.json.gz]
"""

from __future__ import annotations

import gzip
import json
import math
import statistics
import sys

TASK_KEYS = ("oracle_accuracy", "aligned", "majority_accuracy", "chance", "baseline_accuracy")


def _load(path: str) -> dict:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as fh:
        return json.load(fh)


def _num(x: object) -> float:
    return float(x) if isinstance(x, (int, float)) else math.nan


def _mean_sd(samples: list) -> str:
    xs = [_num(s) for s in samples]
    if not xs or any(math.isnan(x) for x in xs):
        return "n/a"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f}"


def tables(data: dict) -> str:
    spec = data["specs"][0]
    ms = {k: v for k, v in spec["measurements"].items() if v.get("kind") == "synthetic_task"}
    lines = [f"profile `{spec['profile']}`", "", "| task | " + " | ".join(TASK_KEYS) + " | valid | s | device |",
             "|---" * (len(TASK_KEYS) + 4) + "|"]
    for name, m in sorted(ms.items()):
        met = m["metrics"]
        vals = [f"{_num(met[f'task.{k}']['samples'][0]):.3f}" if f"task.{k}" in met else "-" for k in TASK_KEYS]
        valid = met.get("task.valid", {}).get("note") or "yes"
        lines.append(f"| {name} | " + " | ".join(vals) + f" | {valid} | {m['seconds']:.0f} | {m['device']} |")
    models = sorted({k.split(".")[0] for m in ms.values() for k in m["metrics"]} - {"task", "ranking", "pareto_size",
                                                                                     "models_valid"})
    lines += ["", "| model | " + " | ".join(sorted(ms)) + " |", "|---" * (len(ms) + 1) + "|"]
    for model in models:
        row = []
        for name in sorted(ms):
            met = ms[name]["metrics"]
            acc = met.get(f"{model}.accuracy")
            if acc is None:
                row.append("-")
                continue
            lr = _num(met[f"{model}.best_lr"]["samples"][0])
            flag = " (INVALID)" if acc["meta"].get("invalid") else ""
            row.append(f"{_mean_sd(acc['samples'])} @ lr {lr:g}{flag}")
        lines.append(f"| {model} | " + " | ".join(row) + " |")
    lines += ["", "| task | Kendall tau-b | disagreeing pairs | Pareto front |", "|---|---|---|---|"]
    for name, m in sorted(ms.items()):
        met = m["metrics"]
        tau = met.get("ranking.kendall_tau")
        if tau is None:
            continue
        front = ", ".join(met["pareto_size"]["meta"].get("front", []))
        lines.append(f"| {name} | {_num(tau['samples'][0]):.3f} | {tau['note']} | {front} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(tables(_load(p)))
