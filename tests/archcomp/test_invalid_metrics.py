"""The core honours a measurement's validity flag (``meta["invalid"]``): every gate kind reading an
invalid metric is INVALID with the reason, never PASS or FAIL; a checklist over it is INVALID."""

from __future__ import annotations

import pytest

from .conftest import gates, run_spec

SPEC = """
goni: 1
id: inv
profiles: {cpu: {}}
measurements:
  m:
    kind: given
    samples: {good: [0.9, 0.91, 0.92], bad: [0.99, 0.98, 0.97], other: [0.1, 0.2, 0.15]}
    invalid: {bad: "task failed its known-answer check: labels shifted"}
gates:
  - {id: threshold-valid, value: m.good, expect: "> 0.5"}
  - {id: threshold-invalid, value: m.bad, expect: "> 0.5"}
  - {id: threshold-invalid-would-fail, value: m.bad, expect: "< 0.5"}
  - {id: expression-invalid, value: m.good - m.bad, expect: "< 1"}
  - {id: significance-invalid, kind: significance, a: m.bad, b: m.other, expect: a > b}
  - {id: paired-invalid, kind: significance, a: m.bad, b: m.other, expect: a > b, test: paired-t}
  - {id: list, kind: checklist, of: [threshold-valid, threshold-invalid]}
"""


def test_every_gate_reading_an_invalid_metric_is_invalid(given: pytest.Pytester) -> None:
    run_spec(given, SPEC)
    g = gates(given)
    assert g["threshold-valid"]["status"] == "PASS"
    for gid in ("threshold-invalid", "threshold-invalid-would-fail", "expression-invalid",
                "significance-invalid", "paired-invalid"):
        assert g[gid]["status"] == "INVALID", gid
        assert "m.bad: task failed its known-answer check: labels shifted" in g[gid]["reason"], gid
    assert g["list"]["status"] == "INVALID"
