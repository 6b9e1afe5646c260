"""benchmarks/mqar_curve.py (the budget calibration of the archcomp profiles): one JSON line per run
with the validation curve, the first step at 0.95 read off that curve, and an early stop."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mqar_curve.py"


def _main():
    spec = importlib.util.spec_from_file_location("mqar_curve", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_curve_rows_per_backend_with_first_step_at_095(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    tiny = ["--V", "32", "--T", "16", "--kv", "2", "--d", "8", "--layers", "1", "--heads", "1", "--n", "64",
            "--batch", "8", "--steps", "4", "--every", "2", "--out", str(out)]
    assert _main()([*tiny, "--stop", "2", "--backend", "lstm", "transformer-rope"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["backend"] for r in rows] == ["lstm", "transformer-rope"]
    for r in rows:
        assert [s for s, _ in r["curve"]] == [2, 4] and r["final_val"] == r["curve"][-1][1]
        first = next((s for s, a in r["curve"] if a >= 0.95), None)
        assert r["first_step_095"] == first and r["stopped_at"] is None
        assert r["step_seconds_after_first"] > 0 and r["random_non_queries"] is False
    # --stop 0: the first evaluation reaches it, the run stops there
    assert _main()([*tiny, "--stop", "0"]) == 0
    last = json.loads(out.read_text().splitlines()[-1])
    assert last["curve"] == [[2, last["curve"][0][1]]] and last["stopped_at"] == 0
