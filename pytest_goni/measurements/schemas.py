"""Params schemas shared by the measurement kinds that build spec models.

Property order is kept as written: spec errors list the allowed keys in that order.
"""

from __future__ import annotations

from typing import Any

from pytest_goni.inference import MODEL_ENTRY, PRECISION
from pytest_goni.model_runs import CPU_THREADS, MODEL_NAMES, POSITIVE_INTS


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
