"""Measurement kind ``decode``: steady-state per-token decode latency at a filled context, and the
size of the state (KV cache or recurrent state) at that context (SYS-02 runtime/memory realism).

For each model and context T the prompt of T tokens is prefilled, then ``model.step`` runs with
its state fed back, one real decode step per sample (the context grows by the few steps timed,
negligible next to T). On CUDA the step is replayed from a CUDA graph when the state has a fixed
shape (recurrent models) and a replay reproduces the eager step; a KV cache that grows is timed
eagerly. Which of the two ran is in each metric's meta (``step_mode``).

Keys: ``<label>.<T>.latency`` (s per step), ``<label>.<T>.tok_s`` (batch / latency),
``<label>.<T>.state_bytes`` (B); batch sizes other than 1 add a ``b<B>`` segment.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_goni.inference import (
    MODEL_ENTRY,
    PRECISION,
    Decoder,
    build_for_inference,
    entry_labels,
    model_vocab,
    oom_record,
    parse_entries,
    random_tokens,
    resolve_precision,
    run_context,
    sdpa_backends_used,
    state_nbytes,
)
from pytest_goni.measurements.prefill import point_key
from pytest_goni.model_runs import POSITIVE_INTS, is_oom, release
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
        "reps": {"type": "integer", "minimum": 1, "description": "timed decode steps"},
        "warmup": {"type": "integer", "minimum": 0},
        "inner": {"type": "integer", "minimum": 1, "description": "steps per timed sample"},
        "precision": PRECISION,
        "vocab_size": {"type": "integer", "minimum": 2},
        "cuda_graph": {"type": "boolean", "description": "replay fixed-shape steps from a CUDA graph"},
    },
}

_PER_POINT = {"latency": "s", "tok_s": "tok/s", "state_bytes": "B"}


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units: dict[str, str] = {}
    for label in entry_labels(params["models"]):
        for t in params["contexts"]:
            for b in params.get("batch_sizes", [1]):
                k = point_key(label, t, b)
                units.update({f"{k}.{m}": u for m, u in _PER_POINT.items()})
    return units


@measurement_kind("decode", schema=SCHEMA, metrics=metric_units)
def measure_decode(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Per-token decode latency with the state filled to each context, and the state's size."""
    precision = resolve_precision(params.get("precision", "auto"), ctx.device)
    out: dict[str, Metric] = {}
    for entry in parse_entries(params["models"]):
        model = build_for_inference(ctx, entry, precision, params.get("vocab_size"))
        vocab = model_vocab(model)
        for b in params.get("batch_sizes", [1]):
            failed: str | None = None
            for t in sorted(params["contexts"]):
                k = point_key(entry.label, t, b)
                if failed is not None:
                    _missing(out, k, f"not run: {failed} at a shorter context")
                    continue
                ctx.check_deadline()
                try:
                    out.update(_measure_point(ctx, model, entry.sdpa, precision, vocab, b, t, k, params))
                except Exception as exc:
                    if not is_oom(exc):
                        raise
                    rec = oom_record(exc, t, ctx.device)
                    failed = rec.note()
                    _missing(out, k, rec.note(), oom=True)
                release(ctx.device)
        del model
        release(ctx.device)
    return out


def _measure_point(ctx: Any, model: Any, sdpa: str | None, precision: str, vocab: int, batch: int,
                   context: int, key: str, params: dict[str, Any]) -> dict[str, Metric]:
    prompt = random_tokens(batch, context, vocab, ctx.device, seed=context)
    token = random_tokens(batch, 1, vocab, ctx.device, seed=context + 1)[:, 0]

    def run_ctx() -> Any:
        return run_context(ctx.device, precision, sdpa)

    with run_ctx():
        _, state = model.prefill(prompt)
    del prompt
    nbytes = state_nbytes(model, state)
    decoder = Decoder(model, token, state)
    if ctx.is_cuda and params.get("cuda_graph", True):
        decoder.try_cuda_graph(run_ctx)
    elif not ctx.is_cuda:
        decoder.note = "eager (CPU)"
    else:
        decoder.note = "eager (cuda_graph: false)"

    def step() -> None:
        with run_ctx():
            decoder.advance()

    backends = sdpa_backends_used(step) if decoder.graph is None else []
    samples = time_fn(step, ctx.device, warmup=params.get("warmup", 3),
                      reps=params.get("reps", 20 if ctx.is_cuda else 10),
                      inner=params.get("inner", 1), check=ctx.check_deadline)
    meta = {"step_mode": decoder.note, "sdpa_backends": backends, "sdpa_forced": sdpa,
            "precision": precision, "batch": batch, "context": context, "device": ctx.device}
    return {
        f"{key}.latency": Metric.of(samples, "s", **meta),
        f"{key}.tok_s": Metric.of([batch / s for s in samples], "tok/s", **meta),
        f"{key}.state_bytes": Metric.scalar(nbytes, "B", note="state after prefill of the context", **meta),
    }


def _missing(out: dict[str, Metric], key: str, note: str, **meta: Any) -> None:
    for m, u in _PER_POINT.items():
        out[f"{key}.{m}"] = Metric.scalar(math.nan, u, note=note, **meta)
