"""benchmarks/models.py runs end to end on the CPU at tiny sizes, and records an OOM as a data point."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from pytest_goni.registry import resolve_backend

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "models.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cpu_smoke_writes_every_measurement(bench, tmp_path, capsys):
    out = tmp_path / "m.jsonl"
    rc = bench.main(["--cpu-smoke", "--out", str(out), "--backends", "gpt2,gla,lstm",
                     "--prefill", "16", "40", "--decode", "40"])
    assert rc == 0
    recs = read(out)
    assert [(r["backend"], r["phase"], r["context"]) for r in recs] == [
        (b, p, t) for b in ("gpt2", "gla", "lstm") for p, t in (("decode", 40), ("prefill", 16), ("prefill", 40))]
    for r in recs:
        assert r["status"] == "ok", r
        assert {"date", "device", "versions", "commit", "config", "command", "dtype", "params"} <= set(r)
        assert r["dtype"] == "bfloat16" and r["batch"] == 1 and r["versions"]["torch"] == torch.__version__
        assert all(s > 0 for s in r["samples_s"]) and r["latency_s"] > 0
        if r["phase"] == "prefill":
            assert r["tokens_per_s"] == pytest.approx(r["context"] / r["latency_s"])
        else:
            assert r["state_bytes"] > 0 and r["launches"] > 0 and r["launches_how"]
    printed = capsys.readouterr().out
    assert "| gla |" in printed and "prefill 16" in printed and " launches" in printed  # the Markdown summary


def test_decode_fusion_both_measures_the_unfused_step_beside_the_fused_one(bench, tmp_path, capsys):
    out = tmp_path / "m.jsonl"
    assert bench.main(["--cpu-smoke", "--out", str(out), "--backends", "gla", "--prefill", "--decode", "40",
                       "--decode-fusion", "both"]) == 0
    recs = read(out)
    assert [(r["backend"], r["phase"], r["decode_fusion"]) for r in recs] == [
        ("gla (unfused)", "decode", False), ("gla", "decode", True)]
    assert [r["decode_gemv"] for r in recs] == [False, None]  # None: the default (GONI_DECODE_GEMV)
    assert all(r["status"] == "ok" for r in recs)
    assert recs[1]["launches"] < recs[0]["launches"]  # the fused step launches fewer kernels
    assert "| gla (unfused) |" in capsys.readouterr().out


def test_oom_is_a_data_point_and_skips_longer_contexts(bench, tmp_path, monkeypatch):
    real = resolve_backend("gla")

    class OOMAbove(torch.nn.Module):
        """gla whose prefill runs out of memory from 32 tokens on, as a GPU would at long context."""

        def __init__(self, **cfg):
            super().__init__()
            self.inner = real(**cfg)

        def prefill(self, tokens):
            if tokens.shape[1] >= 32:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")
            return self.inner.prefill(tokens)

        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.inner, name)

    monkeypatch.setattr(bench, "resolve_backend", lambda name: OOMAbove)
    out = tmp_path / "oom.jsonl"
    assert bench.main(["--cpu-smoke", "--out", str(out), "--backends", "gla",
                       "--prefill", "16", "32", "64", "--decode", "16", "64"]) == 0
    status = {(r["phase"], r["context"]): (r["status"], r.get("note", "")) for r in read(out)}
    # decode runs first (its prefill of 64 tokens fails), then prefill: 16 runs, 32 fails, 64 is skipped
    assert status[("prefill", 16)][0] == "ok" and status[("decode", 16)][0] == "ok"
    assert status[("decode", 64)] == ("oom", "CUDA out of memory. Tried to allocate 64.00 GiB")
    assert status[("prefill", 32)] == ("oom", "CUDA out of memory. Tried to allocate 64.00 GiB")
    assert status[("prefill", 64)] == ("skipped", "OOM at 32 tokens")
    table = bench.render([out])
    assert "OOM" in table and "skipped" in table


def test_errors_other_than_oom_are_recorded_too(bench, tmp_path, monkeypatch):
    def broken(**cfg):
        raise RuntimeError("Triton compile error: something")

    monkeypatch.setattr(bench, "resolve_backend", lambda name: broken)
    out = tmp_path / "err.jsonl"
    assert bench.main(["--cpu-smoke", "--out", str(out), "--backends", "gla", "--prefill", "16",
                       "--decode", "16"]) == 0
    recs = read(out)
    assert [r["status"] for r in recs] == ["error", "error"]
    assert "Triton compile error" in recs[0]["note"]


def test_unknown_backend_is_refused(bench, tmp_path, capsys):
    assert bench.main(["--cpu-smoke", "--out", str(tmp_path / "x.jsonl"), "--backends", "glaa"]) == 2
    assert "unknown backend(s) glaa" in capsys.readouterr().err


def test_spent_budget_skips_measurements_with_a_reason(bench, tmp_path):
    out = tmp_path / "budget.jsonl"
    assert bench.main(["--cpu-smoke", "--out", str(out), "--backends", "gru,lstm", "--prefill", "16",
                       "--decode", "16", "--budget-s", "1e-9"]) == 0
    recs = read(out)
    assert len(recs) == 4
    assert all(r["status"] == "skipped" and r["note"] == "time budget spent" for r in recs)
