"""A long measurement says what it is doing: through logging (logger ``goni``), as a live line in
a terminal, as plain lines under -v, through pytest's live log, and not at all under -q."""

from __future__ import annotations

import textwrap

import pytest

SPEC = """\
goni: 1
id: prog
measurements:
  train: {kind: steps, n: 4}
gates:
  - {id: loss-falls, value: train.loss, expect: "< 4"}
"""


@pytest.fixture
def prog(goni: pytest.Pytester) -> pytest.Pytester:
    goni.path.joinpath("prog.yaml").write_text(textwrap.dedent(SPEC))
    return goni


def test_live_line_in_a_terminal_is_redrawn_and_erased(prog: pytest.Pytester) -> None:
    res = prog.runpytest("--goni-spec", "prog.yaml", "--color=yes", "-p", "no:randomly")
    res.assert_outcomes(passed=1)
    out = res.stdout.str()
    # pytester reads "\r" as a line end: each redraw of the line is one line here
    frames = [seg.removesuffix("\x1b[K") for seg in out.splitlines() if seg.startswith("prog.yaml ")]
    said = [f.split(" s ", 1)[1] for f in frames if " s prog.train" in f]
    assert said[0] == "prog.train: steps on cpu"  # what runs, where
    assert "prog.train: step 2 loss 3.240" in said and "prog.train: step 4 loss 2.624" in said
    elapsed = [float(f.split(" s ", 1)[0].split()[-1]) for f in frames if " s " in f]
    assert elapsed == sorted(elapsed) and max(elapsed) >= 0.9  # the elapsed time, counting up
    assert "\nprog.yaml \x1b[K\x1b[32m." in out  # erased back to pytest's own line, which carries on


def test_verbose_without_terminal_prints_a_line_per_message(prog: pytest.Pytester) -> None:
    res = prog.runpytest("--goni-spec", "prog.yaml", "-v", "-p", "no:randomly")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["goni prog.train: steps on cpu", "goni prog.train: step 1 loss 3.600",
                              "goni prog.train: step 4 loss 2.624", "goni prog.train: done in * s",
                              "*PASSED*"])


def test_pytest_live_log_shows_goni_records(prog: pytest.Pytester) -> None:
    res = prog.runpytest("--goni-spec", "prog.yaml", "--log-cli-level=INFO", "-p", "no:randomly")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*INFO*goni.prog.train*step 3 loss 2.916*"])
    assert "goni prog.train" not in res.stdout.str()  # no second copy from the plugin


def test_quiet_says_nothing_while_measuring(prog: pytest.Pytester) -> None:
    res = prog.runpytest("--goni-spec", "prog.yaml", "-q", "--color=yes", "-p", "no:randomly")
    res.assert_outcomes(passed=1)
    assert "step 1 loss" not in res.stdout.str()


def test_ctx_log_lines_reach_caplog_of_a_failing_gate(prog: pytest.Pytester) -> None:
    prog.path.joinpath("prog.yaml").write_text(textwrap.dedent(SPEC).replace('"< 4"', '"< 1"'))
    res = prog.runpytest("--goni-spec", "prog.yaml", "--log-level=INFO", "-p", "no:randomly")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*Captured log call*", "*step 4 loss 2.624*"])
