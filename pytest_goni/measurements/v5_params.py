"""Measurement kind ``param_match``: parameter counts of the candidate and its matched GPT-2 at each
size rung, and the V5 seed's size table checked against its own formula.

v5-gpt2-gates.md lines 22-29 (parameter-matched comparisons) and 172-222 (the GPT-2 configs with
their stated ``total_params`` and the ``gpt2_params`` formula). Counts come from the built modules
(on the meta device: no memory, so the 125M rung costs nothing); with a 50,257-token vocabulary the
embedding dominates the small rungs, so both the total and the non-embedding count are reported.

Position table: the rungs' GPT-2 is counted with ``seq_len`` positions, the training context, as
``v5_compare`` builds it (the seed's line 66: "Design GPT-2 with same context length"; rows past the
training context would never be trained), so the two measurements give one total per rung; specs
pass the profile's ``seq_len`` to both. The seed-table check keeps its formula's own ``max_pos=1024``
(line 176): it checks the seed's arithmetic, not our models.

Keys (``R`` a rung label): ``R.candidate.params``, ``R.candidate.params_non_embedding``,
``R.baseline.params``, ``R.baseline.params_non_embedding``, ``R.total_ratio`` and
``R.non_embedding_ratio`` (candidate / baseline); for each seed size ``S`` in ``seed_table``
(labels such as ``s3_5M``): ``seed_table.S.stated``, ``seed_table.S.formula``,
``seed_table.S.true_total``, ``seed_table.S.formula_over_stated``.
"""

from __future__ import annotations

from typing import Any

from pytest_goni.measurements.schemas import params_schema
from pytest_goni.models.base import SIZES
from pytest_goni.models.gpt2 import gpt2_true_params, seed_formula_params
from pytest_goni.models.params import SEED_STATED_TOTAL
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric
from pytest_goni.v5.rungs import rung_pair

#: The seed's ``gpt2_params(vocab=50257, max_pos=1024, ...)`` default (v5-gpt2-gates.md line 176).
SEED_MAX_POS = 1024

SCHEMA: dict[str, Any] = params_schema(["candidate", "baseline", "rungs"], {
    "candidate": {"type": "string", "x-goni-ref": "model"},
    "baseline": {"type": "string", "x-goni-ref": "model"},
    "rungs": {"type": "object", "minProperties": 1, "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
              "additionalProperties": {"type": "object"}},
    "match": {"enum": ["total", "non_embedding"]},
    "vocab_size": {"type": "integer", "minimum": 2},
    "seq_len": {"type": "integer", "minimum": 1,
                "description": "GPT-2 position rows at the rungs: the training context v5_compare uses (default 1024)"},
    "seed_table": {"type": "boolean", "description": "check the seed's stated sizes against its formula"},
})


def seed_label(size: str) -> str:
    """``3.5M`` -> ``s3_5M`` (a metric-key segment)."""
    return "s" + size.replace(".", "_")


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units = {}
    for r in params["rungs"]:
        for role in ("candidate", "baseline"):
            units[f"{r}.{role}.params"] = ""
            units[f"{r}.{role}.params_non_embedding"] = ""
        units[f"{r}.total_ratio"] = ""
        units[f"{r}.non_embedding_ratio"] = ""
    if params.get("seed_table", True):
        for size in SIZES:
            for k in ("stated", "formula", "true_total", "formula_over_stated"):
                units[f"seed_table.{seed_label(size)}.{k}"] = ""
    return units


@measurement_kind("param_match", schema=SCHEMA, metrics=metric_units, default_timeout_s=300)
def measure_param_match(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Count the candidate and the matched GPT-2 at each rung; the seed's table against its formula."""
    vocab = int(params.get("vocab_size", 50257))
    seq_len = int(params.get("seq_len", 1024))
    match = params.get("match", "non_embedding")
    out: dict[str, Metric] = {}
    for rung, overrides in params["rungs"].items():
        pair = rung_pair(ctx.models, params["candidate"], params["baseline"], rung, dict(overrides), vocab,
                         seq_len, match)
        meta = {"configs": {"candidate": pair.candidate, "baseline": pair.baseline}, "match": pair.match,
                "n_positions": seq_len}
        for role, (total, non_emb) in pair.counts.items():
            out[f"{rung}.{role}.params"] = Metric.scalar(total, "", exact=True, **meta)
            out[f"{rung}.{role}.params_non_embedding"] = Metric.scalar(non_emb, "", exact=True, **meta)
        (ct, cn), (bt, bn) = pair.counts["candidate"], pair.counts["baseline"]
        out[f"{rung}.total_ratio"] = Metric.scalar(ct / bt, "", exact=True, **meta)
        out[f"{rung}.non_embedding_ratio"] = Metric.scalar(cn / bn, "", exact=True, **meta)
    if params.get("seed_table", True):
        for size, shape in SIZES.items():
            d, n = shape["d_model"], shape["n_layers"]
            stated = SEED_STATED_TOTAL[size]
            formula = seed_formula_params(vocab, SEED_MAX_POS, n, d)
            lab = seed_label(size)
            note = f"{size}: {n} layers x {d} wide, vocab {vocab}, {SEED_MAX_POS} positions"
            out[f"seed_table.{lab}.stated"] = Metric.scalar(stated, "", exact=True, note=note)
            out[f"seed_table.{lab}.formula"] = Metric.scalar(formula, "", exact=True, note=note)
            out[f"seed_table.{lab}.true_total"] = Metric.scalar(
                gpt2_true_params(vocab, SEED_MAX_POS, n, d, shape["d_ff"]), "", exact=True, note=note)
            out[f"seed_table.{lab}.formula_over_stated"] = Metric.scalar(formula / stated, "", exact=True,
                                                                         note=note)
    return out
