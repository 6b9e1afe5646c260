"""A measurement is given the thresholds of the gates that read it (ctx.gate_lines), in its
metrics' own units, so its plots can draw them: checked through a kind that logs what it got."""

from __future__ import annotations

import json
import textwrap

import pytest

KIND = '''

def pytest_goni_register(registries):
    from pytest_goni.stats import Metric

    @registries.measurement_kind(
        "tells_lines", schema={"type": "object", "properties": {"unit": {"type": "string"}}},
        metrics=lambda p: {"crossover": "tok", "cand.latency": "ms"},
    )
    def tells_lines(ctx, params):
        for line in ctx.gate_lines:
            ctx.log(f"{line.gate}|{line.metric}|{line.op}|{line.value:g}|{line.text}")
        return {"crossover": Metric.scalar(2048, "tok"), "cand.latency": Metric.scalar(3.0, "ms")}
'''

SPEC = """\
goni: 1
id: lines
measurements:
  m: {kind: tells_lines}
  other: {kind: tells_lines}
gates:
  - {id: cross-in-range, value: m.crossover, expect: "<= 131072 tok"}
  - {id: fast, value: m.cand.latency, expect: "< 5 ms"}
  - {id: fast-in-seconds, value: m.cand.latency, expect: "< 0.004 s"}
  - {id: ratio, value: m.cand.latency / other.cand.latency, expect: "< 2"}
  - {id: range, value: m.crossover, expect: "between 1 tok and 4096 tok"}
  - {id: other-fast, value: other.cand.latency, expect: "< 9 ms"}
"""


def test_a_measurement_gets_its_gates_thresholds(goni: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    conftest = goni.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace("def pytest_goni_register(registries):",
                                                     "def _fake_kinds(registries):", 1) + KIND)
    goni.path.joinpath("lines.yaml").write_text(textwrap.dedent(SPEC))
    res = goni.runpytest("--goni-spec", "lines.yaml", "--goni-report", "out", "-p", "no:randomly")
    res.assert_outcomes(passed=6)
    meas = json.loads((goni.path / "out" / "results.json").read_text())["specs"][0]["measurements"]
    # in the metric's own unit (0.004 s on a metric in ms is 4); ratios and ranges are not lines
    assert meas["m"]["log"] == ["cross-in-range|crossover|<=|131072|<= 131072 tok", "fast|cand.latency|<|5|< 5 ms",
                                "fast-in-seconds|cand.latency|<|4|< 0.004 s"]
    assert meas["other"]["log"] == ["other-fast|cand.latency|<|9|< 9 ms"]
