"""Baselines worth comparing to: saved with samples, units, profile and config; refused across
them with the reason; one-sided regression gates; history kept; listed and compared."""

from __future__ import annotations

import json
import textwrap

import pytest

SPEC = """\
goni: 1
id: reg
profiles:
  cpu: {{}}
  other: {{}}
measurements:
  m: {{kind: drifting, value: 0.010, unit: {unit}}}
gates:
  - {{id: no-slower, value: m.x, expect: "no more than 5% slower than baseline"}}
  - {{id: near, value: m.x, expect: "within 5% of baseline"}}
  - {{id: plain, value: m.x / m.x, expect: "> 0"}}
  - {{id: no-slower-ci, value: m.x, expect: "no more than 5% slower than baseline", confidence: 0.95}}
"""


def run(p: pytest.Pytester, mp: pytest.MonkeyPatch, *args: str, scale: float = 1.0, unit: str = "s"):
    p.path.joinpath("reg.yaml").write_text(textwrap.dedent(SPEC.format(unit=unit)))
    mp.setenv("GONI_TEST_SCALE", str(scale))
    return p.runpytest("--goni-spec", "reg.yaml", "-p", "no:randomly", "-rA", *args)


def statuses(res: pytest.RunResult) -> dict[str, str]:
    out = {}
    for line in res.stdout.lines:
        for word in ("PASSED", "FAILED", "SKIPPED"):
            if line.startswith(word) and "reg.yaml::" in line:
                out[line.split("reg.yaml::")[1].split()[0]] = word
    return out


def test_saving_run_passes_and_keeps_history(goni: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run(goni, monkeypatch, "--goni-save", "main")
    first.assert_outcomes(passed=1, skipped=3)  # nothing to compare with yet: SKIP, not INVALID
    assert first.ret == 0
    assert "--goni-compare NAME" in first.stdout.str()
    run(goni, monkeypatch, "--goni-save", "main", scale=1.2)
    saves = sorted((goni.path / ".goni" / "baselines" / "main").glob("*.json"))
    assert len(saves) == 2  # history, not overwritten
    gate = next(g for g in json.loads(saves[0].read_text())["gates"] if g["gate"] == "no-slower")
    assert gate["profile"] == "cpu" and gate["units"] == {"m.x": "s"} and gate["config_hash"]
    assert len(gate["samples"]["m.x"]) == 9 and gate["device"].startswith("cpu")

    listed = goni.runpytest("--goni-baselines")
    assert listed.ret == 0 and "main: 2 save(s)" in listed.stdout.str()
    hist = goni.runpytest("--goni-baselines=main").stdout.str()
    assert "reg::no-slower" in hist and "10 ms" in hist and "12 ms" in hist
    diff = goni.runpytest("--goni-baselines=main~1,main").stdout.str()
    row = next(line for line in diff.splitlines() if line.startswith("reg::no-slower"))
    assert "+20.0%" in row


def test_one_sided_regression_gate(goni: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run(goni, monkeypatch, "--goni-save", "main")
    same = run(goni, monkeypatch, "--goni-compare", "main")
    assert statuses(same) == {"no-slower": "PASSED", "near": "PASSED", "plain": "PASSED", "no-slower-ci": "PASSED"}
    slower = run(goni, monkeypatch, "--goni-compare", "main", scale=1.2)
    assert statuses(slower)["no-slower"] == statuses(slower)["no-slower-ci"] == "FAILED"
    assert "20% above the reference" in slower.stdout.str()
    faster = run(goni, monkeypatch, "--goni-compare", "main", scale=0.5)
    # faster is no regression, for the point value and for the whole interval
    assert statuses(faster) == {"no-slower": "PASSED", "near": "FAILED", "plain": "PASSED", "no-slower-ci": "PASSED"}


def test_comparisons_across_profile_or_unit_are_invalid(goni: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run(goni, monkeypatch, "--goni-save", "main")
    other = run(goni, monkeypatch, "--goni-compare", "main", "--goni-profile", "other")
    assert statuses(other)["near"] == "FAILED"
    assert "INVALID" in other.stdout.str() and "measured on profile 'cpu', this run is profile 'other'" in \
        other.stdout.str()
    bytes_now = run(goni, monkeypatch, "--goni-compare", "main", unit="B/s")
    assert "m.x was in 's', is in 'B/s'" in bytes_now.stdout.str()
    assert statuses(bytes_now)["near"] == "FAILED"


def test_a_baseline_from_an_older_version_is_refused_with_the_fix(goni: pytest.Pytester,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    old = goni.path / ".goni" / "baselines" / "old.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"gates": [{"spec": "reg", "gate": "near", "value": 0.01, "display": "10 ms"}]}))
    res = run(goni, monkeypatch, "--goni-compare", "old")
    assert "older pytest-goni" in res.stdout.str() and "--goni-save old" in res.stdout.str()
