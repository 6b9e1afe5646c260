"""specs/tiers.yaml loads in every profile, and its reduced profile runs end to end with a real
value and a verdict (PASS or FAIL, never ERROR or INVALID) for every gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_goni.registry import load_builtins
from pytest_goni.spec import load_spec

SPEC = Path(__file__).resolve().parents[2] / "specs" / "tiers.yaml"


@pytest.mark.parametrize("profile", ["cpu", "cpu-quick", "gpu"])
def test_tiers_spec_loads_in_each_profile(profile):
    load_builtins()
    spec = load_spec(SPEC, "specs/tiers.yaml", profile=profile, cuda=profile == "gpu")
    assert all(g.raw.get("why") for g in spec.gates), "every gate says why"
    assert all("line" in g.raw["why"] or "REFERENCES" in g.raw["why"] or "crate" in g.raw["why"]
               for g in spec.gates), "every gate cites the seed"
    units = spec.metric_units
    assert units["m.tier0.latency"] == "s" and units["b.mix.interactive.latency"] == "s"
    assert units["b.scaling.windowed.exponent"] == ""


def test_quick_profile_gives_every_gate_a_verdict(pytester):
    out = pytester.path / "report"
    spec = pytester.path / "tiers.yaml"  # a copy outside the repository (its conftest is not this run's)
    spec.write_text(SPEC.read_text())
    res = pytester.runpytest_subprocess("--goni-spec", str(spec), "--goni-profile", "cpu-quick",
                                        "--goni-report", str(out), "-q", "-p", "no:randomly", timeout=240)
    rows = [json.loads(line) for line in (out / "gates.jsonl").read_text().splitlines()]
    assert rows, res.stdout.str()[-3000:]
    bad = {r["gate"]: (r["status"], r.get("reason")) for r in rows if r["status"] not in ("PASS", "FAIL")}
    assert not bad, bad
    by_id = {r["gate"]: r for r in rows}
    assert by_id["quality-cache-hit-exact"]["status"] == "PASS"
    assert by_id["gate-hits-the-mix"]["status"] == "PASS"
    assert by_id["seed-arith-micro-mix-mean"]["status"] == "FAIL"  # 302.8, not 368
    assert by_id["kv-tier2-no-writes"]["status"] == "PASS"


def test_readme_claims_table_is_generated_from_the_committed_results():
    import importlib.util

    root = SPEC.parents[1]
    spec = importlib.util.spec_from_file_location("tiers_table", root / "benchmarks" / "tiers_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    readme = (root / "benchmarks" / "README.md").read_text()
    block = readme.split(table.START, 1)[1].split(table.END, 1)[0]
    header = block.strip().splitlines()[0]
    results = table.committed_results(root)  # CPU column first, then the GPU runs
    assert results and "cpu" in header
    assert len(header.split(" | ")) == 3 + len(results), "one column per committed run"
    assert block.strip() == table.markdown(results).strip(), (
        "benchmarks/README.md's tiers table is stale: python benchmarks/tiers_table.py --write benchmarks/README.md")


@pytest.mark.parametrize("profile", ["cpu", "cpu-quick", "gpu"])
def test_gates_named_at_1024_read_n_1024_on_every_profile(profile):
    """The seed's 64x claim is about n = 1024 (lines 403-406): the gates read that length, not the
    profile's longest (4,096 on the gpu profile, where the op count is 128x and passes)."""
    load_builtins()
    spec = load_spec(SPEC, "specs/tiers.yaml", profile=profile, cuda=profile == "gpu")
    gates = {g.id: g.raw for g in spec.gates}
    for gid in ("scaling-64x-at-1024", "scaling-64x-op-count"):
        value = gates[gid]["value"]
        assert "_at_max" not in value and ".1024" in value, (gid, value)
        for path in value.replace("/", " ").split():
            assert path in spec.metric_units, (profile, gid, path)


def test_scaling_reports_the_op_count_at_every_length():
    from types import SimpleNamespace

    from pytest_goni.measurements.tiers import _scaling

    ctx = SimpleNamespace(device="cpu", check_deadline=lambda: None)
    out = _scaling(ctx, {"window": 16, "lengths": [64, 1024, 4096], "n_heads": 1, "head_dim": 8, "reps": 1})
    assert out["scaling.score_ratio.1024"].value() == pytest.approx(1024 * 1025 / 2 / (16 * 1024 - 15 * 16 / 2),
                                                                    rel=0.01)
    assert out["scaling.score_ratio.1024"].value() == pytest.approx(32.27, abs=0.01)
    assert out["scaling.score_ratio_at_max"].value() == pytest.approx(128.3, abs=0.1)  # n = 4096: not the claim
