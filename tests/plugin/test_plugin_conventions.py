"""pytest conventions kept: markers registered (--strict-markers), skips at the spec line, one
failure text per gate, --tb=no honoured, the terminal's width, readable units."""

from __future__ import annotations

import textwrap

import pytest

SPEC = """\
goni: 1
id: conv
measurements:
  m: {kind: fake, unit: B/s, values: {bw: 2811237398.54}}
gates:
  - {id: fast, value: m.bw, expect: "> 1 TB/s"}
  - {id: ok, value: m.bw, expect: "> 1 GB/s"}
  - {id: on-gpu, value: m.bw, expect: "> 1 GB/s", requires: cuda}
"""


@pytest.fixture
def conv(goni: pytest.Pytester) -> pytest.Pytester:
    goni.path.joinpath("conv.yaml").write_text(textwrap.dedent(SPEC))
    return goni


def test_strict_markers_and_skips_at_the_spec_line(conv: pytest.Pytester) -> None:
    res = conv.runpytest("--goni-spec", "conv.yaml", "--strict-markers", "-rs", "-p", "no:randomly")
    res.assert_outcomes(passed=1, failed=1, skipped=1)
    res.stdout.fnmatch_lines(["SKIPPED [[]1[]] conv.yaml:8: gate 'on-gpu' requires CUDA*"])


def test_one_failure_text_per_gate_and_tb_no(conv: pytest.Pytester) -> None:
    out = conv.runpytest("--goni-spec", "conv.yaml", "-p", "no:randomly").stdout.str()
    assert out.split("short test summary")[0].count("FAIL: gate conv::fast") == 1  # FAILURES only, no panel
    assert "2.811 GB/s" in out and "TB/s" in out and "0.002811" not in out  # a readable unit
    quiet = conv.runpytest("--goni-spec", "conv.yaml", "--tb=no", "-p", "no:randomly").stdout.str()
    before = quiet.split("short test summary")[0]
    assert "FAIL: gate conv::fast" not in before and "measured" not in before  # no failure text at all
    assert "fast" in before  # the table still lists the gate


def test_the_report_fits_the_terminal(conv: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = conv.runpytest("--goni-spec", "conv.yaml", "-p", "no:randomly").stdout.str()
    table = out[out.index("pytest-goni gates"):out.index("short test summary")]
    assert max(len(line) for line in table.splitlines()) <= 80


def test_a_gate_reruns_by_its_node_id(conv: pytest.Pytester) -> None:
    alone = conv.runpytest("conv.yaml::fast", "-p", "no:randomly")  # no --goni-spec needed
    alone.assert_outcomes(failed=1)
    both = conv.runpytest("--goni-spec", "conv.yaml", "conv.yaml::ok", "-p", "no:randomly")
    both.assert_outcomes(passed=1)
    conv.runpytest("conv.yaml", "-p", "no:randomly").assert_outcomes(passed=1, failed=1, skipped=1)
