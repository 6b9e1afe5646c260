"""benchmarks/host_profile.py's model mode runs on the CPU at a tiny size (plumbing; the numbers that
matter come from the GPU: issue14_pass.sh's hostprof step)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "host_profile.py"


def test_model_prefill_profile_prints_host_time_and_the_costliest_functions(capsys):
    spec = importlib.util.spec_from_file_location("bench_host_profile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--model", "gla", "--T", "16", "--tiny", "--device", "cpu", "--calls", "2", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "gla prefill T=16:" in out and "us host time per call" in out
    assert "Ordered by: internal time" in out and "Ordered by: cumulative time" in out
