"""Measurement kind ``pretrained_ppl``: perplexity of a pretrained checkpoint (the seed's 125M rung:
"Official GPT-2 Small (124M) ... Use pretrained weights", v5-gpt2-gates.md lines 29 and 89) on the
same validation documents as ``v5_compare`` and on the named evaluation sets, pinned as
lm-evaluation-harness computes it (disjoint windows of the model's context, EOT prefix).

The model's ``pretrained:`` path may name an environment variable (``$GONI_GPT2_SMALL``); when it is
empty or unset every metric carries a skip note and the gates reading them SKIP with that reason.

Keys (``M`` the model): ``M.token_ppl``, ``M.word_ppl``, ``M.byte_ppl``, ``M.bits_per_byte``, and
``M.<set>.<same>`` for each evaluation set.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_goni.lm_data import get_tokenizer, load_text, tokenize_corpus
from pytest_goni.measurements.schemas import COUNT, as_count, params_schema
from pytest_goni.measurements.v5_compare import PPL_KEYS
from pytest_goni.measurements.v5_compare import SCHEMA as COMPARE_SCHEMA
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric
from pytest_goni.v5.datasets import read_eval_set, resolve_path
from pytest_goni.v5.perplexity import disjoint_loglik, split_documents

SCHEMA: dict[str, Any] = params_schema(["model", "corpus"], {
    "model": {"type": "string", "x-goni-ref": "model"},
    "corpus": {"type": "string"},
    "corpus_chars": COUNT,
    "tokenizer": {"type": "string"},
    "ppl_docs": {"type": "integer", "minimum": 1},
    "ppl_doc_chars": {"type": "integer", "minimum": 50},
    "max_length": {"type": "integer", "minimum": 2},
    "eval_sets": COMPARE_SCHEMA["properties"]["eval_sets"],
})


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    m = params["model"]
    units = {f"{m}.{k}": "" for k in PPL_KEYS}
    for e in params.get("eval_sets", {}):
        units.update({f"{m}.{e}.{k}": "" for k in PPL_KEYS})
    return units


@measurement_kind("pretrained_ppl", schema=SCHEMA, metrics=metric_units, default_timeout_s=1200)
def measure_pretrained_ppl(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Load the checkpoint (or skip without one) and score the validation documents and eval sets."""
    name = params["model"]
    cfg = ctx.model_config(name)
    path, why = resolve_path(str(cfg.get("pretrained", "")), ctx.resolve_path)
    units = metric_units(params)
    if path is None:
        reason = f"model {name!r}: pretrained {why}; give a transformers directory (official GPT-2 Small)"
        return {k: Metric.scalar(math.nan, "", skip=reason) for k in units}
    model = ctx.build_model(name, pretrained=str(path)).to(ctx.device).eval()
    length = int(params.get("max_length", getattr(model, "max_seq_len", 1024)))
    max_chars = as_count(params["corpus_chars"]) if "corpus_chars" in params else None
    text = load_text(params["corpus"], max_chars, ctx.resolve_path)
    tok = get_tokenizer(params.get("tokenizer", "gpt2"), text)
    split = tokenize_corpus(text, tok, params["corpus"], 0.1)
    chars = int(params.get("ppl_doc_chars", 400))
    sets = {"": split_documents(text[split.train_chars:], min_chars=chars, max_docs=int(params.get("ppl_docs", 8)),
                                max_chars=4 * chars)}
    out: dict[str, Metric] = {}
    for es_name, es in params.get("eval_sets", {}).items():
        es_path, es_why = resolve_path(es["path"], ctx.resolve_path)
        if es_path is None:
            for k in PPL_KEYS:
                out[f"{name}.{es_name}.{k}"] = Metric.scalar(math.nan, "", skip=f"eval set {es_name!r}: {es_why}")
        else:
            sets[es_name] = read_eval_set(es["format"], es_path, es.get("max_docs", 200))
    eot = tok.encode("<|endoftext|>")
    eot_id = eot[0] if len(eot) == 1 else 0
    for set_name, docs in sets.items():
        m = disjoint_loglik(model, docs, tok.encode, length, eot_id, ctx.device).metrics()
        prefix = f"{name}." + (f"{set_name}." if set_name else "")
        out.update({prefix + k: Metric.scalar(m[k], "", checkpoint=str(path)) for k in PPL_KEYS})
    return out
