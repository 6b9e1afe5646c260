"""Helpers shared by the measurement kinds that build and run models: param schemas, counts,
config hashes, devices, OOM detection."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
from collections.abc import Iterator
from typing import Any

import torch

#: A metric-key segment: spec model names become segments, so they must be identifiers.
IDENT = "^[A-Za-z_][A-Za-z0-9_]*$"

#: A count written as a YAML number or as a string YAML leaves unparsed ("2e5", "1.5e6").
COUNT = {"anyOf": [{"type": "number", "minimum": 0},
                   {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?[eE]\+?[0-9]+$"}]}

MODEL_NAMES = {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": IDENT}}

POSITIVE_INTS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}}

CPU_THREADS = {"type": "integer", "minimum": 1,
               "description": "torch intra-op threads while this measurement runs on the CPU (restored after)"}


@contextlib.contextmanager
def cpu_threads(n: int | None, device: str) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads on the CPU, restoring the previous count after.

    On a small shared host, OpenMP threads that spin at barriers while a core is taken by another
    process turn millisecond ops into tenths of a second; one thread per measurement keeps CPU
    timings about the work measured. No effect on CUDA or when ``n`` is None.
    """
    if n is None or device.startswith("cuda"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_count(v: Any) -> int:
    """An integer count from a YAML number or a string such as ``"2e5"``."""
    f = float(v)
    if not math.isfinite(f) or f < 0:
        raise ValueError(f"not a count: {v!r}")
    return int(round(f))


def config_hash(obj: Any) -> str:
    """SHA-256 (first 16 hex digits) of a canonical JSON rendering: what a result was made from."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_config(ctx: Any, name: str) -> dict[str, Any]:
    """The spec's config of model ``name``, with a clear error when it is not declared."""
    if name not in ctx.models:
        known = ", ".join(sorted(ctx.models)) or "none"
        raise KeyError(f"model {name!r} is not in the spec's models section (declared: {known})")
    return dict(ctx.models[name])


def build_on_device(ctx: Any, name: str, **overrides: Any) -> torch.nn.Module:
    """Build the spec's model ``name`` and move it to the measurement's device."""
    model_config(ctx, name)
    model = ctx.build_model(name, **overrides)
    return model.to(ctx.device)


def param_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(total, non-embedding) parameter counts through the model contract's ``num_params``."""
    if hasattr(model, "num_params"):
        return int(model.num_params(embedding=True)), int(model.num_params(embedding=False))
    total = sum(p.numel() for p in model.parameters())
    return total, total


def release(device: str) -> None:
    """Leave the device clean for the next measurement: collect garbage, empty the CUDA cache."""
    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error (CUDA, CPU allocator, or a simulated cap)."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    msg = str(exc).lower()
    return "out of memory" in msg or "cudnn_status_alloc_failed" in msg or "can't allocate memory" in msg
