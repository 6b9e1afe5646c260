"""The gate table at 80 and 120 columns (COLUMNS, as a terminal sets it): one line per gate, the
gate id and its verdict always whole on that line; what gives way first is the value's interval and
a checklist's list of evidence gates, then value and expect are cut, then the margin column."""

from __future__ import annotations

import re
import textwrap

import pytest

SPEC = """\
goni: 1
id: wide
measurements:
  m: {kind: fake, unit: B/s, values: {bw: 2811237398.54, copy: 3918537063166.0}}
  n: {kind: fake, values: {ratio: 0.0002441, speedup: 9.01}}
gates:
  - {id: mem-unfused-attention-fails-in-sweep, value: m.bw, expect: "> 1 GB/s"}
  - {id: copy-bandwidth-floor-of-the-device, value: m.copy, expect: "> 2 TB/s", stat: max}
  - {id: mem-state-vs-kv-long, value: n.ratio, expect: "<= 1.0"}
  - {id: rt-prefill-speedup-at-longest-context, value: n.speedup, expect: ">= 1000.0"}
  - id: checklist-4-memory-realism
    kind: checklist
    of: [mem-unfused-attention-fails-in-sweep, copy-bandwidth-floor-of-the-device, mem-state-vs-kv-long]
"""

GATES = {"mem-unfused-attention-fails-in-sweep": "PASS", "copy-bandwidth-floor-of-the-device": "PASS",
         "mem-state-vs-kv-long": "PASS", "rt-prefill-speedup-at-longest-context": "FAIL",
         "checklist-4-memory-realism": "PASS"}


def _table(goni: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, columns: int) -> list[str]:
    goni.path.joinpath("wide.yaml").write_text(textwrap.dedent(SPEC))
    monkeypatch.setenv("COLUMNS", str(columns))
    out = goni.runpytest("--goni-spec", "wide.yaml", "-p", "no:randomly", "--tb=no").stdout.str()
    lines = out[out.index("pytest-goni gates"):out.index("short test summary")].splitlines()
    assert max(len(line) for line in lines) <= columns, "\n".join(lines)
    for gate, verdict in GATES.items():  # the whole id and its verdict on one line
        assert any(re.search(rf"^\s+{re.escape(gate)}\s.*\b{verdict}\s*$", line) for line in lines), (gate, lines)
    return lines


def _row(lines: list[str], gate: str) -> str:
    return next(line for line in lines if line.strip().startswith(gate + " "))


def test_at_120_columns_everything_is_shown(goni: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _table(goni, monkeypatch, 120)
    assert "margin" in lines[lines.index(next(line for line in lines if " gate " in line))]
    assert re.search(r"3\.958 TB/s \[[\d.]+, [\d.]+\]", _row(lines, "copy-bandwidth-floor-of-the-device"))
    assert "-99.1%" in _row(lines, "rt-prefill-speedup-at-longest-context")  # the margin
    assert "…" not in "\n".join(lines)


def test_at_80_columns_value_and_expect_give_way(goni: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _table(goni, monkeypatch, 80)
    checklist = _row(lines, "checklist-4-memory-realism")
    assert "all 3 pass" in checklist and "3/3 pass" in checklist  # counted, not listed and folded
    copy = _row(lines, "copy-bandwidth-floor-of-the-device")
    assert "3.958 TB/s" in copy and "[" not in copy  # the interval went first
    assert "> 2 TB/s" in copy
    assert len(lines) < 30  # one line per gate: nothing folded onto further lines


def test_too_narrow_for_one_line_value_and_expect_go_under_the_gate(goni: pytest.Pytester,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _table(goni, monkeypatch, 56)
    row = lines.index(_row(lines, "rt-prefill-speedup-at-longest-context"))
    assert "9.01" in lines[row + 1] and ">= 1000.0" in lines[row + 1]
