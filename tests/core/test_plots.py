"""Plots draw what the gates judged: the thresholds of the gates reading a measurement (a line
labelled with the gate id, where the plot has that metric's axis) and the intervals the data has
(error bars of the samples, a band over seeds). Checked on the drawn artists, not on pixels."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402

from pytest_goni.plots import (  # noqa: E402
    GateLine,
    draw_latency_vs_context,
    draw_loss_curves,
    draw_memory_vs_context,
    plot_latency_vs_context,
)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _lines(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines()}


def test_latency_plot_draws_error_bars_and_the_crossover_gate(ax) -> None:
    gates = [GateLine("rt-crossover-in-range", "crossover", "<=", 131072.0, "<= 131072 tok"),
             GateLine("fast-at-8k", "cand.8192.latency", "<", 0.5, "< 500 ms"),
             GateLine("not-plotted", "cand.exponent", "<", 1.0, "< 1")]
    draw_latency_vs_context(ax, {"cand": ([1024, 8192], [0.1, 0.4]), "base": ([1024, 8192], [0.1, 1.6])},
                            crossover=1024.0, spread={"cand": ([0.09, 0.35], [0.12, 0.45])},
                            spread_label="bars: 10th-90th percentile", gate_lines=gates)
    lines = _lines(ax)
    cross = lines["gate rt-crossover-in-range: <= 131072 tok"]
    assert list(cross.get_xdata()) == [131072.0, 131072.0]  # a vertical line at the threshold
    mark = lines["gate fast-at-8k: < 500 ms"]
    assert set(mark.get_ydata()) == {0.5} and min(mark.get_xdata()) < 8192 < max(mark.get_xdata())
    assert not any("not-plotted" in k for k in lines)  # no axis for an exponent here
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(bars) == 1  # the candidate's error bars; the baseline has no spread given
    segments = bars[0].get_segments()
    assert [tuple(s[:, 1]) for s in segments] == [(0.09, 0.12), (0.35, 0.45)]
    assert "bars: 10th-90th percentile" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_memory_plot_draws_context_and_point_thresholds(ax) -> None:
    mib = 2.0 ** 20
    gates = [GateLine("no-oom-to-long", "cand.max_context_ok", ">=", 131072.0, ">= 131072 tok"),
             GateLine("peak-at-8k", "cand.8192.peak_mem", "<", 64 * mib, "< 64 MiB")]
    draw_memory_vs_context(ax, {"cand": ([1024, 8192], [8 * mib, 32 * mib])}, gate_lines=gates)
    lines = _lines(ax)
    assert list(lines["gate no-oom-to-long: >= 131072 tok"].get_xdata()) == [131072.0, 131072.0]
    assert set(lines["gate peak-at-8k: < 64 MiB"].get_ydata()) == {64.0}  # drawn in MiB like the data


def test_loss_curves_draw_a_band_over_seeds_and_a_loss_gate(ax) -> None:
    gates = [GateLine("learns", "gpt.final_loss", "<", 3.0, "< 3.0"),
             GateLine("rerun", "gpt.rerun_loss_diff", "<", 1e-3, "< 0.001")]
    draw_loss_curves(ax, {"gpt": [[5.0, 4.0, 3.5], [5.2, 3.8, 3.3]]}, [0, 1], gate_lines=gates)
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(3.3) and max(ys) == pytest.approx(5.2)  # lowest to highest seed
    lines = _lines(ax)
    assert set(lines["gate learns: < 3.0"].get_ydata()) == {3.0}
    assert not any("rerun" in k for k in lines)  # a loss difference is not on the loss axis
    assert "gpt (mean of 2 seeds)" in lines


def test_a_single_seed_is_its_own_curve(ax) -> None:
    draw_loss_curves(ax, {"gpt": [[5.0, 4.0]]}, [7])
    assert "gpt seed 7" in _lines(ax) and not ax.collections


def test_the_png_is_written(tmp_path) -> None:
    path = plot_latency_vs_context({"a": ([1, 2], [1.0, 2.0])}, tmp_path / "latency-vs-context.png",
                                   gate_lines=[GateLine("g", "crossover", "<", 2.0, "< 2 tok")])
    assert path is not None and path.stat().st_size > 1000


def test_architecture_comparison_plots_place_accuracy_gates(tmp_path) -> None:
    from types import SimpleNamespace

    from pytest_goni.tasks.plots import _accuracy, _accuracy_at_length, plot_comparison

    models = {"lstm": 0.9, "rope": 0.5}
    assert _accuracy_at_length(models)("lstm.accuracy_len4") == ("y", 4.0)
    assert _accuracy_at_length(models)("gru.accuracy_len4") is None  # not a plotted model
    assert _accuracy(models)("rope.accuracy") == ("y", None) and _accuracy(models)("rope.seq_accuracy") is None
    ctx = SimpleNamespace(spec_id="a", measurement="flip_flop", artifact=lambda name: tmp_path / name,
                          gate_lines=[GateLine("lstm-extrapolates", "lstm.accuracy_len4", ">=", 0.8, ">= 0.8")])
    plot_comparison(ctx, models, {"lstm": 2.0, "rope": 3.0}, {"lstm": 1e3, "rope": 1e5},
                    {"lstm": {1: 0.9, 4: 0.85}, "rope": {1: 0.5, 4: 0.1}}, ["lstm"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accuracy-vs-length.png", "accuracy-vs-state-size.png",
                                                         "accuracy-vs-training-time.png"]
