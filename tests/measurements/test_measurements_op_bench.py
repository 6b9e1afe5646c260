"""op_bench kind: shape sweeps, labels, every declared metric with its unit, baselines, OOM."""

from __future__ import annotations

import math
from pathlib import Path

import jsonschema
import pytest
import torch

from pytest_goni.context import MeasureContext
from pytest_goni.measurements.op_bench import expand_shapes, shape_labels
from pytest_goni.registry import REGISTRIES, load_builtins

KINDS = load_builtins().kinds


def _ctx(tmp_path: Path) -> MeasureContext:
    return MeasureContext("t", "bench", "cpu", "cpu", {}, {}, tmp_path / "spec.yaml", tmp_path)


def test_sweep_expands_to_a_cartesian_product_in_written_order():
    shapes = expand_shapes({"T": [8, 16], "B": 1, "D": [4, 8]})
    assert shapes == [{"T": 8, "B": 1, "D": 4}, {"T": 8, "B": 1, "D": 8},
                      {"T": 16, "B": 1, "D": 4}, {"T": 16, "B": 1, "D": 8}]
    assert expand_shapes([{"N": 3}]) == [{"N": 3}]


def test_labels():
    assert shape_labels(expand_shapes({"T": [8, 16], "B": 1})) == ["8", "16"]
    assert shape_labels(expand_shapes({"T": [8, 16], "D": [4]})) == ["8", "16"]
    assert shape_labels(expand_shapes({"T": [8, 16], "D": [4, 8]})) == [
        "T8_D4", "T8_D8", "T16_D4", "T16_D8"]
    assert shape_labels([{"B": 1, "T": 64}]) == ["64"]
    assert shape_labels([{"M": 2, "N": 3, "K": 4}]) == ["M2_N3_K4"]
    assert shape_labels([{"T": 8, "backend": "math"}, {"T": 8, "backend": "flash"}]) == [
        "math", "flash"]
    with pytest.raises(ValueError, match="both get the label"):
        shape_labels(expand_shapes({"T": [8, 16], "D": [4, 8]}), label_by="T")
    with pytest.raises(ValueError, match="not an identifier"):
        shape_labels([{"x": "a-b"}, {"x": "c"}])


def test_schema_is_valid_and_explains_bad_params():
    schema = KINDS["op_bench"].schema
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    assert v.is_valid({"op": "matmul", "shapes": {"M": [64, 128], "N": 64, "K": 64}})
    assert v.is_valid({"op": "matmul", "shapes": [{"M": 64, "N": 64, "K": 64}], "dtype": "bfloat16"})
    errs = list(v.iter_errors({"op": "matmul", "shapes": [{"M": 1.5}]}))
    assert [list(e.absolute_path) for e in errs] == [["shapes", 0, "M"]]
    assert not v.is_valid({"op": "matmul"})  # shapes required
    assert not v.is_valid({"op": "matmul", "shapes": {"M": 1}, "rep": 3})  # typo
    assert not v.is_valid({"op": "matmul", "shapes": {"M": 1}, "dtype": "int8"})


def _check_declared(kind, params, out):
    declared = kind.metrics(params)
    assert set(out) == set(declared)
    for key, m in out.items():
        assert m.unit == declared[key], key
    return declared


def test_op_bench_with_baseline_produces_every_declared_metric(tmp_path):
    kind = KINDS["op_bench"]
    params = {"op": "sdpa_attention", "baseline": "naive_attention",
              "shapes": {"T": [16, 32], "B": 1, "H": 2, "D": 8}, "reps": 4, "warmup": 1,
              "peak_memory": True}
    out = kind.func(_ctx(tmp_path), params)
    declared = _check_declared(kind, params, out)
    assert "speedup.32" in declared and "naive_attention.16.pct_roofline" in declared
    assert declared["sdpa_attention.32.peak_memory"] == "B"
    for key, m in out.items():
        if key.endswith("peak_memory"):
            assert len(m.samples) == 1 and m.samples[0] >= 0
            continue
        assert len(m.samples) == 4, key
        assert all(math.isfinite(s) and s > 0 for s in m.samples), key
    lat, base = out["sdpa_attention.32.latency"], out["naive_attention.32.latency"]
    assert out["speedup.32"].samples == pytest.approx(
        [b / a for a, b in zip(lat.samples, base.samples)])
    assert lat.meta["sdpa_backend"] and lat.meta["shape"] == {"T": 32, "B": 1, "H": 2, "D": 8}
    flops = out["sdpa_attention.32.flops"]
    assert flops.samples[0] == pytest.approx(2 * 2 * 32 * 32 * 8 / lat.samples[0])
    assert all(0 < p < 1000 for p in out["sdpa_attention.32.pct_roofline"].samples)


def test_op_bench_single_op_and_copy(tmp_path):
    kind = KINDS["op_bench"]
    params = {"op": "copy", "shapes": [{"N": 4096}], "reps": 3, "warmup": 0, "inner": 2}
    out = kind.func(_ctx(tmp_path), params)
    assert set(_check_declared(kind, params, out)) == {
        "copy.4096.latency", "copy.4096.flops", "copy.4096.bandwidth", "copy.4096.pct_roofline"}
    assert out["copy.4096.flops"].samples == [0.0, 0.0, 0.0]
    assert out["copy.4096.pct_roofline"].value() > 0  # from bandwidth alone


def test_baseline_equal_to_op_is_rejected():
    with pytest.raises(ValueError, match="baseline must differ"):
        KINDS["op_bench"].metrics({"op": "matmul", "baseline": "matmul", "shapes": {"M": 1}})


def test_out_of_memory_at_one_shape_is_a_data_point(tmp_path):
    def make(shape, device, dtype):
        return (shape["N"],)

    def oom_above(n):
        if n > 100:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return n

    REGISTRIES.op("test_oom_above_100", make_inputs=make, flops=lambda s: 1.0,
                  bytes=lambda s: 1.0)(oom_above)
    try:
        kind = KINDS["op_bench"]
        params = {"op": "test_oom_above_100", "shapes": {"N": [10, 1000]}, "reps": 2, "warmup": 0}
        out = kind.func(_ctx(tmp_path), params)
        _check_declared(kind, params, out)
        assert len(out["test_oom_above_100.10.latency"].samples) == 2
        assert out["test_oom_above_100.1000.latency"].samples == []
        assert "OOM" in out["test_oom_above_100.1000.latency"].note
    finally:
        REGISTRIES.ops.pop("test_oom_above_100", None)


def test_unknown_op_names_the_known_ones(tmp_path):
    with pytest.raises(LookupError, match="did you mean 'matmul'"):
        KINDS["op_bench"].func(_ctx(tmp_path), {"op": "matmull", "shapes": {"M": 1}})
