"""PNG plots for the SYS-02 measurements (matplotlib, Agg backend: no display needed).

Each function takes plain data and a path, so a report page can redraw them from results JSON.
A plot named after what it shows (``latency-vs-context.png``) draws the intervals its data has
(error bars of the samples, a band over seeds) and the thresholds of the gates that read the
measurement (:class:`GateLine`, given to the measurement as ``ctx.gate_lines``), each labelled
with its gate id, so the picture shows what a gate judged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .optional import extra_line


@dataclass(frozen=True)
class GateLine:
    """A gate comparing one metric of a measurement with a constant: ``metric`` is the key inside
    the measurement (``crossover``, ``candidate.131072.peak_mem``), ``value`` the threshold in the
    metric's own unit, ``text`` the gate's ``expect`` as written."""

    gate: str
    metric: str
    op: str
    value: float
    text: str

    @property
    def label(self) -> str:
        return f"gate {self.gate}: {self.text}"


#: Where a plot puts a metric's threshold: ("x", None) a vertical line, ("y", None) a horizontal
#: line, ("y", x) a short horizontal mark at x (a threshold on one point of a sweep); None: not here.
Placement = tuple[str, float | None] | None

THRESHOLD_STYLE = {"color": "crimson", "linestyle": "--", "linewidth": 1.2}


def draw_gate_lines(ax: Any, lines: Sequence[GateLine], place: Callable[[str], Placement],
                    y_scale: float = 1.0) -> list[Any]:
    """Draw each gate's threshold that ``place`` puts on these axes; returns the artists drawn."""
    drawn = []
    for line in lines:
        where = place(line.metric)
        if where is None or not math.isfinite(line.value):
            continue
        axis, at = where
        if axis == "x":
            drawn.append(ax.axvline(line.value, label=line.label, **THRESHOLD_STYLE))
        elif at is None:
            drawn.append(ax.axhline(line.value * y_scale, label=line.label, **THRESHOLD_STYLE))
        else:  # one point of a sweep: a short mark across it, and the point's context in the label
            (mark,) = ax.plot([at / 1.25, at * 1.25], [line.value * y_scale] * 2, label=line.label,
                              **{**THRESHOLD_STYLE, "linestyle": "-", "linewidth": 2.5})
            drawn.append(mark)
    return drawn


def _sweep_point(metric: str, labels: Sequence[str], suffix: str) -> Placement:
    """``<label>.<T>.<suffix>`` of a plotted series -> a mark at context T."""
    parts = metric.split(".")
    if len(parts) >= 3 and parts[-1] == suffix and parts[-2].isdigit() and ".".join(parts[:-2]) in labels:
        return ("y", float(parts[-2]))
    return None


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
    spread: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    spread_label: str = "bars: 10th-90th percentile of the samples",
    gate_lines: Sequence[GateLine] = (),
) -> Path | None:
    """Log-log latency against context per model; the crossover is a vertical line, an OOM a cross.

    ``series`` maps a model label to (contexts, latencies in seconds); ``spread`` maps it to the
    (low, high) of each point's samples, drawn as error bars; ``exponents`` (fitted power-law
    slopes) go into the legend; ``oom`` maps a label to the context where it failed; ``gate_lines``:
    a threshold on ``crossover`` is a vertical line, one on ``<label>.<T>.latency`` a mark at T.
    """
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    draw_latency_vs_context(ax, series, crossover=crossover, exponents=exponents, oom=oom,
                            crossover_label=crossover_label, spread=spread, spread_label=spread_label,
                            gate_lines=gate_lines)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return _save(fig, path)


def draw_latency_vs_context(
    ax: Any,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    crossover: float | None = None,
    exponents: Mapping[str, float] | None = None,
    oom: Mapping[str, float] | None = None,
    crossover_label: str | None = None,
    spread: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    spread_label: str = "",
    gate_lines: Sequence[GateLine] = (),
) -> None:
    """The drawing of :func:`plot_latency_vs_context`, on given axes."""
    for label, (xs, ys) in series.items():
        fx, fy = _finite(xs, ys)
        if not fx:
            continue
        slope = (exponents or {}).get(label)
        text = f"{label} (slope {slope:.2f})" if slope is not None and math.isfinite(slope) else label
        lows, highs = (spread or {}).get(label, ((), ()))
        bounds = {x: (lo, hi) for x, lo, hi in zip(xs, lows, highs) if math.isfinite(lo) and math.isfinite(hi)}
        if bounds and all(x in bounds for x in fx):
            err = [[max(y - bounds[x][0], 0.0) for x, y in zip(fx, fy)],
                   [max(bounds[x][1] - y, 0.0) for x, y in zip(fx, fy)]]
            bars = ax.errorbar(fx, fy, yerr=err, marker="o", capsize=3, label=text)
            line = bars.lines[0]
        else:
            (line,) = ax.plot(fx, fy, marker="o", label=text)
        if oom and label in oom and math.isfinite(oom[label]):
            ax.plot([oom[label]], [fy[-1]], marker="x", markersize=12, color=line.get_color(),
                    linestyle="none", label=f"{label} OOM at {int(oom[label])}")
    if crossover is not None and math.isfinite(crossover):
        ax.axvline(crossover, color="grey", linestyle="--",
                   label=crossover_label or f"crossover ~{crossover:,.0f} tokens")
    elif crossover is not None:
        ax.text(0.02, 0.02, "no crossover in range", transform=ax.transAxes, color="grey")
    labels = list(series)
    draw_gate_lines(ax, gate_lines, lambda m: ("x", None) if m == "crossover" else _sweep_point(m, labels, "latency"))
    if spread:
        ax.plot([], [], " ", label=spread_label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("latency (s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot_memory_vs_context(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    *,
    oom: Mapping[str, tuple[float, float]] | None = None,
    cap_bytes: float | None = None,
    title: str = "",
    gate_lines: Sequence[GateLine] = (),
) -> Path | None:
    """Peak memory (MiB) against context per model; an OOM point (context, bytes at failure) is
    marked with a cross, a configured memory cap with a horizontal line; ``gate_lines``: a threshold
    on ``<label>.max_context_ok`` is a vertical line, one on ``<label>.<T>.peak_mem`` a mark at T."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    draw_memory_vs_context(ax, series, oom=oom, cap_bytes=cap_bytes, gate_lines=gate_lines)
    ax.set_title(title)
    return _save(fig, path)


def draw_memory_vs_context(
    ax: Any,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    oom: Mapping[str, tuple[float, float]] | None = None,
    cap_bytes: float | None = None,
    gate_lines: Sequence[GateLine] = (),
) -> None:
    """The drawing of :func:`plot_memory_vs_context`, on given axes."""
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
    labels = list(series) + list(oom or {})

    def place(metric: str) -> Placement:
        head, _, last = metric.rpartition(".")
        if last == "max_context_ok" and head in labels:
            return ("x", None)
        return _sweep_point(metric, labels, "peak_mem")

    draw_gate_lines(ax, gate_lines, place, y_scale=1 / mib)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("peak memory (MiB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot_loss_curves(curves: Mapping[str, Sequence[Sequence[float]]], seeds: Sequence[int], path: Path,
                     *, title: str = "", gate_lines: Sequence[GateLine] = ()) -> Path | None:
    """Training loss per step per model: with several seeds, their mean and a band from the lowest
    to the highest seed at each step, else the one curve; a gate's threshold on a loss metric of a
    plotted model (``<model>.<...loss...>``) is a horizontal line."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    draw_loss_curves(ax, curves, seeds, gate_lines=gate_lines)
    ax.set_title(title)
    return _save(fig, path)


def draw_loss_curves(ax: Any, curves: Mapping[str, Sequence[Sequence[float]]], seeds: Sequence[int],
                     *, gate_lines: Sequence[GateLine] = ()) -> None:
    """The drawing of :func:`plot_loss_curves`, on given axes."""
    for label, runs in curves.items():
        runs = [list(r) for r in runs if len(r)]
        if len(runs) >= 2:
            n = min(len(r) for r in runs)
            steps = range(1, n + 1)
            lows = [min(r[i] for r in runs) for i in range(n)]
            highs = [max(r[i] for r in runs) for i in range(n)]
            mean = [sum(r[i] for r in runs) / len(runs) for i in range(n)]
            (line,) = ax.plot(steps, mean, linewidth=1.2, label=f"{label} (mean of {len(runs)} seeds)")
            ax.fill_between(steps, lows, highs, alpha=0.25, color=line.get_color(),
                            label=f"{label}: lowest to highest seed")
        else:
            for seed, losses in zip(seeds, runs):
                ax.plot(range(1, len(losses) + 1), losses, label=f"{label} seed {seed}", linewidth=1)
    labels = list(curves)

    def place(metric: str) -> Placement:
        model, _, key = metric.partition(".")
        return ("y", None) if model in labels and "loss" in key and "diff" not in key else None

    draw_gate_lines(ax, gate_lines, place)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/token)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
