"""The ``tokenizer`` measurement kind end to end on a small corpus, through a MeasureContext."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from pytest_goni.context import MeasureContext
from pytest_goni.measurements.tokenizer import (
    GPU_SCHEMA,
    SCHEMA,
    _gpu_metrics,
    _metrics,
    measure_tokenizer,
    measure_tokenizer_gpu,
)
from pytest_goni.registry import load_builtins
from pytest_goni.tokenizers import TokenizerNotFound

from .conftest import needs_package

SMALL = {"chars": 30000, "repeats": 3, "start_runs": 1, "scaling_rounds": 1, "stream_tokens": 300,
         "threads": [1, 2]}


def ctx_for(tmp_path: Path, device: str = "cpu") -> MeasureContext:
    return MeasureContext(spec_id="t", measurement="tok", device=device, profile="cpu", profile_vars={},
                          models={}, spec_path=tmp_path / "spec.yaml", artifact_dir=tmp_path / "art")


def test_kinds_are_registered():
    reg = load_builtins()
    assert reg.kinds["tokenizer"].func is measure_tokenizer
    assert reg.kinds["tokenizer_gpu"].requires_cuda


@needs_package("gpt2")
def test_gpt2_all_metrics(tmp_path: Path):
    params = {"tokenizer": "gpt2", "compare_tiktoken": True, **SMALL}
    jsonschema.validate(params, SCHEMA)
    out = measure_tokenizer(ctx_for(tmp_path), params)
    units = _metrics(params)
    assert set(out) == set(units)
    for key, metric in out.items():
        assert metric.unit == units[key], key
        assert metric.samples, key
    assert out["parity"].value() == 1.0 and out["parity_edge"].value() == 1.0
    assert out["determinism"].value() == 1.0 and out["stream_exact"].value() == 1.0
    assert out["encode_tok_s"].value() > 1000 and out["tiktoken_encode_tok_s"].value() > 1000
    assert len(out["encode_tok_s"].samples) == 3
    assert 0 < out["batch_scaling_efficiency"].value() < 2
    assert 0 < out["discovery_cold_s"].value() < 60 and 0 < out["warm_start_s"].value() < 60
    assert 0 < out["cache_lookup_s"].value() < 1e-3
    assert out["tokenizer_file_B"].value() == 1042301 + 456318
    assert out["memory_rss_B"].value() > 1e6
    assert len(out["stream_decode_s"].samples) >= 300


def test_text_file_tokenizer_without_reference(tmp_path: Path, tiny_json: Path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"To be, or not to be, line {i}. " * 5 for i in range(400)), encoding="utf-8")
    params = {"tokenizer": str(tiny_json), "corpus": str(corpus), "reference": "none", **SMALL}
    out = measure_tokenizer(ctx_for(tmp_path), params)
    assert set(out) == set(_metrics(params)) and "parity" not in out
    assert out["determinism"].value() == 1.0


def test_parity_without_reference_is_an_error(tmp_path: Path, tiny_json: Path):
    with pytest.raises(RuntimeError, match="no independent reference is known"):
        measure_tokenizer(ctx_for(tmp_path), {"tokenizer": str(tiny_json), **SMALL})


def test_unknown_tokenizer_fails_with_the_search(tmp_path: Path):
    with pytest.raises(TokenizerNotFound, match="searched, in this order"):
        measure_tokenizer(ctx_for(tmp_path), {"tokenizer": "no-such-tok-xyz", **SMALL})


def test_schema_rejects_unknown_keys():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tokenizer": "gpt2", "chars_typo": 3}, SCHEMA)
    jsonschema.validate({"tokenizer": "gpt2", "embed_dim": 64, "dtype": "bfloat16"}, GPU_SCHEMA)


@pytest.mark.gpu
@needs_package("gpt2")
def test_gpu_token_path(tmp_path: Path):
    out = measure_tokenizer_gpu(ctx_for(tmp_path, "cuda:0"), {"tokenizer": "gpt2", "chars": 30000})
    assert set(out) == set(_gpu_metrics({}))
    assert out["validate_ids_per_s"].value() > 0 and out["gather_tok_s"].value() > 0
