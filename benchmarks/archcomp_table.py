"""Markdown tables of an archcomp run from its results.json: the task checks, accuracy per model and
task (mean and spread over seeds at each model's chosen lr, with validity, and the training time per
run), rank correlations.

    python benchmarks/archcomp_table.py out/archcomp/results.json [more results.json[.gz] ...]
    python benchmarks/archcomp_table.py --curves out/archcomp/results.json   # validation curves

Several files (one per device call, e.g. a task each) are merged into one set of tables. ``--curves``
prints, per task, each model's first validation step at 0.95 per seed and its curve (``val_curve``).
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


def _mean(samples: list) -> float:
    xs = [_num(s) for s in samples]
    return statistics.mean(xs) if xs else math.nan


def _mean_sd(samples: list) -> str:
    xs = [_num(s) for s in samples]
    if not xs or any(math.isnan(x) for x in xs):
        return "n/a"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f}"


def tables(data: dict | list[dict]) -> str:
    """The three tables; ``data`` is one results.json or several, whose task measurements are merged."""
    specs = [d["specs"][0] for d in (data if isinstance(data, list) else [data])]
    ms = {k: v for spec in specs for k, v in spec["measurements"].items() if v.get("kind") == "synthetic_task"}
    profiles = ", ".join(sorted({f"`{spec['profile']}`" for spec in specs}))
    lines = [f"profile {profiles}; task checks: mean over seeds where a check has one sample per seed", "",
             "| task | " + " | ".join(TASK_KEYS) + " | valid | s | device | worker |",
             "|---" * (len(TASK_KEYS) + 5) + "|"]
    for name, m in sorted(ms.items()):
        met = m["metrics"]
        vals = [f"{_mean(met[f'task.{k}']['samples']):.4g}" if f"task.{k}" in met else "-" for k in TASK_KEYS]
        valid = met.get("task.valid", {}).get("note") or "yes"
        lines.append(f"| {name} | " + " | ".join(vals)
                     + f" | {valid} | {m['seconds']:.1f} | {m['device']} | {m.get('worker', '-')} |")
    models = sorted({k.split(".")[0] for m in ms.values() for k in m["metrics"]} - {"task", "ranking", "pareto_size",
                                                                                     "models_valid"})
    lines += ["", "accuracy: mean ± sample standard deviation over seeds, at the chosen lr; s: training time per run",
              "", "| model | " + " | ".join(sorted(ms)) + " |", "|---" * (len(ms) + 1) + "|"]
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
            secs = met.get(f"{model}.train_seconds")
            took = f", {_mean(secs['samples']):.1f} s" if secs else ""
            row.append(f"{_mean_sd(acc['samples'])} @ lr {lr:g}{took}{flag}")
        lines.append(f"| {model} | " + " | ".join(row) + " |")
    lines += ["", "| task | Kendall tau-b | disagreeing pairs | Pareto front |", "|---|---|---|---|"]
    for name, m in sorted(ms.items()):
        met = m["metrics"]
        tau = met.get("ranking.kendall_tau")
        if tau is None:
            continue
        front = ", ".join(met["pareto_size"]["meta"].get("front", []))
        flag = " (INVALID)" if tau.get("meta", {}).get("invalid") else ""
        lines.append(f"| {name} | {_num(tau['samples'][0]):.3f}{flag} | {tau['note']} | {front} |")
    return "\n".join(lines)


def curve_tables(data: dict | list[dict], level: float = 0.95) -> str:
    """Per task: each model's first evaluated step at ``level`` per seed, and its validation curve."""
    from pytest_goni.measurements.synthetic_task import first_step_at

    specs = [d["specs"][0] for d in (data if isinstance(data, list) else [data])]
    ms = {k: v for spec in specs for k, v in spec["measurements"].items() if v.get("kind") == "synthetic_task"}
    lines: list[str] = []
    for name, m in sorted(ms.items()):
        curves = {k.split(".")[0]: v["meta"]["val_curve"] for k, v in m["metrics"].items()
                  if k.endswith(".accuracy") and v.get("meta", {}).get("val_curve")}
        seeds = sorted({s for c in curves.values() for s in c}, key=int)
        steps = sorted({int(p[0]) for c in curves.values() for pts in c.values() for p in pts})
        lines += [f"{name}: validation accuracy by step (seed {' / '.join(seeds)}); first step at >= {level}", "",
                  f"| model | step at {level} | " + " | ".join(str(s) for s in steps) + " |",
                  "|---" * (len(steps) + 2) + "|"]
        for model, c in sorted(curves.items()):
            first = first_step_at(c, level)
            at = {s: dict((int(p[0]), p[1]) for p in c.get(s, [])) for s in seeds}
            cells = [" / ".join(f"{at[s][t]:.2f}" if t in at[s] else "-" for s in seeds) for t in steps]
            lines.append(f"| {model} | " + " / ".join(str(first[s]) if first.get(s) is not None else "never"
                                                        for s in seeds) + " | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--curves"]:
        print(curve_tables([_load(p) for p in sys.argv[2:]]))
    else:
        print(tables([_load(p) for p in sys.argv[1:]]))
