"""benchmarks/train_profile.py runs end to end on the CPU at a tiny size (plumbing: the GPU numbers
come from the device), and every row carries what a committed result must."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_profile.py"


@pytest.fixture(scope="module")
def profile_script():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_train_profile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_smoke_writes_every_part(profile_script, tmp_path):
    out = tmp_path / "p.jsonl"
    assert profile_script.main(["--cpu-smoke", "--out", str(out), "--warmup", "1", "--steps", "1",
                                "--parts", "loop", "loss", "reference", "conv", "loop-whole", "loop-plain-pad64"]
                               ) == 0  # features: alike
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["part"] for r in rows] == ["loop", "loss", "reference", "conv", "loop-whole", "loop-plain-pad64"]
    assert rows[4]["config"]["compile_loss"] and not rows[0]["config"]["compile_loss"]
    assert set(rows[4]) == set(rows[0]) == set(rows[5])  # measured and reported as the loop is
    assert rows[4]["dynamo"] == {"graphs": 0, "graph_breaks": 0}  # the smoke does not compile
    assert rows[4]["losses"] == pytest.approx(rows[0]["losses"], rel=1e-5)
    # the loop as it now trains GPT-2 (plain forward, loss in the graph), beside transformers' module
    assert rows[4]["config"]["forward"] == rows[0]["config"]["forward"] == "GPT2Backend.features"
    plain = rows[5]["config"]
    assert plain["forward"] == "GPT2Backend.train_features" and plain["compile_loss"] and plain["pad_vocab"] == 64
    assert rows[5]["losses"] == pytest.approx(rows[4]["losses"], rel=1e-5)
    for form in ("shifted", "triton"):  # the conv forms agree (triton: in the interpreter without CUDA)
        assert rows[3]["ms"][f"C 32: {form} max |difference| from cuDNN (not ms)"] < 1e-5
    for r in rows:
        assert r.get("status", "ok") == "ok", r
        assert {"date", "device", "versions", "commit", "command", "config"} <= set(r)
    loss = rows[1]["ms"]
    assert {"loss fwd+bwd, pad 0", "loss fwd+bwd, pad 64"} <= set(loss) and all(v > 0 for v in loss.values())
    assert rows[2]["config"]["vocab_padded"] % 64 == 0
    assert rows[0]["tokens_per_s"] > 0 and rows[2]["step_ms"] > 0


def test_kernel_kinds(profile_script):
    kind = profile_script.kind_of
    assert kind("nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT") == "matmul"
    assert kind("_ce_rows") == "loss kernel"
    assert kind("triton_poi_fused_add_0") == "inductor fused"
    assert kind("triton_red_fused_logsumexp_3") == "loss kernel (Inductor)"
    assert kind("void multi_tensor_apply_kernel<...FusedAdamMathFunctor") == "optimizer + clip"
    assert kind("pytorch_flash::flash_fwd_kernel") == "attention"
    assert kind("something_else") == "other"
    assert kind("_short_conv_bwd") == "convolution"  # the Triton short conv counts with cuDNN's


def test_delta_qk16_rows(profile_script, tmp_path):
    """loop-delta-qk16 runs only the backends with a delta rule, with the switch on in that row only
    (float32 on the CPU: the same losses as the loop's row)."""
    out = tmp_path / "p.jsonl"
    assert profile_script.main(["--cpu-smoke", "--out", str(out), "--warmup", "1", "--steps", "1",
                                "--parts", "loop", "loop-delta-qk16", "--backends", "gpt2", "deltanet"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["part"], r["config"]["backend"]) for r in rows] == [
        ("loop", "gpt2"), ("loop", "deltanet"), ("loop-delta-qk16", "deltanet")]
    assert [r["config"]["delta_qk_proj_dtype"] for r in rows] == [False, False, True]
    assert rows[2]["losses"] == rows[1]["losses"]
    from pytest_goni.models import deltanet
    assert deltanet.QK_PROJ_DTYPE is False  # restored after the row
