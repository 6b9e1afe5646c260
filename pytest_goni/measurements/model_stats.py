"""Measurement kind ``model_stats``: real parameter counts of the spec's models and the declared
training budget, for the SYS-02 scale-realism gates (the count is the built module's, not a formula).
"""

from __future__ import annotations

from typing import Any

import torch

from pytest_goni.device import under_cpu_threads
from pytest_goni.jsonsafe import config_hash
from pytest_goni.measurements.schemas import COUNT, as_count, named_models_schema
from pytest_goni.models.params import param_counts
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric

SCHEMA: dict[str, Any] = named_models_schema({
    "train_tokens": {**COUNT, "description": "the training tokens the spec declares for these models"},
    "vocab_size": {"type": "integer", "minimum": 2,
                   "description": "build with this vocabulary (the subword tokenizer's) instead of "
                                  "the models' own"},
})


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units: dict[str, str] = {}
    for m in params["models"]:
        units[f"{m}.params"] = ""
        units[f"{m}.params_non_embedding"] = ""
        if "train_tokens" in params:
            units[f"{m}.tokens_per_param"] = ""
    if "train_tokens" in params:
        units["train_tokens"] = ""
    return units


@measurement_kind("model_stats", schema=SCHEMA, metrics=metric_units)
@under_cpu_threads()
def measure_model_stats(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Build each model on the CPU and count its parameters (total and without embeddings)."""
    out: dict[str, Metric] = {}
    tokens = as_count(params["train_tokens"]) if "train_tokens" in params else None
    overrides = {"vocab_size": int(params["vocab_size"])} if "vocab_size" in params else {}
    for name in params["models"]:
        cfg = ctx.model_config(name)
        with torch.device("cpu"):
            model = ctx.build_model(name, **overrides)
        total, non_emb = param_counts(model)
        meta = {"config": {**cfg, **overrides}, "config_hash": config_hash({**cfg, **overrides})}
        out[f"{name}.params"] = Metric.scalar(total, "", **meta)
        out[f"{name}.params_non_embedding"] = Metric.scalar(non_emb, "", **meta)
        if tokens is not None:
            out[f"{name}.tokens_per_param"] = Metric.scalar(tokens / total, "", **meta)
        del model
    if tokens is not None:
        out["train_tokens"] = Metric.scalar(tokens, "", note="declared in the spec")
    return out
