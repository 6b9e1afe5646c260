"""The plugin as a user drives it: specs in, verdicts, exit codes and reports out."""

from __future__ import annotations

import json
import textwrap

import pytest

PASSING = """\
goni: 1
id: basic
title: a passing spec
profiles:
  cpu: {latency: 0.010}
  gpu: {latency: 0.001}
measurements:
  m: {kind: fake, unit: s, values: {lat: "${profile.latency}", base: 0.020}}
gates:
  - id: fast-enough
    value: m.lat
    expect: "< 50 ms"
    why: the seed says so
  - id: ratio
    value: m.base / m.lat
    expect: ">= 1.5x"
    severity: red-line
"""

FAILING = """\
goni: 1
id: failing
measurements:
  m: {kind: fake, unit: s, values: {lat: 0.2}}
gates:
  - id: ok-gate
    value: m.lat
    expect: "< 1 s"
  - id: too-slow
    value: m.lat
    expect: "< 100 ms"
    why: latency budget
"""


def write(p: pytest.Pytester, name: str, text: str) -> str:
    p.path.joinpath(name).write_text(textwrap.dedent(text))
    return name


def test_passing_spec_exits_zero_with_a_table(goni: pytest.Pytester) -> None:
    write(goni, "basic.yaml", PASSING)
    res = goni.runpytest("--goni-spec", "basic.yaml", "--goni-profile", "cpu")
    res.assert_outcomes(passed=2)
    assert res.ret == 0
    out = res.stdout.str()
    assert "basic" in out and "fast-enough" in out and "PASS" in out
    assert "10.0 ms" in out or "10 ms" in out  # the measured value, in the gate's unit family


def test_profile_values_reach_the_measurement(goni: pytest.Pytester) -> None:
    write(goni, "basic.yaml", PASSING)
    res = goni.runpytest("--goni-spec", "basic.yaml", "--goni-profile", "gpu", "-rA")
    res.assert_outcomes(passed=2)
    assert "profile gpu" in res.stdout.str()


def test_failing_gate_exits_one_and_says_what_where_and_by_how_much(goni: pytest.Pytester) -> None:
    write(goni, "failing.yaml", FAILING)
    res = goni.runpytest("--goni-spec", "failing.yaml")
    res.assert_outcomes(passed=1, failed=1)
    assert res.ret == 1
    out = res.stdout.str()
    assert "failing::too-slow" in out
    assert "failing.yaml:9" in out  # the gate's line
    assert "< 100 ms" in out
    assert "200 ms" in out  # measured
    assert "latency budget" in out  # why
    assert "expect: \"< 100 ms\"" in out  # the YAML lines of the gate are quoted


def test_gate_node_ids_markers_and_keyword_selection(goni: pytest.Pytester) -> None:
    write(goni, "basic.yaml", PASSING)
    res = goni.runpytest("--goni-spec", "basic.yaml", "--collect-only", "-q")
    assert "basic.yaml::fast-enough" in res.stdout.str()
    assert "basic.yaml::ratio" in res.stdout.str()
    goni.runpytest("--goni-spec", "basic.yaml", "-m", "red-line").assert_outcomes(passed=1, deselected=1)
    goni.runpytest("--goni-spec", "basic.yaml", "-m", "basic").assert_outcomes(passed=2)
    goni.runpytest("--goni-spec", "basic.yaml", "-k", "fast").assert_outcomes(passed=1, deselected=1)


def test_reportinfo_points_at_the_gate_line(goni: pytest.Pytester) -> None:
    write(goni, "basic.yaml", PASSING)
    items, _ = goni.inline_genitems("--goni-spec", "basic.yaml")
    lines = {item.name: item.reportinfo()[1] + 1 for item in items}
    assert lines == {"fast-enough": 10, "ratio": 14}


def test_a_measurement_runs_once_for_all_its_gates(goni: pytest.Pytester) -> None:
    write(goni, "basic.yaml", PASSING)
    res = goni.runpytest("--goni-spec", "basic.yaml", "--goni-report", "out")
    res.assert_outcomes(passed=2)
    assert (goni.path / "out" / "basic.m.calls.log").read_text().splitlines() == ["m"]


def test_a_raising_measurement_fails_only_its_gates(goni: pytest.Pytester) -> None:
    write(goni, "mixed.yaml", """\
        goni: 1
        id: mixed
        measurements:
          good: {kind: fake, unit: s, values: {lat: 0.01}}
          bad: {kind: boom, message: device on fire}
        gates:
          - {id: good-gate, value: good.lat, expect: "< 1 s"}
          - {id: bad-gate, value: bad.x, expect: "< 1 s"}
          - {id: bad-gate-2, value: bad.x * 2, expect: "< 1 s"}
        """)
    res = goni.runpytest("--goni-spec", "mixed.yaml")
    res.assert_outcomes(passed=1, failed=2)
    out = res.stdout.str()
    assert "RuntimeError: device on fire" in out
    assert "ERROR" in out


def test_a_measurement_past_its_timeout_fails_only_its_gates(goni: pytest.Pytester) -> None:
    write(goni, "slow.yaml", """\
        goni: 1
        id: slow
        measurements:
          good: {kind: fake, unit: s, values: {lat: 0.01}}
          nap: {kind: sleepy, seconds: 30, timeout: 0.5}
        gates:
          - {id: good-gate, value: good.lat, expect: "< 1 s"}
          - {id: nap-gate, value: nap.x, expect: "< 1 s"}
        """)
    res = goni.runpytest("--goni-spec", "slow.yaml")
    res.assert_outcomes(passed=1, failed=1)
    assert "timeout" in res.stdout.str()


def test_results_json_has_every_sample_units_and_environment(goni: pytest.Pytester) -> None:
    write(goni, "basic.yaml", PASSING)
    write(goni, "failing.yaml", FAILING)
    res = goni.runpytest("--goni-spec", "*.yaml", "--goni-report", "out")
    res.assert_outcomes(passed=3, failed=1)
    data = json.loads((goni.path / "out" / "results.json").read_text())
    assert data["goni_results_version"] == 1
    env = data["environment"]
    assert env["versions"]["torch"] and "device" in env and "git_commit" in env
    specs = {s["id"]: s for s in data["specs"]}
    assert set(specs) == {"basic", "failing"}
    lat = specs["basic"]["measurements"]["m"]["metrics"]["lat"]
    assert lat["unit"] == "s" and len(lat["samples"]) == 9
    assert {g["gate"]: g["status"] for g in specs["failing"]["gates"]} == {"ok-gate": "PASS", "too-slow": "FAIL"}
    assert specs["basic"]["config_hash"]


def test_junit_xml_carries_measured_values(goni: pytest.Pytester) -> None:
    write(goni, "failing.yaml", FAILING)
    goni.runpytest("--goni-spec", "failing.yaml", "--junitxml", "junit.xml")
    xml = (goni.path / "junit.xml").read_text()
    assert 'name="goni_status" value="FAIL"' in xml
    assert 'name="goni_expect" value="&lt; 100 ms"' in xml
    assert 'name="goni_value"' in xml


def test_goni_list_runs_nothing(goni: pytest.Pytester) -> None:
    write(goni, "basic.yaml", PASSING)
    write(goni, "mixed.yaml", "goni: 1\nid: mixed\nmeasurements:\n  bad: {kind: boom}\n"
                              "gates:\n  - {id: g, value: bad.x, expect: '< 1 s'}\n")
    res = goni.runpytest("--goni-spec", "*.yaml", "--goni-list")
    out = res.stdout.str()
    assert res.ret == 0
    assert "basic.yaml::fast-enough" in out and "fake" in out and "boom" in out
    assert "kaboom" not in out


def test_checklist_passes_only_when_its_evidence_passes(goni: pytest.Pytester) -> None:
    write(goni, "check.yaml", """\
        goni: 1
        id: check
        measurements:
          m: {kind: fake, unit: s, values: {a: 0.01, b: 0.5}}
        gates:
          - {id: a-fast, value: m.a, expect: "< 100 ms"}
          - {id: b-fast, value: m.b, expect: "< 100 ms"}
          - {id: item-1, kind: checklist, of: [a-fast]}
          - {id: item-2, kind: checklist, of: [a-fast, b-fast]}
        """)
    res = goni.runpytest("--goni-spec", "check.yaml", "-p", "no:randomly")
    res.assert_outcomes(passed=2, failed=2)
    out = res.stdout.str()
    assert "1/2 evidence gates pass" in out
    assert "b-fast: FAIL" in out


def test_confidence_interval_straddling_the_threshold_is_invalid(goni: pytest.Pytester) -> None:
    write(goni, "ci.yaml", """\
        goni: 1
        id: ci
        measurements:
          m: {kind: fake, unit: s, values: {lat: 0.1}, samples: 30}
          few: {kind: fake, unit: s, values: {lat: 0.1}, samples: 2}
        gates:
          - {id: straddles, value: m.lat, expect: "< 100 ms", confidence: 0.95}
          - {id: clears, value: m.lat, expect: "< 200 ms", confidence: 0.95}
          - {id: too-few, value: few.lat, expect: "< 200 ms", confidence: 0.95}
        """)
    res = goni.runpytest("--goni-spec", "ci.yaml")
    res.assert_outcomes(passed=1, failed=2)
    assert res.stdout.str().count("INVALID") >= 2


def test_gpu_only_gates_skip_with_a_reason_on_cpu(goni: pytest.Pytester) -> None:
    write(goni, "gpu.yaml", """\
        goni: 1
        id: gpuonly
        measurements:
          m: {kind: fake, unit: s, values: {lat: 0.01}}
        gates:
          - {id: anywhere, value: m.lat, expect: "< 1 s"}
          - {id: on-gpu, value: m.lat, expect: "< 1 s", requires: cuda}
        """)
    res = goni.runpytest("--goni-spec", "gpu.yaml", "-rs")
    res.assert_outcomes(passed=1, skipped=1)
    assert "requires CUDA" in res.stdout.str()


def test_xdist_gives_the_same_verdicts_and_one_table(goni: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    write(goni, "basic.yaml", PASSING)
    write(goni, "failing.yaml", FAILING)
    res = goni.runpytest_subprocess("--goni-spec", "*.yaml", "-n", "2", "--goni-report", "out")
    res.assert_outcomes(passed=3, failed=1)
    out = res.stdout.str()
    assert out.count("pytest-goni gates") == 1
    data = json.loads((goni.path / "out" / "results.json").read_text())
    verdicts = {(s["id"], g["gate"]): g["status"] for s in data["specs"] for g in s["gates"]}
    assert verdicts == {("basic", "fast-enough"): "PASS", ("basic", "ratio"): "PASS",
                        ("failing", "ok-gate"): "PASS", ("failing", "too-slow"): "FAIL"}
    assert set(data["specs"][0]["measurements"]) == {"m"}


def test_compare_with_unknown_baseline_is_a_usage_error(goni: pytest.Pytester) -> None:
    write(goni, "basic.yaml", PASSING)
    res = goni.runpytest("--goni-spec", "basic.yaml", "--goni-compare", "nope")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "no stored baseline 'nope'" in res.stderr.str()


def test_info_gates_report_but_never_fail_the_run(goni: pytest.Pytester) -> None:
    write(goni, "info.yaml", """\
        goni: 1
        id: info
        measurements:
          m: {kind: fake, unit: s, values: {lat: 0.2}}
        gates:
          - id: informational
            value: m.lat
            expect: "< 100 ms"
            severity: info
          - id: next-gate
            value: m.lat
            expect: "< 1 s"
        """)
    res = goni.runpytest("--goni-spec", "info.yaml")
    res.assert_outcomes(passed=1, xfailed=1)
    assert res.ret == 0
    assert "FAIL" in res.stdout.str()  # the table still says what was measured


def test_failure_panel_quotes_only_its_own_gate(goni: pytest.Pytester) -> None:
    write(goni, "failing.yaml", FAILING + "  - id: after\n    value: m.lat\n    expect: \"< 1 s\"\n")
    out = goni.runpytest("--goni-spec", "failing.yaml").stdout.str()
    panel = out[out.index("FAIL: gate failing::too-slow"):]
    assert "why: latency budget" in panel
    assert "- id: after" not in panel.split("short test summary")[0]


def test_profile_only_gates_are_checked_only_in_their_profile(goni: pytest.Pytester) -> None:
    write(goni, "prof.yaml", """\
        goni: 1
        id: prof
        profiles:
          cpu: {}
          gpu: {}
        measurements:
          m: {kind: fake, unit: s, values: {lat: 0.01}}
        gates:
          - {id: both, value: m.lat, expect: "< 1 s"}
          - {id: gpu-only-label, value: m.gpu_label, expect: "< 1 s", profiles: [gpu]}
        """)
    res = goni.runpytest("--goni-spec", "prof.yaml", "--goni-profile", "cpu", "-rs")
    res.assert_outcomes(passed=1, skipped=1)
    assert "applies to profiles gpu" in res.stdout.str()
    bad = goni.runpytest("--goni-spec", "prof.yaml", "--goni-profile", "gpu")
    bad.assert_outcomes(errors=1)
    assert "m.gpu_label" in bad.stdout.str() or "gpu_label" in bad.stdout.str()


SIGNIFICANCE = """\
goni: 1
id: sig
measurements:
  loss: {kind: fake, values: {a: 1.0, b: 2.0}}
gates:
  - {id: a-below-b, kind: significance, a: loss.a, b: loss.b, expect: "a < b", test: welch}
  - {id: a-below-b-2sigma, kind: significance, a: loss.a, b: loss.b, expect: "a < b", test: two-sigma}
"""


def test_significance_statistics_reach_results_json(goni: pytest.Pytester) -> None:
    write(goni, "sig.yaml", SIGNIFICANCE)
    goni.runpytest("--goni-spec", "sig.yaml", "--goni-report", "out").assert_outcomes(passed=2)
    data = json.loads((goni.path / "out" / "results.json").read_text())
    gates = {g["gate"]: g for g in data["specs"][0]["gates"]}
    welch = gates["a-below-b"]["details"]
    assert welch["test"] == "welch" and welch["alpha"] == 0.05 and welch["n_a"] == welch["n_b"] == 9
    assert welch["t"] < 0 and 0 <= welch["p"] < 0.05 and welch["mean_a"] < welch["mean_b"]
    sigma = gates["a-below-b-2sigma"]["details"]
    assert sigma["test"] == "two-sigma" and sigma["threshold"] > 0
    lines = [json.loads(x) for x in (goni.path / "out" / "gates.jsonl").read_text().splitlines()]
    assert {x["gate"]: x["details"]["test"] for x in lines} == {"a-below-b": "welch", "a-below-b-2sigma": "two-sigma"}
