"""Measurement kind ``state_checks``: GroundThink's S0-S4 and state persistence across processes,
for every named recurrent model (pytest_goni.v5.state_checks has the definitions).

Keys (``M`` a model name): ``M.s0_tensors``, ``M.s0_shapes_fixed``, ``M.s1_norm_min``,
``M.s1_norm_max``, ``M.s1_finite``, ``M.s2_diff``, ``M.s2_context_diff`` (inputs equal in their last
token only), ``M.context_logit_diff`` (max |last-position logit change| for those inputs),
``M.s3_diff``, ``M.s4_variance_ratio`` (NaN with a note for a model that is not a Mamba/RWKV
hybrid), ``M.persistence_max_diff`` (max |logit difference| of a run resumed in a fresh process from
a saved state, against an uninterrupted run).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from pytest_goni.device import under_cpu_threads
from pytest_goni.measurements.schemas import named_models_schema
from pytest_goni.models.matching import resolve_model_config
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric
from pytest_goni.v5 import broken  # noqa: F401  (registers the groundthink-reset backend)
from pytest_goni.v5.state_checks import STATE_KEYS, persistence_diff, s_checks

SCHEMA: dict[str, Any] = named_models_schema({
    "length": {"type": "integer", "minimum": 2, "description": "tokens before the state is read"},
    "resume_tokens": {"type": "integer", "minimum": 1},
    "overrides": {"type": "object", "description": "config overrides for every model (a rung's shape)"},
})

KEYS = STATE_KEYS


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    return {f"{m}.{k}": "" for m in params["models"] for k in KEYS}


@measurement_kind("state_checks", schema=SCHEMA, metrics=metric_units, default_timeout_s=300)
@under_cpu_threads()
def measure_state_checks(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """S0-S4 on each model's state after random tokens; resume a saved state in a fresh process."""
    out: dict[str, Metric] = {}
    length = int(params.get("length", 64))
    for name in params["models"]:
        ctx.model_config(name)
        overrides = dict(params.get("overrides", {}))
        model = ctx.build_model(name, **overrides)
        vocab = int(model.vocab_size)
        res = s_checks(model, vocab, length)
        cfg = resolve_model_config(ctx.models, name)
        cfg.update(overrides)
        with tempfile.TemporaryDirectory(prefix="goni-resume-") as tmp:
            res["persistence_max_diff"] = persistence_diff(model, cfg, vocab, length,
                                                           int(params.get("resume_tokens", 16)), Path(tmp))
        for k in KEYS:
            note = ""
            if k == "s4_variance_ratio" and math.isnan(res[k]):
                note = "not a Mamba/RWKV hybrid: no branch states to compare"
            out[f"{name}.{k}"] = Metric.scalar(res[k], "", note=note, exact=True)
        del model
    return out
