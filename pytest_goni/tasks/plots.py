"""The architecture comparison's plots (matplotlib, Agg): accuracy against training time with the
Pareto front, accuracy against state size, accuracy against sequence length (seed research
questions 2 and 4, architecture-comparison.md lines 178-187), each with the thresholds of the gates
reading one plotted metric (``ctx.gate_lines``): ``<model>.accuracy`` a horizontal line on the
first two, ``<model>.accuracy_len<f>`` a mark at f on the third."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..plots import Placement, draw_gate_lines  # noqa: E402


def _accuracy(models: Mapping[str, Any]) -> Any:
    """Where a gate on ``<model>.accuracy`` goes: a horizontal line (None: not a plotted model's)."""
    def place(metric: str) -> Placement:
        model, _, key = metric.rpartition(".")
        return ("y", None) if key == "accuracy" and model in models else None
    return place


def _accuracy_at_length(models: Mapping[str, Any]) -> Any:
    """``<model>.accuracy_len<f>`` -> a mark at length factor f."""
    def place(metric: str) -> Placement:
        model, _, key = metric.rpartition(".")
        if model in models and key.startswith("accuracy_len") and key[len("accuracy_len"):].isdigit():
            return ("y", float(key[len("accuracy_len"):]))
        return None
    return place


def _scatter(ax: Any, xs: Mapping[str, float], ys: Mapping[str, float]) -> None:
    for m in ys:
        ax.scatter([xs[m]], [ys[m]], s=30)
        ax.annotate(m, (xs[m], ys[m]), fontsize=7, xytext=(3, 3), textcoords="offset points")


def plot_comparison(ctx: Any, acc: Mapping[str, float], seconds: Mapping[str, float],
                    state: Mapping[str, float], lengths: Mapping[str, Mapping[int, float]], front: list[str],
                    invalid: str | None = None) -> None:
    title = f"{ctx.spec_id}: {ctx.measurement}" + (" (INVALID task or budget)" if invalid else "")
    gates = getattr(ctx, "gate_lines", ())
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    _scatter(ax, seconds, acc)
    ax.plot([seconds[m] for m in front], [acc[m] for m in front], "k--", lw=1, label="Pareto front")
    draw_gate_lines(ax, gates, _accuracy(acc))
    ax.set(xscale="log", xlabel="training time per run (s)", ylabel="test accuracy", title=title, ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    _save(fig, ctx.artifact("accuracy-vs-training-time.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    finite = {m: s for m, s in state.items() if s == s and s > 0}
    _scatter(ax, finite, {m: acc[m] for m in finite})
    if draw_gate_lines(ax, gates, _accuracy(finite)):
        ax.legend(fontsize=7)
    ax.set(xscale="log", xlabel="state after a training-length prefill (bytes)", ylabel="test accuracy",
           title=title, ylim=(-0.02, 1.02))
    _save(fig, ctx.artifact("accuracy-vs-state-size.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for m, pts in lengths.items():
        fs = sorted(pts)
        ax.plot(fs, [pts[f] for f in fs], marker="o", label=m)
    draw_gate_lines(ax, gates, _accuracy_at_length(lengths))
    ax.set(xscale="log", xlabel="evaluation length / training length", ylabel="test accuracy", title=title,
           ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, ncol=2)
    _save(fig, ctx.artifact("accuracy-vs-length.png"))


def _save(fig: Any, path: Any) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
