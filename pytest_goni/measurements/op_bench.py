"""Measurement kind ``op_bench``: latency, throughput and % of roofline of one registered op over
a set of shapes, optionally interleaved with a baseline op for speedup ratios.

Params: ``op`` (a name in the op registry, see ``pytest_goni.bench_ops``), ``shapes`` (a list of shape
mappings, or one mapping whose list-valued keys are swept as a cartesian product:
``{T: [128, 256], B: 1, H: 4, D: 64}`` is two shapes), and optionally ``dtype``, ``baseline``,
``reps``, ``warmup``, ``min_time_s``, ``max_reps``, ``inner``, ``flush_l2``, ``cuda_graph``,
``peak_memory``, ``label_by``.

Metric keys, for each shape labelled ``<L>`` and each timed op ``<op>`` (the op, and the
baseline if given)::

    <op>.<L>.latency        s       seconds per call, one sample per timed round
    <op>.<L>.flops          FLOP/s  op.flops(shape) / latency, per sample
    <op>.<L>.bandwidth      B/s     op.bytes(shape) / latency, per sample
    <op>.<L>.pct_roofline   %       100 * max(FLOP/s / peak FLOP/s, B/s / peak B/s), per sample
    <op>.<L>.peak_memory    B       (only with peak_memory: true) peak bytes one call needed
    speedup.<L>             ""      (only with a baseline) baseline latency / op latency, paired
                                    per round: > 1 means the op is faster than its baseline

The label ``<L>`` is built from ``label_by`` (default: the shape keys whose values differ between
shapes; for a single shape, ``T`` if present, else every key): one key gives its bare value
(``sdpa_attention.512.latency``), several give ``key+value`` joined by ``_``
(``sdpa_attention.T512_D64.latency``). Labels must be unique.

The op and its baseline run in rounds (op, baseline, op, baseline, ...) on the same inputs
when they share an input builder, so ``speedup`` pairs runs taken back to back. The roofline is
this device's, measured once per process by ``roofline.default_roofline`` (matmul of the op's
dtype, copy bandwidth). An out-of-memory error at one shape is a data point: that shape's
metrics come back with no samples and a note saying so, and the other shapes still run.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from typing import Any

from ..bench_ops import DTYPES, to_dtype
from ..device import is_oom
from ..lazy import torch  # imported when it first measures
from ..registry import REGISTRIES, Op, measurement_kind
from ..stats import Metric, ratio_samples
from ..timing import peak_memory, time_interleaved
from .roofline import default_roofline, device_name

_SCALAR = {"type": ["integer", "string"],
           "description": "A dimension (positive integer) or an option such as an SDPA backend."}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "op_bench measurement params",
    "description": "Times a registered op over shapes; reports latency, FLOP/s, B/s, % of this "
                   "device's roofline, and speedup over an optional baseline op.",
    "type": "object",
    "additionalProperties": False,
    "required": ["op", "shapes"],
    "properties": {
        "op": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
               "description": "Name of a registered op (e.g. sdpa_attention, naive_attention, "
                              "matmul, copy)."},
        "baseline": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                     "description": "Name of a registered op timed interleaved with `op` on the "
                                    "same shapes; adds speedup.<label> = baseline / op latency."},
        "shapes": {
            "type": ["array", "object"],
            "description": "Either a list of shape mappings ([{B: 1, H: 4, T: 512, D: 64}]), or "
                           "one mapping whose list values are swept ({T: [128, 256], B: 1}).",
            "if": {"type": "array"},
            "then": {"minItems": 1,
                     "items": {"type": "object", "minProperties": 1,
                               "additionalProperties": _SCALAR}},
            "else": {"minProperties": 1,
                     "additionalProperties": {
                         "type": ["integer", "string", "array"], "minItems": 1, "items": _SCALAR,
                         "description": "A dimension, an option, or a list of them to sweep."}},
        },
        "dtype": {"enum": list(DTYPES), "description": "Input dtype (default float32)."},
        "reps": {"type": "integer", "minimum": 1, "maximum": 100000,
                 "description": "Timed rounds at least (default 20)."},
        "warmup": {"type": "integer", "minimum": 0, "maximum": 10000,
                   "description": "Untimed rounds first (default 3)."},
        "min_time_s": {"type": "number", "minimum": 0,
                       "description": "Keep adding rounds until this many seconds were timed "
                                      "(default 0)."},
        "max_reps": {"type": "integer", "minimum": 1,
                     "description": "Never more rounds than this (default: no cap)."},
        "inner": {"type": "integer", "minimum": 1, "maximum": 100000,
                  "description": "Calls per sample, averaged (default 1); lifts very short ops "
                                 "above the timer's resolution."},
        "flush_l2": {"type": "boolean",
                     "description": "Evict the last-level cache before every timed call "
                                    "(default false)."},
        "cuda_graph": {"type": "boolean",
                       "description": "On CUDA, time CUDA-graph replays (default false)."},
        "peak_memory": {"type": "boolean",
                        "description": "Also report <op>.<label>.peak_memory in bytes "
                                       "(default false)."},
        "label_by": {
            "type": ["string", "array"], "minItems": 1, "items": {"type": "string"},
            "description": "Shape key(s) that name each shape in metric keys (default: the keys "
                           "that vary between shapes).",
        },
    },
}

_SEGMENT = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)$")


def expand_shapes(spec: list[Mapping[str, Any]] | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The shapes a ``shapes`` param names: a list as is, a mapping swept over its list values
    (cartesian product, keys in the order written, the last key varying fastest)."""
    if isinstance(spec, Mapping):
        keys = list(spec)
        axes = [v if isinstance(v, list) else [v] for v in spec.values()]
        return [dict(zip(keys, combo)) for combo in itertools.product(*axes)]
    if not isinstance(spec, list) or not spec:
        raise ValueError(f"shapes must be a non-empty list of mappings or a mapping; got {spec!r}")
    return [dict(s) for s in spec]


def shape_labels(shapes: list[dict[str, Any]], label_by: str | list[str] | None = None) -> list[str]:
    """One metric-key segment per shape (see the module docstring for the rule)."""
    if label_by is None:
        keys = [k for k in _all_keys(shapes) if len({repr(s.get(k)) for s in shapes}) > 1]
        if not keys:
            keys = ["T"] if "T" in shapes[0] else list(shapes[0])
    else:
        keys = [label_by] if isinstance(label_by, str) else list(label_by)
    labels = []
    for shape in shapes:
        missing = [k for k in keys if k not in shape]
        if missing:
            raise ValueError(f"label_by key(s) {missing} missing from shape {shape}")
        if len(keys) == 1:
            label = str(shape[keys[0]])
        else:
            label = "_".join(f"{k}{shape[k]}" for k in keys)
        if not _SEGMENT.match(label):
            raise ValueError(f"shape {shape} gives the metric-key label {label!r}, which is not "
                             "an identifier or a number; choose label_by keys with simple values")
        labels.append(label)
    seen: dict[str, dict[str, Any]] = {}
    for label, shape in zip(labels, shapes):
        if label in seen:
            raise ValueError(f"shapes {seen[label]} and {shape} both get the label {label!r}; "
                             f"set label_by to keys that tell them apart (now {keys})")
        seen[label] = shape
    return labels


def _all_keys(shapes: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for s in shapes:
        keys.extend(k for k in s if k not in keys)
    return keys


def _timed_ops(params: Mapping[str, Any]) -> list[str]:
    names = [params["op"]]
    if params.get("baseline"):
        if params["baseline"] == params["op"]:
            raise ValueError(f"baseline must differ from op (both are {params['op']!r})")
        names.append(params["baseline"])
    return names


def op_bench_metrics(params: dict[str, Any]) -> dict[str, str]:
    """``{key: unit}`` the op_bench kind returns for ``params``."""
    labels = shape_labels(expand_shapes(params["shapes"]), params.get("label_by"))
    out: dict[str, str] = {}
    for name in _timed_ops(params):
        for label in labels:
            out[f"{name}.{label}.latency"] = "s"
            out[f"{name}.{label}.flops"] = "FLOP/s"
            out[f"{name}.{label}.bandwidth"] = "B/s"
            out[f"{name}.{label}.pct_roofline"] = "%"
            if params.get("peak_memory"):
                out[f"{name}.{label}.peak_memory"] = "B"
    if params.get("baseline"):
        for label in labels:
            out[f"speedup.{label}"] = ""
    return out


@measurement_kind("op_bench", schema=SCHEMA, metrics=op_bench_metrics)
def measure_op_bench(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Latency, FLOP/s, B/s and % of roofline of an op over shapes, with optional baseline."""
    names = _timed_ops(params)
    ops: dict[str, Op] = {n: REGISTRIES.ops.get_or_explain(n) for n in names}
    for o in ops.values():
        if o.requires_cuda and not ctx.is_cuda:
            raise RuntimeError(f"op {o.name!r} needs a CUDA device; this run is on {ctx.device}")
    dtype_name = params.get("dtype", "float32")
    dtype = to_dtype(dtype_name)
    shapes = expand_shapes(params["shapes"])
    labels = shape_labels(shapes, params.get("label_by"))
    roof = default_roofline(ctx.device, dtype_name)
    base_meta = {"device": ctx.device, "device_name": device_name(ctx.device), "dtype": dtype_name}
    out: dict[str, Metric] = {}
    for label, shape in zip(labels, shapes):
        ctx.check_deadline()
        ctx.log(f"shape {label}")
        full = {**shape, "dtype": dtype_name}
        try:
            out.update(_bench_shape(ctx, params, ops, label, full, dtype, roof, base_meta))
        except Exception as exc:
            if not is_oom(exc):
                raise
            if ctx.is_cuda:
                torch.cuda.empty_cache()
            note = f"OOM at {shape}: {str(exc).splitlines()[0][:200]}"
            ctx.log(note)
            out.update(_oom_metrics(params, label, note))
    return out


def _oom_metrics(params: Mapping[str, Any], label: str, note: str) -> dict[str, Metric]:
    """Empty-sample metrics for every key of one shape, each carrying the OOM note."""
    units = {"latency": "s", "flops": "FLOP/s", "bandwidth": "B/s", "pct_roofline": "%",
             "peak_memory": "B"}
    out: dict[str, Metric] = {}
    for name in _timed_ops(params):
        for what, unit in units.items():
            if what == "peak_memory" and not params.get("peak_memory"):
                continue
            out[f"{name}.{label}.{what}"] = Metric([], unit, note=note)
    if params.get("baseline"):
        out[f"speedup.{label}"] = Metric([], "", note=note)
    return out


def _bench_shape(ctx: Any, params: Mapping[str, Any], ops: dict[str, Op], label: str,
                 shape: dict[str, Any], dtype: torch.dtype, roof: Any,
                 base_meta: dict[str, Any]) -> dict[str, Metric]:
    """Time every op at one shape, interleaved, and turn the samples into metrics."""
    inputs: dict[str, tuple] = {}
    for name, o in ops.items():
        shared = next((inputs[n] for n, other in ops.items()
                       if n in inputs and other.make_inputs is o.make_inputs), None)
        inputs[name] = shared if shared is not None else o.make_inputs(shape, ctx.device, dtype)
    calls = {name: (lambda o=o, x=inputs[name]: o.fn(*x)) for name, o in ops.items()}
    samples = time_interleaved(
        calls, ctx.device,
        warmup=int(params.get("warmup", 3)), reps=int(params.get("reps", 20)),
        min_time_s=float(params.get("min_time_s", 0.0)), max_reps=params.get("max_reps"),
        inner=int(params.get("inner", 1)), flush_l2=bool(params.get("flush_l2", False)),
        cuda_graph=bool(params.get("cuda_graph", False)), check=ctx.check_deadline)
    out: dict[str, Metric] = {}
    for name, o in ops.items():
        secs = samples[name]
        flop, nbytes = float(o.flops(shape)), float(o.bytes(shape))
        meta = {**base_meta, "op": name, "shape": {k: v for k, v in shape.items() if k != "dtype"}}
        describe = getattr(o.fn, "describe", None)
        ran = describe(*inputs[name]) if callable(describe) else {}
        flop_rate = [flop / s for s in secs]
        byte_rate = [nbytes / s for s in secs]
        out[f"{name}.{label}.latency"] = Metric.of(secs, "s", **meta, **ran)
        out[f"{name}.{label}.flops"] = Metric.of(flop_rate, "FLOP/s", flops_per_call=flop, **meta)
        out[f"{name}.{label}.bandwidth"] = Metric.of(byte_rate, "B/s", bytes_per_call=nbytes,
                                                     **meta)
        out[f"{name}.{label}.pct_roofline"] = Metric.of(
            [roof.percent(f, b) for f, b in zip(flop_rate, byte_rate)], "%",
            roofline_flops=roof.flops, roofline_bandwidth=roof.bandwidth,
            roofline_matmul_dtype=roof.matmul_dtype, **meta)
        if params.get("peak_memory"):
            fn, x = o.fn, inputs[name]
            out[f"{name}.{label}.peak_memory"] = Metric.scalar(
                peak_memory(lambda fn=fn, x=x: fn(*x), ctx.device), "B", **meta)
    if params.get("baseline"):
        op_name, base_name = params["op"], params["baseline"]
        ratios = ratio_samples(samples[base_name], samples[op_name])
        if any(math.isnan(r) for r in ratios):
            raise RuntimeError(f"speedup at {label}: a zero latency sample; the timer failed")
        out[f"speedup.{label}"] = Metric.of(ratios, "", **base_meta, op=op_name,
                                            baseline=base_name, shape=meta["shape"])
    return out
