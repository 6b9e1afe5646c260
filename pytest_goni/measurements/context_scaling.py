"""Measurement kind ``context_scaling``: latency of a candidate and a baseline over a sweep of
context lengths, the fitted power-law exponent of each curve, and the crossover context where the
candidate becomes faster (SYS-02: "identify explicit crossover points where alternative operators
become faster").

The two models are timed interleaved (candidate, baseline, candidate, ...) on the same tokens at
each context. The crossover is interpolated in log-log space between the two sweep points that
bracket the sign change of log(candidate / baseline) (``stats.crossover``); with
``refine_steps: N`` the bracket is bisected N times at its geometric midpoint (rounded to
``round_to``) with fresh measurements before interpolating. "No crossover in range" is a result:
NaN with a note saying which side won everywhere. A model that runs out of memory at a context
counts as infinitely slow there (an OOM baseline is beaten by a candidate that runs).

Keys: ``<label>.<T>.latency`` (s) for both models at every sweep context,
``<label>.exponent`` (slope of log latency on log context), ``crossover`` (tok),
``speedup_at_max`` (baseline latency / candidate latency at the longest context).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pytest_goni.device import release, under_cpu_threads
from pytest_goni.inference import (
    Decoder,
    ModelEntry,
    OOMRecord,
    model_vocab,
    parse_entry,
    random_tokens,
    resolve_precision,
    run_context,
    run_or_oom,
    time_side_by_side,
)
from pytest_goni.measurements.schemas import CPU_THREADS, MODEL_ENTRY, POSITIVE_INTS, PRECISION
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric, crossover, fit_power_law

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["candidate", "baseline", "contexts"],
    "additionalProperties": False,
    "properties": {
        "cpu_threads": CPU_THREADS,
        "candidate": MODEL_ENTRY,
        "baseline": MODEL_ENTRY,
        "contexts": {**POSITIVE_INTS, "minItems": 2},
        "phase": {"enum": ["prefill", "decode"]},
        "batch_size": {"type": "integer", "minimum": 1},
        "reps": {"type": "integer", "minimum": 1},
        "warmup": {"type": "integer", "minimum": 0},
        "refine_steps": {"type": "integer", "minimum": 0},
        "round_to": {"type": "integer", "minimum": 1},
        "precision": PRECISION,
        "vocab_size": {"type": "integer", "minimum": 2},
        "plot": {"type": "boolean"},
    },
}


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units: dict[str, str] = {"crossover": "tok", "speedup_at_max": ""}
    for role in ("candidate", "baseline"):
        label = parse_entry(params[role]).label
        units[f"{label}.exponent"] = ""
        for t in params["contexts"]:
            units[f"{label}.{t}.latency"] = "s"
    return units


class _Pair:
    """Both models built once; ``measure(T)`` times them interleaved at context T."""

    def __init__(self, ctx: Any, params: dict[str, Any]):
        self.ctx = ctx
        self.params = params
        self.precision = resolve_precision(params.get("precision", "auto"), ctx.device)
        self.phase = params.get("phase", "prefill")
        self.batch = int(params.get("batch_size", 1))
        self.entries: dict[str, ModelEntry] = {r: parse_entry(params[r]) for r in ("candidate", "baseline")}
        if self.entries["candidate"].label == self.entries["baseline"].label:
            raise ValueError("candidate and baseline need different labels")
        self.models = {r: ctx.build_model(e.model, on_device=True, precision=self.precision,
                                               vocab_size=params.get("vocab_size"))
                       for r, e in self.entries.items()}
        self.vocab = min(model_vocab(m) for m in self.models.values())
        self.failed: dict[str, int] = {}  # role -> first context that ran out of memory
        self.notes: dict[str, str] = {}

    def _fn(self, role: str, context: int) -> Any:
        model, entry = self.models[role], self.entries[role]
        ctx = self.ctx

        def run_ctx() -> Any:
            return run_context(ctx.device, self.precision, entry.sdpa)

        tokens = random_tokens(self.batch, context, self.vocab, ctx.device, seed=context)
        if self.phase == "prefill":
            def call() -> None:
                with run_ctx():
                    model.prefill(tokens)
            if ctx.is_cuda:  # as the prefill kind times it: replayed from a CUDA graph
                from pytest_goni.measurements.prefill import graphed_prefill

                return graphed_prefill(ctx, model, entry.sdpa, self.precision, tokens, call)[0]
            return call
        with run_ctx():
            _, state = model.prefill(tokens)
        decoder = Decoder(model, tokens[:, -1], state)
        if ctx.is_cuda:
            decoder.try_cuda_graph(run_ctx, max_steps=self.params.get("warmup", 1) + self.params.get("reps", 5) + 8)

        def step() -> None:
            with run_ctx():
                decoder.advance()
        return step

    def measure(self, context: int) -> dict[str, list[float]]:
        """Samples per role at ``context``; a role that ran out of memory gets [inf]."""
        self.ctx.check_deadline()
        self.ctx.log(f"context {context}")
        fns: dict[str, Any] = {}
        out: dict[str, list[float]] = {}
        for role in ("candidate", "baseline"):
            if role in self.failed and context >= self.failed[role]:
                out[role] = [math.inf]
                continue
            fn, rec = run_or_oom(lambda role=role: self._fn(role, context), context, self.ctx.device)
            if rec is not None:
                self._failed_at(role, context, rec)
                out[role] = [math.inf]
            else:
                fns[role] = fn
                release(self.ctx.device)
        if not fns:
            return out
        on_cuda = self.ctx.is_cuda
        samples, ooms = time_side_by_side(self.ctx, fns, context,
                                          warmup=self.params.get("warmup", 1 if on_cuda else 0),
                                          reps=self.params.get("reps", 5 if on_cuda else 3))
        out.update(samples)
        for role, rec in ooms.items():
            self._failed_at(role, context, rec)
            out[role] = [math.inf]
        fns.clear()
        release(self.ctx.device)
        return out

    def _failed_at(self, role: str, context: int, rec: OOMRecord) -> None:
        """Record the role's out-of-memory at ``context``: it counts as infinitely slow from here on."""
        self.failed[role] = context
        self.notes[role] = rec.note()

    def close(self) -> None:
        self.models.clear()
        release(self.ctx.device)


def _log_gap(samples: dict[str, list[float]]) -> float:
    """log(candidate / baseline) of the median latencies: negative where the candidate is faster."""
    c, b = float(np.median(samples["candidate"])), float(np.median(samples["baseline"]))
    if math.isinf(c) and math.isinf(b):
        return math.nan
    if math.isinf(b):
        return -math.inf
    if math.isinf(c):
        return math.inf
    return math.log(c / b)


def _interpolate(x0: float, d0: float, x1: float, d1: float) -> float:
    """Where the log-gap crosses zero between (x0, d0) and (x1, d1), in log-context space."""
    if math.isinf(d1) or math.isinf(d0):
        return x1  # an OOM on one side: the first context where the candidate wins outright
    t = d0 / (d0 - d1)
    return math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))


@measurement_kind("context_scaling", schema=SCHEMA, metrics=metric_units)
@under_cpu_threads()
def measure_context_scaling(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Sweep both models over the contexts; fit exponents; find (and refine) the crossover."""
    contexts = sorted(params["contexts"])
    pair = _Pair(ctx, params)
    try:
        sweep = {t: pair.measure(t) for t in contexts}
        med = {r: [float(np.median(sweep[t][r])) for t in contexts] for r in ("candidate", "baseline")}
        cross, note, extra = _crossover(pair, contexts, sweep, int(params.get("refine_steps", 0)),
                                        int(params.get("round_to", 1)))
    finally:
        pair.close()

    labels = {r: pair.entries[r].label for r in ("candidate", "baseline")}
    meta = {"phase": pair.phase, "precision": pair.precision, "batch": pair.batch, "device": ctx.device}
    out: dict[str, Metric] = {}
    exps: dict[str, float] = {}
    for role, label in labels.items():
        for t in contexts:
            s = sweep[t][role]
            if math.isinf(s[0]):
                out[f"{label}.{t}.latency"] = Metric.scalar(math.nan, "s", note=pair.notes.get(role, "OOM"),
                                                            oom=True, **meta)
            else:
                out[f"{label}.{t}.latency"] = Metric.of(s, "s", **meta)
        xs = [t for t, y in zip(contexts, med[role]) if math.isfinite(y)]
        ys = [y for y in med[role] if math.isfinite(y)]
        if len(xs) >= 2:
            coeff, slope = fit_power_law(xs, ys)
            exps[label] = slope
            out[f"{label}.exponent"] = Metric.scalar(slope, "", note=f"latency ~ {coeff:.3g} * T^{slope:.3f} "
                                                     f"over {xs[0]}..{xs[-1]}", coefficient=coeff, **meta)
        else:
            out[f"{label}.exponent"] = Metric.scalar(math.nan, "", note="fewer than two contexts ran", **meta)
    out["crossover"] = Metric.scalar(cross, "tok", note=note, candidate=labels["candidate"],
                                     baseline=labels["baseline"], **extra, **meta)
    c_max, b_max = med["candidate"][-1], med["baseline"][-1]
    out["speedup_at_max"] = Metric.scalar(
        b_max / c_max if math.isfinite(c_max) else 0.0, "",
        note=f"{labels['baseline']} latency / {labels['candidate']} latency at {contexts[-1]} tokens"
        + (f" ({pair.notes['baseline']})" if "baseline" in pair.notes else ""), **meta)
    if params.get("plot", True):
        from pytest_goni.plots import plot_latency_vs_context

        series = {labels[r]: (contexts, med[r]) for r in ("candidate", "baseline")}
        spread = {labels[r]: ([_percentile(sweep[t][r], 10) for t in contexts],
                              [_percentile(sweep[t][r], 90) for t in contexts]) for r in ("candidate", "baseline")}
        ooms = {labels[r]: float(pair.failed[r]) for r in pair.failed}
        at_or_below = math.isfinite(cross) and cross == contexts[0] and "already" in note
        plot_latency_vs_context(series, ctx.artifact("latency-vs-context.png"), crossover=cross, exponents=exps,
                                oom=ooms, title=f"{ctx.spec_id}: {pair.phase} latency ({ctx.device})",
                                ylabel=f"{pair.phase} latency (s)",
                                crossover_label=f"crossover <= {contexts[0]} tokens" if at_or_below else None,
                                spread=spread, gate_lines=getattr(ctx, "gate_lines", ()))
    return out


def _percentile(samples: list[float], q: float) -> float:
    """The q-th percentile of a point's latency samples (nan for a point that ran out of memory)."""
    finite = [x for x in samples if math.isfinite(x)]
    if not finite:
        return math.nan
    import numpy as np

    return float(np.percentile(finite, q))


def _crossover(pair: _Pair, contexts: list[int], sweep: dict[int, dict[str, list[float]]], refine: int,
               round_to: int) -> tuple[float, str, dict[str, Any]]:
    gaps = [_log_gap(sweep[t]) for t in contexts]
    pts = [(t, d) for t, d in zip(contexts, gaps) if not math.isnan(d)]
    if not pts:
        return math.nan, "both models failed at every context", {}
    xs = [p[0] for p in pts]
    ds = [p[1] for p in pts]
    if ds[0] <= 0:
        return float(xs[0]), (f"candidate already at least as fast at the shortest context ({xs[0]}); "
                              "the crossover is at or below it"), {"bracket": [None, xs[0]]}
    idx = next((i for i, d in enumerate(ds) if d <= 0), None)
    if idx is None:
        ratio = math.exp(ds[-1]) if math.isfinite(ds[-1]) else math.inf
        return math.nan, (f"no crossover in range: candidate slower at every context up to {xs[-1]} "
                          f"({ratio:.2f}x the baseline's latency there)"), {}
    lo, dlo, hi, dhi = xs[idx - 1], ds[idx - 1], xs[idx], ds[idx]
    if all(math.isfinite(v) for v in ds):
        # same answer as stats.crossover on the finite sweep (kept as the one definition)
        base = crossover(xs, [math.exp(d) for d in ds], [1.0] * len(ds))
    else:
        base = _interpolate(lo, dlo, hi, dhi)
    probes: list[tuple[int, float]] = []
    for _ in range(refine):
        mid = int(round(math.sqrt(lo * hi) / round_to) * round_to)
        if not lo < mid < hi:
            break
        d = _log_gap(pair.measure(mid))
        probes.append((mid, d))
        if math.isnan(d):
            break
        if d <= 0:
            hi, dhi = mid, d
        else:
            lo, dlo = mid, d
    value = _interpolate(lo, dlo, hi, dhi) if probes else base
    note = (f"candidate becomes faster between {lo} and {hi} tokens"
            + (f" (bisected {len(probes)}x)" if probes else " (log-log interpolation)"))
    return float(value), note, {"bracket": [lo, hi], "sweep_estimate": base,
                                "probes": [[m, d if math.isfinite(d) else str(d)] for m, d in probes]}
