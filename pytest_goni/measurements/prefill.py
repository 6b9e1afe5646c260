"""Measurement kind ``prefill``: prompt-processing latency, throughput and peak memory of models
over context lengths and batch sizes (SYS-02 runtime realism).

Metric keys: ``<label>.<T>.latency`` (s, one sample per repetition), ``<label>.<T>.tok_s``
(tokens/s per repetition), ``<label>.<T>.peak_mem`` (B) for batch 1; other batch sizes add a
``b<B>`` segment: ``<label>.<T>.b8.latency``. An OOM is a data point: NaN with the note
``OOM at T tokens`` (and larger contexts of that model are not tried). Metadata records the SDPA
backends PyTorch actually ran for each point.

``best_of: {baseline_best: [baseline, baseline_flash, baseline_cudnn]}`` adds a label that, at each
point, is the listed label with the lowest median latency (its own samples, and ``chosen`` in the
meta): "the optimized baseline" is the fastest SDPA backend measured, whichever that is here.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_goni.inference import (
    MODEL_ENTRY,
    PRECISION,
    build_for_inference,
    entry_labels,
    model_vocab,
    oom_record,
    parse_entries,
    random_tokens,
    resolve_precision,
    run_context,
    sdpa_backends_used,
    tensor_peak_bytes,
)
from pytest_goni.model_runs import IDENT, POSITIVE_INTS, is_oom, release
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric
from pytest_goni.timing import time_fn

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["models", "contexts"],
    "additionalProperties": False,
    "properties": {
        "models": {"type": "array", "minItems": 1, "items": MODEL_ENTRY},
        "contexts": POSITIVE_INTS,
        "batch_sizes": POSITIVE_INTS,
        "reps": {"type": "integer", "minimum": 1},
        "warmup": {"type": "integer", "minimum": 0},
        "min_time_s": {"type": "number", "minimum": 0},
        "precision": PRECISION,
        "vocab_size": {"type": "integer", "minimum": 2},
        "memory": {"type": "boolean", "description": "also measure peak memory (one extra call)"},
        "best_of": {"type": "object", "propertyNames": {"pattern": IDENT},
                    "additionalProperties": {"type": "array", "minItems": 1,
                                             "items": {"type": "string", "pattern": IDENT}}},
    },
}


def point_key(label: str, context: int, batch: int) -> str:
    return f"{label}.{context}" if batch == 1 else f"{label}.{context}.b{batch}"


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


@measurement_kind("prefill", schema=SCHEMA, metrics=metric_units)
def measure_prefill(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Time ``model.prefill(tokens)`` for each model, context and batch size."""
    precision = resolve_precision(params.get("precision", "auto"), ctx.device)
    contexts = sorted(params["contexts"])
    batches = params.get("batch_sizes", [1])
    with_memory = params.get("memory", True)
    out: dict[str, Metric] = {}
    for entry in parse_entries(params["models"]):
        model = build_for_inference(ctx, entry, precision, params.get("vocab_size"))
        vocab = model_vocab(model)
        for b in batches:
            failed: str | None = None
            for t in contexts:
                k = point_key(entry.label, t, b)
                if failed is not None:
                    _missing(out, k, with_memory, f"not run: {failed} at a shorter context")
                    continue
                ctx.check_deadline()
                try:
                    out.update(_measure_point(ctx, model, entry.sdpa, precision, vocab, b, t, k, params))
                except Exception as exc:
                    if not is_oom(exc):
                        raise
                    rec = oom_record(exc, t, ctx.device)
                    failed = rec.note()
                    _missing(out, k, with_memory, rec.note(), oom=True, bytes_at_failure=rec.bytes_at_failure)
                if failed is not None:
                    release(ctx.device)  # after the except block: the traceback no longer pins memory
        del model
        release(ctx.device)
    for best, labels in params.get("best_of", {}).items():
        out.update(_best_of(out, best, labels, contexts, batches, with_memory))
    return out


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


def _measure_point(ctx: Any, model: Any, sdpa: str | None, precision: str, vocab: int, batch: int,
                   context: int, key: str, params: dict[str, Any]) -> dict[str, Metric]:
    tokens = random_tokens(batch, context, vocab, ctx.device, seed=context)

    def call() -> None:
        with run_context(ctx.device, precision, sdpa):
            model.prefill(tokens)

    backends = sdpa_backends_used(call)
    on_cuda = ctx.is_cuda
    samples = time_fn(call, ctx.device, warmup=params.get("warmup", 1 if on_cuda else 0),
                      reps=params.get("reps", 5 if on_cuda else 3), min_time_s=params.get("min_time_s", 0.0),
                      check=ctx.check_deadline)
    meta = {"sdpa_backends": backends, "sdpa_forced": sdpa, "precision": precision, "batch": batch,
            "context": context, "device": ctx.device}
    out = {
        f"{key}.latency": Metric.of(samples, "s", **meta),
        f"{key}.tok_s": Metric.of([batch * context / s for s in samples], "tok/s", **meta),
    }
    if params.get("memory", True):
        peak, probe = tensor_peak_bytes(call, ctx.device)
        out[f"{key}.peak_mem"] = Metric.scalar(peak, "B", probe=probe, **meta)
    return out


def _missing(out: dict[str, Metric], key: str, with_memory: bool, note: str, **meta: Any) -> None:
    meta = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in meta.items()}
    out[f"{key}.latency"] = Metric.scalar(math.nan, "s", note=note, **meta)
    out[f"{key}.tok_s"] = Metric.scalar(math.nan, "tok/s", note=note, **meta)
    if with_memory:
        out[f"{key}.peak_mem"] = Metric.scalar(math.nan, "B", note=note, **meta)
