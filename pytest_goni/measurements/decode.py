"""Measurement kind ``decode``: steady-state per-token decode latency at a filled context, and the
size of the state (KV cache or recurrent state) at that context (SYS-02 runtime/memory realism).

For each context T the same prompt of T tokens is prefilled into every model, then the models'
``model.step`` calls are timed interleaved (DESIGN principle 3), each with its state fed back, one
real decode step per sample (the context grows by the few steps timed,
negligible next to T). On CUDA the step is replayed from a CUDA graph on fixed buffers (recurrent
states, and the attention backends' static KV cache) when a replay reproduces the eager step
(``models.decoding.StepRunner``). Which ran is in each metric's meta (``step_mode``).

Keys: ``<label>.<T>.latency`` (s per step), ``<label>.<T>.tok_s`` (batch / latency),
``<label>.<T>.state_bytes`` (B), ``<label>.<T>.launches`` (kernel launches of one step: a
launch-bound step's time is this count times a few microseconds; `models.launches`: CUDA kernels
recorded by torch.profiler on a GPU, a count of kernel-launching aten ops on CPU; the meta says
which); batch sizes other than 1 add a ``b<B>`` segment.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_goni.device import release, under_cpu_threads
from pytest_goni.inference import (
    Decoder,
    build_models,
    entry_labels,
    model_vocab,
    parse_entries,
    point_key,
    random_tokens,
    resolve_precision,
    run_context,
    run_or_oom,
    sdpa_backends_used,
    state_nbytes,
    time_side_by_side,
)
from pytest_goni.measurements.schemas import POSITIVE_INTS, context_sweep_schema
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric

SCHEMA: dict[str, Any] = context_sweep_schema(
    run={
        "batch_sizes": POSITIVE_INTS,
        "reps": {"type": "integer", "minimum": 1, "description": "timed decode steps"},
        "warmup": {"type": "integer", "minimum": 0},
        "inner": {"type": "integer", "minimum": 1, "description": "steps per timed sample"},
    },
    options={
        "cuda_graph": {"type": "boolean", "description": "replay fixed-shape steps from a CUDA graph"},
    },
)

_PER_POINT = {"latency": "s", "tok_s": "tok/s", "state_bytes": "B", "launches": ""}


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units: dict[str, str] = {}
    for label in entry_labels(params["models"]):
        for t in params["contexts"]:
            for b in params.get("batch_sizes", [1]):
                k = point_key(label, t, b)
                units.update({f"{k}.{m}": u for m, u in _PER_POINT.items()})
    return units


@measurement_kind("decode", schema=SCHEMA, metrics=metric_units, split="contexts")
@under_cpu_threads()
def measure_decode(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Per-token decode latency of every model side by side with its state filled to each context,
    and the state's size."""
    precision = resolve_precision(params.get("precision", "auto"), ctx.device)
    entries = parse_entries(params["models"])
    models = build_models(ctx, entries, precision, params.get("vocab_size"))
    vocab = min(model_vocab(m) for m in models.values())
    out: dict[str, Metric] = {}
    for b in params.get("batch_sizes", [1]):
        failed: dict[str, str] = {}
        for t in sorted(params["contexts"]):
            ctx.check_deadline()
            ctx.log(f"decode after {t} tokens x batch {b}")
            for e in entries:
                if e.label in failed:
                    _missing(out, point_key(e.label, t, b), f"not run: {failed[e.label]} at a shorter context")
            live = [e for e in entries if e.label not in failed]
            if not live:
                continue
            prompt = random_tokens(b, t, vocab, ctx.device, seed=t)
            token = random_tokens(b, 1, vocab, ctx.device, seed=t + 1)[:, 0]
            decoders: dict[str, Decoder] = {}
            sizes: dict[str, int] = {}
            launches: dict[str, Any] = {}
            ooms: dict[str, Any] = {}
            for e in live:
                filled, rec = run_or_oom(lambda e=e, p=prompt, k=token: _filled_decoder(
                    ctx, models[e.model], e.sdpa, precision, p, k, params), t, ctx.device)
                if rec is not None:
                    ooms[e.label] = rec
                else:
                    decoders[e.label], sizes[e.label], launches[e.label] = filled
            del prompt
            calls = {label: _step_call(ctx, d, precision, _sdpa_of(entries, label)) for label, d in decoders.items()}
            backends = {label: (sdpa_backends_used(fn) if decoders[label].graph is None else [])
                        for label, fn in calls.items()}
            samples, more = (time_side_by_side(ctx, calls, t, warmup=params.get("warmup", 3),
                                               reps=params.get("reps", 20 if ctx.is_cuda else 10),
                                               inner=params.get("inner", 1)) if calls else ({}, {}))
            ooms.update(more)
            for e in live:
                k = point_key(e.label, t, b)
                if e.label in ooms:
                    failed[e.label] = ooms[e.label].note()
                    _missing(out, k, ooms[e.label].note(), oom=True)
                    continue
                meta = {"step_mode": decoders[e.label].note, "sdpa_backends": backends[e.label],
                        "sdpa_forced": e.sdpa, "precision": precision, "batch": b, "context": t,
                        "device": ctx.device, "interleaved_with": sorted(calls)}
                out[f"{k}.latency"] = Metric.of(samples[e.label], "s", **meta)
                out[f"{k}.tok_s"] = Metric.of([b / x for x in samples[e.label]], "tok/s", **meta)
                out[f"{k}.state_bytes"] = Metric.scalar(sizes[e.label], "B",
                                                        note="state after prefill of the context", **meta)
                n = launches[e.label]
                out[f"{k}.launches"] = Metric.scalar(n.launches, "", exact=True, note=n.how, **meta,
                                                     launch_ops=dict(n.by_op.most_common(8)))
            del calls, decoders
            release(ctx.device)
    models.clear()
    release(ctx.device)
    return out


def _sdpa_of(entries: list[Any], label: str) -> str | None:
    return next(e.sdpa for e in entries if e.label == label)


def _filled_decoder(ctx: Any, model: Any, sdpa: str | None, precision: str, prompt: Any, token: Any,
                    params: dict[str, Any]) -> tuple[Decoder, int, Any]:
    """Prefill the prompt; return a decoder at that state (CUDA graph when possible), the state's
    size and the launches of one eager step (counted on a copy of the state)."""
    from pytest_goni.models.launches import step_launches

    def run_ctx() -> Any:
        return run_context(ctx.device, precision, sdpa)

    with run_ctx():
        _, state = model.prefill(prompt)
    nbytes = state_nbytes(model, state)
    launches = step_launches(model, token, state, context=run_ctx)
    decoder = Decoder(model, token, state)
    if ctx.is_cuda and params.get("cuda_graph", True):
        steps = params.get("warmup", 3) + params.get("reps", 20) * params.get("inner", 1) + 8
        decoder.try_cuda_graph(run_ctx, max_steps=steps)
    else:
        decoder.note = "eager (CPU)" if not ctx.is_cuda else "eager (cuda_graph: false)"
    return decoder, nbytes, launches


def _step_call(ctx: Any, decoder: Decoder, precision: str, sdpa: str | None) -> Any:
    def step() -> None:
        with run_context(ctx.device, precision, sdpa):
            decoder.advance()
    return step


def _missing(out: dict[str, Metric], key: str, note: str, **meta: Any) -> None:
    for m, u in _PER_POINT.items():
        out[f"{key}.{m}"] = Metric.scalar(math.nan, u, note=note, **meta)
