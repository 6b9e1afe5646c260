"""benchmarks/training.py runs on the CPU at a tiny size, and every row (measured or skipped) carries
what a committed result must: date, device, versions, commit, command, config."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "training.py"
FIELDS = {"date", "device", "versions", "commit", "command", "config"}


def test_cpu_smoke_rows_carry_the_result_fields(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "t.jsonl"
    assert module.main(["--cpu-smoke", "--backends", "gpt2", "--points", "8M:32", "--modes", "eager",
                        "--warmup", "1", "--steps", "1", "--out", str(out)]) == 0
    assert module.main(["--cpu-smoke", "--backends", "gla", "--points", "8M:32", "--modes", "eager",
                        "--budget-s", "1e-9", "--out", str(out)]) == 0  # past the budget at once: skipped
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "skipped"]
    for r in rows:
        assert FIELDS <= set(r), FIELDS - set(r)
    assert rows[0]["tokens_per_s"] > 0 and rows[0]["losses"]


def test_short_conv_form_is_recorded_and_rendered(tmp_path, monkeypatch):
    """--short-conv triton: the rows say which form ShortConv ran (off CUDA: its torch definition), and the
    table marks the backends it changes."""
    from pytest_goni.models import layers

    monkeypatch.setattr(layers, "SHORT_CONV_FORM", layers.SHORT_CONV_FORM)  # restored after the test
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "t.jsonl"
    assert module.main(["--cpu-smoke", "--backends", "mamba2", "gpt2", "--points", "8M:32", "--modes", "eager",
                        "--warmup", "1", "--steps", "1", "--short-conv", "triton", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["backend"], r["status"], r["short_conv"]) for r in rows] == [("mamba2", "ok", "triton"),
                                                                           ("gpt2", "ok", "triton")]
    table = module.render([out])
    assert "| mamba2 | 8M | 32 | eager, triton short conv |" in table and "| gpt2 | 8M | 32 | eager |" in table
