"""PNG plots for the SYS-02 measurements (matplotlib, Agg backend: no display needed).

Each function takes plain data and a path, so a report page can redraw them from results JSON.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .optional import extra_line


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or None when the ``plots`` extra is not installed
    (a plot is a report's extra: its measurement still runs and its gates are still judged)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        logging.getLogger("goni").warning("plot not drawn: matplotlib is not installed (%s)", extra_line("plots"))
        return None
    return plt


def _finite(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y) and y > 0]
    return [p[0] for p in pts], [p[1] for p in pts]


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_latency_vs_context(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    *,
    crossover: float | None = None,
    exponents: Mapping[str, float] | None = None,
    oom: Mapping[str, float] | None = None,
    title: str = "",
    ylabel: str = "latency (s)",
    crossover_label: str | None = None,
) -> Path | None:
    """Log-log latency against context per model; the crossover is a vertical line, an OOM a cross.

    ``series`` maps a model label to (contexts, latencies in seconds); ``exponents`` (fitted
    power-law slopes) go into the legend; ``oom`` maps a label to the context where it failed.
    """
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, (xs, ys) in series.items():
        fx, fy = _finite(xs, ys)
        if not fx:
            continue
        slope = (exponents or {}).get(label)
        text = f"{label} (slope {slope:.2f})" if slope is not None and math.isfinite(slope) else label
        (line,) = ax.plot(fx, fy, marker="o", label=text)
        if oom and label in oom and math.isfinite(oom[label]):
            ax.plot([oom[label]], [fy[-1]], marker="x", markersize=12, color=line.get_color(),
                    linestyle="none", label=f"{label} OOM at {int(oom[label])}")
    if crossover is not None and math.isfinite(crossover):
        ax.axvline(crossover, color="grey", linestyle="--",
                   label=crossover_label or f"crossover ~{crossover:,.0f} tokens")
    elif crossover is not None:
        ax.text(0.02, 0.02, "no crossover in range", transform=ax.transAxes, color="grey")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_memory_vs_context(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    *,
    oom: Mapping[str, tuple[float, float]] | None = None,
    cap_bytes: float | None = None,
    title: str = "",
) -> Path | None:
    """Peak memory (MiB) against context per model; an OOM point (context, bytes at failure) is
    marked with a cross, a configured memory cap with a horizontal line."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    mib = 2.0 ** 20
    for label, (xs, ys) in series.items():
        fx, fy = _finite(xs, ys)
        color = None
        if fx:
            (line,) = ax.plot(fx, [y / mib for y in fy], marker="o", label=label)
            color = line.get_color()
        if oom and label in oom:
            at, used = oom[label]
            y = used / mib if math.isfinite(used) and used > 0 else (fy[-1] / mib if fy else 1.0)
            ax.plot([at], [y], marker="x", markersize=12, mew=2, color=color, linestyle="none",
                    label=f"{label} OOM at {int(at):,} tokens")
    if cap_bytes:
        ax.axhline(cap_bytes / mib, color="red", linestyle=":", label=f"cap {cap_bytes / mib:,.0f} MiB")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("peak memory (MiB)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_loss_curves(curves: Mapping[str, Sequence[Sequence[float]]], seeds: Sequence[int], path: Path,
                     *, title: str = "") -> Path | None:
    """Training loss per step, one line per (model, seed)."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, runs in curves.items():
        for seed, losses in zip(seeds, runs):
            ax.plot(range(1, len(losses) + 1), losses, label=f"{label} seed {seed}", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/token)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
