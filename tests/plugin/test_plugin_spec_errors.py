"""Every malformed-input class gives one readable line naming file:line:col and the key, no
traceback, and the other specs of the run still run."""

from __future__ import annotations

import textwrap

import pytest

GOOD = """\
goni: 1
id: good
measurements:
  m: {kind: fake, unit: s, values: {lat: 0.01}}
gates:
  - {id: good-gate, value: m.lat, expect: "< 1 s"}
"""


def spec(body: str) -> str:
    return textwrap.dedent(body)


BASE = """\
goni: 1
id: bad
profiles:
  cpu: {n: 3}
models:
  cand: {backend: gpt2}
measurements:
  m: {kind: fake, unit: s, values: {lat: 0.01, mem: 1}}
gates:
  - id: g1
    value: m.lat
    expect: "< 1 s"
"""

CASES = {
    "yaml-syntax": (BASE.replace('expect: "< 1 s"', 'expect: "< 1 s'), ":12:", "YAML syntax error"),
    "wrong-type": (BASE.replace("goni: 1", "goni: 1\ntitle: [not, a, string]"), "bad.yaml:2:8: title",
                   "expected a string"),
    "unknown-key": (BASE.replace('    expect: "< 1 s"', '    expct: "< 1 s"'), "gates[0].expct",
                    "did you mean 'expect'"),
    "unknown-kind": (BASE.replace("kind: fake", "kind: faek"), "bad.yaml:8:", "did you mean 'fake'"),
    "unknown-metric": (BASE.replace("value: m.lat", "value: m.latency"), "bad.yaml:11:", "m.lat"),
    "undefined-measurement": (BASE.replace("value: m.lat", "value: q.lat"), "bad.yaml:1", "q"),
    "undefined-model": (BASE.replace("{backend: gpt2}", "{backend: gpt2, match_params: candidate}"),
                        "models.cand.match_params", "undefined model 'candidate'"),
    "undefined-model-in-entry": (BASE.replace("kind: fake, unit: s,", "kind: fake, unit: s, models: [{model: cnd}],"),
                                 "measurements.m.models[0].model", "did you mean 'cand'"),
    "duplicate-gate": (BASE + '  - id: g1\n    value: m.lat\n    expect: "< 2 s"\n', "bad.yaml:13:",
                       "duplicate gate id 'g1'"),
    "unit-mismatch": (BASE.replace('expect: "< 1 s"', 'expect: "< 100 MB"'), "bad.yaml:12:", "time"),
    "malformed-threshold": (BASE.replace('expect: "< 1 s"', 'expect: "<== 1.2"'), "bad.yaml:12:",
                            "is not a comparison"),
    "unresolvable-ref": (BASE.replace("lat: 0.01,", "lat: '${profile.latency}',"), "bad.yaml:8:",
                         "unresolvable ${profile.latency}"),
    "empty-spec": ("", "bad.yaml", "empty spec"),
    "unknown-profile-key": (BASE.replace("goni: 1", "goni: 2"), "bad.yaml:1:7: goni", "must be 1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_spec_is_one_line_collection_error(goni: pytest.Pytester, case: str) -> None:
    body, where, what = CASES[case]
    pytester = goni
    pytester.path.joinpath("bad.yaml").write_text(body)
    pytester.path.joinpath("good.yaml").write_text(GOOD)
    res = pytester.runpytest("--goni-spec", "bad.yaml", "--goni-spec", "good.yaml")
    out = res.stdout.str()
    res.assert_outcomes(passed=1, errors=1)
    assert res.ret == 1
    assert "Traceback" not in out
    error_lines = [line for line in out.splitlines() if line.startswith("bad.yaml")]
    assert error_lines, out
    assert any(where in line and what in line for line in error_lines), (case, error_lines)


def test_missing_spec_file_is_an_error_and_others_run(goni: pytest.Pytester) -> None:
    pytester = goni
    pytester.path.joinpath("good.yaml").write_text(GOOD)
    res = pytester.runpytest("--goni-spec", "nope.yaml", "--goni-spec", "good.yaml")
    res.assert_outcomes(passed=1, errors=1)
    assert "nope.yaml: spec file not found" in res.stdout.str()
    assert "Traceback" not in res.stdout.str()


def test_unknown_kind_lists_the_known_ones(goni: pytest.Pytester) -> None:
    pytester = goni
    pytester.path.joinpath("bad.yaml").write_text(BASE.replace("kind: fake", "kind: nonsense"))
    out = pytester.runpytest("--goni-spec", "bad.yaml").stdout.str()
    assert "known:" in out and "boom" in out and "fake" in out and "roofline" in out
