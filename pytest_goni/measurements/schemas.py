"""Params schemas and their fragments (identifiers, counts, model entries...) shared by the
measurement kinds that build spec models.

Property order is kept as written: spec errors list the allowed keys in that order.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_goni.inference import SDPA_BACKENDS

#: A metric-key segment: spec model names become segments, so they must be identifiers.
IDENT = "^[A-Za-z_][A-Za-z0-9_]*$"

#: A count written as a YAML number or as a string YAML leaves unparsed ("2e5", "1.5e6").
COUNT = {"anyOf": [{"type": "number", "minimum": 0},
                   {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?[eE]\+?[0-9]+$"}]}

MODEL_NAMES = {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": IDENT}}

POSITIVE_INTS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}}

CPU_THREADS = {"type": "integer", "minimum": 1,
               "description": "torch intra-op threads while this measurement runs on the CPU (restored after)"}

MODEL_ENTRY = {
    "oneOf": [
        {"type": "string", "pattern": IDENT},
        {"type": "object", "required": ["model"], "additionalProperties": False,
         "properties": {"model": {"type": "string", "pattern": IDENT},
                        "sdpa": {"enum": list(SDPA_BACKENDS)},
                        "label": {"type": "string", "pattern": IDENT}}},
    ]
}

PRECISION = {"enum": ["auto", "fp32", "bf16", "bf16-autocast"],
             "description": "auto: bf16 autocast on CUDA, fp32 on CPU"}


def params_schema(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """A kind's params: a mapping of exactly these keys (any other is a spec error)."""
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


def named_models_schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Params of kinds that build each named spec model (``models: [name, ...]``) and run it
    under ``cpu_threads``; ``properties`` follow those two, ``required`` add to ``models``."""
    return params_schema(["models", *required], {"cpu_threads": CPU_THREADS, "models": MODEL_NAMES, **properties})


def context_sweep_schema(run: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Params of the inference kinds that run model entries over context lengths (prefill, decode,
    memory): ``run`` (batching, repetitions) stands after ``contexts``, ``options`` after
    ``precision`` and ``vocab_size``."""
    return params_schema(["models", "contexts"], {
        "cpu_threads": CPU_THREADS,
        "models": {"type": "array", "minItems": 1, "items": MODEL_ENTRY},
        "contexts": POSITIVE_INTS,
        **run,
        "precision": PRECISION,
        "vocab_size": {"type": "integer", "minimum": 2},
        **options,
    })


def as_count(v: Any) -> int:
    """An integer count from a YAML number or a string such as ``"2e5"`` (a :data:`COUNT` value)."""
    f = float(v)
    if not math.isfinite(f) or f < 0:
        raise ValueError(f"not a count: {v!r}")
    return int(round(f))
