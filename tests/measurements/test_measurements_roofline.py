"""roofline kind: every declared metric, in its declared unit, at tiny sizes on CPU."""

from __future__ import annotations

import math
from pathlib import Path

import jsonschema
import pytest

from pytest_goni.context import MeasureContext
from pytest_goni.measurements import roofline
from pytest_goni.registry import load_builtins

KINDS = load_builtins().kinds


def _ctx(tmp_path: Path, device: str = "cpu") -> MeasureContext:
    return MeasureContext("t", "roof", device, "cpu", {}, {}, tmp_path / "spec.yaml", tmp_path)


def test_schema_is_valid_and_strict():
    schema = KINDS["roofline"].schema
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    assert v.is_valid({"copy_bytes": 1 << 20, "matmul_dtypes": ["float32", "bfloat16"]})
    assert not v.is_valid({"copy_byte": 1 << 20})  # typo: additionalProperties false
    assert not v.is_valid({"matmul_dtypes": ["fp8"]})
    assert not v.is_valid({"copy_bytes": 100})  # below 1 MiB


def test_roofline_produces_every_declared_metric(tmp_path):
    kind = KINDS["roofline"]
    params = {"copy_bytes": 1 << 20, "matmul_n": 64, "matmul_dtypes": ["float32", "bfloat16"],
              "reps": 3, "warmup": 1}
    declared = kind.metrics(params)
    assert declared == {"copy.bandwidth": "B/s", "matmul.float32.flops": "FLOP/s",
                        "matmul.bfloat16.flops": "FLOP/s"}
    out = kind.func(_ctx(tmp_path), params)
    assert set(out) == set(declared)
    for key, m in out.items():
        assert m.unit == declared[key]
        assert len(m.samples) == 3
        assert all(math.isfinite(s) and s > 0 for s in m.samples)
        assert m.meta["device"] == "cpu" and m.meta["device_name"]
    # any CPU this runs on copies faster than 100 MB/s and multiplies faster than 10 MFLOP/s
    assert out["copy.bandwidth"].value() > 1e8
    assert out["matmul.float32.flops"].value() > 1e7


def test_tf32_on_cpu_is_a_clear_error():
    with pytest.raises(ValueError, match="tf32"):
        roofline.measure_matmul_flops("cpu", 64, "tf32", reps=1)


def test_roofline_percent_is_the_larger_fraction():
    r = roofline.Roofline(bandwidth=100.0, flops=1000.0, device_name="x", matmul_dtype="float32")
    assert r.percent(500.0, 10.0) == pytest.approx(50.0)
    assert r.percent(100.0, 80.0) == pytest.approx(80.0)


def test_matmul_mode_sets_and_restores_tf32():
    import torch

    mm = torch.backends.cuda.matmul
    name = "fp32_precision" if hasattr(mm, "fp32_precision") else "allow_tf32"
    before = getattr(mm, name)
    with roofline._matmul_mode("tf32"):
        assert getattr(mm, name) in ("tf32", True)
    with roofline._matmul_mode("float32"):
        assert getattr(mm, name) in ("ieee", False)
    assert getattr(mm, name) == before
