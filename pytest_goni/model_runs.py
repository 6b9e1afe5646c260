"""Helpers shared by the measurement kinds that build and run models: param schemas, counts,
config hashes, devices, OOM detection."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import torch

from pytest_goni.device import cpu_threads, is_oom, release  # noqa: F401  (moved to device.py)

#: A metric-key segment: spec model names become segments, so they must be identifiers.
IDENT = "^[A-Za-z_][A-Za-z0-9_]*$"

#: A count written as a YAML number or as a string YAML leaves unparsed ("2e5", "1.5e6").
COUNT = {"anyOf": [{"type": "number", "minimum": 0},
                   {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?[eE]\+?[0-9]+$"}]}

MODEL_NAMES = {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": IDENT}}

POSITIVE_INTS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}}

CPU_THREADS = {"type": "integer", "minimum": 1,
               "description": "torch intra-op threads while this measurement runs on the CPU (restored after)"}


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


def param_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(total, non-embedding) parameter counts through the model contract's ``num_params``."""
    if hasattr(model, "num_params"):
        return int(model.num_params(embedding=True)), int(model.num_params(embedding=False))
    total = sum(p.numel() for p in model.parameters())
    return total, total
