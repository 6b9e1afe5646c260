"""Measurement kind ``prefill``: prompt-processing latency, throughput and peak memory of models
over context lengths and batch sizes (SYS-02 runtime realism). At each point every model reads the
same tokens and the models are timed interleaved (A, B, C, A, B, C, ...: DESIGN principle 3), so
load on a shared machine hits them alike.

Metric keys: ``<label>.<T>.latency`` (s, one sample per repetition), ``<label>.<T>.tok_s``
(tokens/s per repetition), ``<label>.<T>.peak_mem`` (B) for batch 1; other batch sizes add a
``b<B>`` segment: ``<label>.<T>.b8.latency``. An OOM is a data point: NaN with the note
``OOM at T tokens`` (and larger contexts of that model are not tried). Metadata records the SDPA
backends PyTorch actually ran for each point.

On CUDA each prefill is captured once per point and replayed from a CUDA graph (``cuda_graph``,
default true: a fixed prompt shape, as a serving engine's buckets; ``models.decoding.PrefillRunner``)
after one eager call under the profiler (the SDPA backends it ran); the peak memory is an eager
call's. Built-in models return the last position's logits (what serving computes).

``best_of: {baseline_best: [baseline, baseline_flash, baseline_cudnn]}`` adds a label that, at each
point, is the listed label with the lowest median latency (its own samples, and ``chosen`` in the
meta): "the optimized baseline" is the fastest SDPA backend measured, whichever that is here.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_goni.device import release, under_cpu_threads
from pytest_goni.inference import (
    build_models,
    entry_labels,
    model_vocab,
    parse_entries,
    point_key,
    probe_each,
    random_tokens,
    resolve_precision,
    run_context,
    run_or_oom,
    tensor_peak_bytes,
    time_side_by_side,
)
from pytest_goni.measurements.schemas import IDENT, POSITIVE_INTS, context_sweep_schema
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric

SCHEMA: dict[str, Any] = context_sweep_schema(
    run={
        "batch_sizes": POSITIVE_INTS,
        "reps": {"type": "integer", "minimum": 1},
        "warmup": {"type": "integer", "minimum": 0},
        "min_time_s": {"type": "number", "minimum": 0},
    },
    options={
        "memory": {"type": "boolean", "description": "also measure peak memory (one extra call)"},
        "cuda_graph": {"type": "boolean", "description": "time prefill replayed from a CUDA graph (CUDA only)"},
        "best_of": {"type": "object", "propertyNames": {"pattern": IDENT},
                    "additionalProperties": {"type": "array", "minItems": 1,
                                             "items": {"type": "string", "pattern": IDENT}}},
    },
)


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units: dict[str, str] = {}
    for label in entry_labels(params["models"]) + list(params.get("best_of", {})):
        for t in params["contexts"]:
            for b in params.get("batch_sizes", [1]):
                k = point_key(label, t, b)
                units.update({f"{k}.latency": "s", f"{k}.tok_s": "tok/s"})
                if params.get("memory", True):
                    units[f"{k}.peak_mem"] = "B"
    return units


@measurement_kind("prefill", schema=SCHEMA, metrics=metric_units, split="contexts")
@under_cpu_threads()
def measure_prefill(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Time ``model.prefill(tokens)`` for every model side by side, per context and batch size."""
    precision = resolve_precision(params.get("precision", "auto"), ctx.device)
    contexts = sorted(params["contexts"])
    batches = params.get("batch_sizes", [1])
    with_memory = params.get("memory", True)
    on_cuda = ctx.is_cuda
    warmup = params.get("warmup", 1 if on_cuda else 0)
    reps = params.get("reps", 5 if on_cuda else 3)
    entries = parse_entries(params["models"])
    models = build_models(ctx, entries, precision, params.get("vocab_size"))
    vocab = min(model_vocab(m) for m in models.values())  # every model reads the same tokens
    out: dict[str, Metric] = {}
    for b in batches:
        failed: dict[str, str] = {}  # label -> the OOM that ended its sweep
        for t in contexts:
            ctx.check_deadline()
            ctx.log(f"prefill {t} tokens x batch {b}")
            for e in entries:
                if e.label in failed:
                    _missing(out, point_key(e.label, t, b), with_memory,
                             f"not run: {failed[e.label]} at a shorter context")
            live = [e for e in entries if e.label not in failed]
            if not live:
                continue
            tokens = random_tokens(b, t, vocab, ctx.device, seed=t)
            calls = {e.label: _prefill_call(ctx, models[e.model], e.sdpa, precision, tokens) for e in live}
            backends, ooms = probe_each(ctx, calls, t)
            calls = {k: v for k, v in calls.items() if k not in ooms}
            timed, modes = dict(calls), {k: "eager" for k in calls}
            if on_cuda and params.get("cuda_graph", True):
                for e in live:
                    if e.label in calls:
                        timed[e.label], modes[e.label] = graphed_prefill(
                            ctx, models[e.model], e.sdpa, precision, tokens, calls[e.label])
            samples, more = time_side_by_side(ctx, timed, t, warmup=warmup, reps=reps) if calls else ({}, {})
            del timed
            ooms.update(more)
            for e in live:
                k = point_key(e.label, t, b)
                if e.label in ooms:
                    rec = ooms[e.label]
                    failed[e.label] = rec.note()
                    _missing(out, k, with_memory, rec.note(), oom=rec.is_oom,
                             bytes_at_failure=rec.bytes_at_failure)
                    continue
                meta = {"sdpa_backends": backends[e.label], "sdpa_forced": e.sdpa, "precision": precision,
                        "mode": modes[e.label],
                        "batch": b, "context": t, "device": ctx.device, "interleaved_with": sorted(calls)}
                out[f"{k}.latency"] = Metric.of(samples[e.label], "s", **meta)
                out[f"{k}.tok_s"] = Metric.of([b * t / x for x in samples[e.label]], "tok/s", **meta)
            if with_memory:
                for e in live:
                    if e.label not in ooms:
                        _peak(ctx, out, failed, point_key(e.label, t, b), e.label, calls[e.label], t)
            del calls, tokens
            release(ctx.device)
    models.clear()
    release(ctx.device)
    for best, labels in params.get("best_of", {}).items():
        out.update(_best_of(out, best, labels, contexts, batches, with_memory))
    return out


def _prefill_call(ctx: Any, model: Any, sdpa: str | None, precision: str, tokens: Any) -> Any:
    def call() -> None:
        with run_context(ctx.device, precision, sdpa):
            model.prefill(tokens)
    return call


def graphed_prefill(ctx: Any, model: Any, sdpa: str | None, precision: str, tokens: Any, eager: Any) -> tuple[Any, str]:
    """The prefill replayed from a CUDA graph, or the eager call with the reason it stays eager."""
    from pytest_goni.models.decoding import PrefillRunner

    try:
        runner = PrefillRunner(model, tokens, context=lambda: run_context(ctx.device, precision, sdpa))
    except Exception as exc:  # noqa: BLE001 - a capture failure (an OOM too) leaves the eager call
        note = f"eager: graph capture failed ({type(exc).__name__}: {str(exc)[:100]})"
        runner = None
    if runner is None:
        release(ctx.device)
        return eager, note
    return runner, "cuda graph"


def _peak(ctx: Any, out: dict[str, Metric], failed: dict[str, str], key: str, label: str, call: Any,
          context: int) -> None:
    """Peak memory of one prefill; an OOM here (rare: timing already ran it) ends the label's sweep."""
    meta = dict(out[f"{key}.latency"].meta)
    measured, rec = run_or_oom(lambda: tensor_peak_bytes(call, ctx.device), context, ctx.device)
    if rec is not None:
        failed[label] = rec.note()
        out[f"{key}.peak_mem"] = Metric.scalar(math.nan, "B", note=rec.note(), oom=True, **meta)
        return
    peak, probe = measured
    out[f"{key}.peak_mem"] = Metric.scalar(peak, "B", probe=probe, **meta)


def _best_of(out: dict[str, Metric], best: str, labels: list[str], contexts: list[int], batches: list[int],
             with_memory: bool) -> dict[str, Metric]:
    """At each point, the listed label with the lowest median latency (NaN points lose)."""
    missing = [lb for lb in labels if f"{point_key(lb, contexts[0], batches[0])}.latency" not in out]
    if missing:
        raise ValueError(f"best_of {best!r} names labels this measurement does not run: {', '.join(missing)}")
    res: dict[str, Metric] = {}
    for b in batches:
        for t in contexts:
            def med(lb: str, t: int = t, b: int = b) -> float:
                v = out[f"{point_key(lb, t, b)}.latency"].value()
                return v if math.isfinite(v) else math.inf
            chosen = min(labels, key=med)
            src, dst = point_key(chosen, t, b), point_key(best, t, b)
            medians = {lb: (med(lb) if math.isfinite(med(lb)) else None) for lb in labels}
            for m in ("latency", "tok_s") + (("peak_mem",) if with_memory else ()):
                orig = out[f"{src}.{m}"]
                res[f"{dst}.{m}"] = Metric(list(orig.samples), orig.unit, orig.note,
                                           {**orig.meta, "chosen": chosen, "candidates": medians})
    return res


def _missing(out: dict[str, Metric], key: str, with_memory: bool, note: str, **meta: Any) -> None:
    meta = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in meta.items()}
    out[f"{key}.latency"] = Metric.scalar(math.nan, "s", note=note, **meta)
    out[f"{key}.tok_s"] = Metric.scalar(math.nan, "tok/s", note=note, **meta)
    if with_memory:
        out[f"{key}.peak_mem"] = Metric.scalar(math.nan, "B", note=note, **meta)
