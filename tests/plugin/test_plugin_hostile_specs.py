"""Hostile and careless spec files: each fails fast as one line naming file:line, costs no memory,
and the other specs of the run still run (issue 12)."""

from __future__ import annotations

import resource
import time

import pytest

GOOD = """\
goni: 1
id: good
measurements:
  m: {kind: fake, unit: s, values: {lat: 0.01}}
gates:
  - {id: good-gate, value: m.lat, expect: "< 1 s"}
"""

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


def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "goni: 1\nid: bomb\n" + "\n".join(lines) + "\n"


def deep(n: int) -> str:
    return BASE.replace('expect: "< 1 s"', f'expect: "< 1 s"\n    why: {"[" * n}{"]" * n}')


CASES = {
    "billion-laughs": (billion_laughs(), "bad.yaml:", "alias bomb"),
    "recursive-alias": ("goni: 1\nid: rec\nx: &a [1, *a]\n", "bad.yaml:3:", "cycle"),
    "deep-nesting": (deep(5000), "bad.yaml:", "nested more than 64 levels"),
    "not-utf8": (BASE.encode().replace(b"id: bad", b"id: bad\ntitle: caf\xe9"), "bad.yaml:3:11",
                 "not UTF-8: byte 0xe9"),
    "python-tag-on-mapping": (BASE.replace("gates:", "extra: !!python/object:os.system {a: 1}\ngates:"),
                              "bad.yaml:9:", "'!!python/object:os.system' is not allowed"),
    "python-tag-on-scalar": (BASE.replace("goni: 1", "goni: 1\ntitle: !!python/name:os.system x"),
                             "bad.yaml:2:", "'!!python/name:os.system' is not allowed"),
    "set-tag": (BASE.replace("goni: 1", "goni: 1\ntitle: !!set {a}"), "bad.yaml:2:", "'!!set' is not allowed"),
    "local-tag": (BASE.replace("goni: 1", "goni: 1\ntitle: !mine x"), "bad.yaml:2:", "'!mine' is not allowed"),
    "control-character": (BASE.replace("goni: 1", "goni: 1\ntitle: a\x07b"), "bad.yaml:2:9",
                          "character #x0007 is not allowed"),
    "huge-integer": (BASE.replace("cpu: {n: 3}", f"cpu: {{n: {'9' * 5000}}}"), "bad.yaml:4:",
                     "as int"),
    "impossible-date": (BASE.replace("goni: 1", "goni: 1\ntitle: 2024-13-45"), "bad.yaml:2:",
                        "as timestamp"),
    "threshold-overflow": (BASE.replace('expect: "< 1 s"', 'expect: "< 1e400 s"'), "bad.yaml:12:",
                           "1e400 is out of range"),
    "threshold-huge-exponent": (BASE.replace('expect: "< 1 s"', 'expect: "< 1e999999999 s"'),
                                "bad.yaml:12:", "out of range"),
    "expression-overflow": (BASE.replace("value: m.lat", "value: m.lat * 1e400"), "bad.yaml:11:",
                            "out of range"),
    "expression-deep": (BASE.replace("value: m.lat", f"value: {'(' * 3000}m.lat{')' * 3000}"),
                        "bad.yaml:11:", "nested more than"),
    "profile-self-reference": (BASE.replace("cpu: {n: 3}", "cpu: {n: '${profile.n}'}"), "bad.yaml:4:",
                               "cycle in profile references: ${profile.n} -> ${profile.n}"),
    "profile-cycle": (BASE.replace("cpu: {n: 3}", "cpu: {n: '${profile.k}', k: ['${profile.n}']}"),
                      "profiles.cpu.n", "${profile.n} -> ${profile.k} -> ${profile.n}"),
    "typo-before-missing": (BASE.replace('    expect: "< 1 s"', '    expcet: "< 1 s"'), "gates[0].expcet",
                            "unknown key 'expcet' (did you mean 'expect'?)"),
    "ansi-in-id": (BASE.replace("id: g1", 'id: "\\e[2J\\e[31mg1"'), "bad.yaml:10:", "\\x1b[2J"),
    "marker-id-xfail": (BASE.replace("id: bad", "id: xfail"), "bad.yaml:2:5: id",
                        "spec id 'xfail' is the name of a pytest marker"),
    "marker-id-skip": (BASE.replace("id: bad", "id: skip"), "bad.yaml:2:5: id", "name of a pytest marker"),
    "marker-id-usefixtures": (BASE.replace("id: bad", "id: usefixtures"), "bad.yaml:2:5", "pytest marker"),
    "duplicate-spec-id": (GOOD, "bad.yaml:2:5: id", "duplicate spec id 'good': good.yaml has it too"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_spec_is_one_line_error_and_others_run(goni: pytest.Pytester, case: str) -> None:
    body, where, what = CASES[case]
    goni.path.joinpath("good.yaml").write_text(GOOD)
    bad = goni.path.joinpath("bad.yaml")
    bad.write_bytes(body if isinstance(body, bytes) else body.encode())
    t0 = time.perf_counter()
    res = goni.runpytest("--goni-spec", "good.yaml", "--goni-spec", "bad.yaml")
    assert time.perf_counter() - t0 < 60
    out = res.stdout.str()
    res.assert_outcomes(passed=1, errors=1)
    assert "Traceback" not in out and "\x1b[2J" not in out
    lines = [line for line in out.splitlines() if line.startswith("bad.yaml")]
    assert any(where in line and what in line for line in lines), (case, lines)
    assert len([line for line in lines if where in line and what in line]) == 1, lines


def test_billion_laughs_costs_no_memory(goni: pytest.Pytester) -> None:
    goni.path.joinpath("bomb.yaml").write_text(billion_laughs())
    goni.path.joinpath("good.yaml").write_text(GOOD)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    res = goni.runpytest("--goni-spec", "bomb.yaml", "--goni-spec", "good.yaml")
    assert time.perf_counter() - t0 < 30  # was minutes (and 24 GB) before the limits
    res.assert_outcomes(passed=1, errors=1)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100, grown_mib


def test_oversized_file_is_refused_before_parsing(goni: pytest.Pytester) -> None:
    goni.path.joinpath("big.yaml").write_text(GOOD + "# " + "x" * (3 * 1024 * 1024) + "\n")
    res = goni.runpytest("--goni-spec", "big.yaml")
    res.assert_outcomes(errors=1)
    assert "a spec may have at most 2,097,152 bytes" in res.stdout.str()


def test_a_directory_collects_its_specs(goni: pytest.Pytester) -> None:
    d = goni.path / "specs"
    d.mkdir()
    (d / "a.yaml").write_text(GOOD)
    (d / "b.yml").write_text(GOOD.replace("id: good\n", "id: other\n"))
    (d / "notes.txt").write_text("not a spec")
    (goni.path / "empty").mkdir()
    res = goni.runpytest("--goni-spec", "specs", "--goni-spec", "empty")
    res.assert_outcomes(passed=2, errors=1)
    assert "empty: directory has no spec files (*.yaml, *.yml)" in res.stdout.str()


def test_gate_ids_named_like_markers_change_nothing(goni: pytest.Pytester) -> None:
    goni.path.joinpath("m.yaml").write_text(
        "goni: 1\nid: markers\nmeasurements:\n  m: {kind: fake, unit: s, values: {lat: 0.2}}\ngates:\n"
        + "".join(f'  - {{id: {g}, value: m.lat, expect: "< 1 ms", severity: red-line}}\n'
                  for g in ("xfail", "skip", "skipif", "usefixtures", "filterwarnings")))
    res = goni.runpytest("--goni-spec", "m.yaml")
    res.assert_outcomes(failed=5)
    assert res.ret == 1


def test_profile_values_may_reference_each_other(goni: pytest.Pytester) -> None:
    goni.path.joinpath("p.yaml").write_text(
        "goni: 1\nid: p\nprofiles:\n  cpu: {a: 0.01, b: '${profile.a}'}\nmeasurements:\n"
        "  m: {kind: fake, unit: s, values: {lat: '${profile.b}'}}\n"
        "gates:\n  - {id: g, value: m.lat, expect: '< 20 ms'}\n")
    goni.runpytest("--goni-spec", "p.yaml", "--goni-profile", "cpu").assert_outcomes(passed=1)


@pytest.mark.parametrize(("expr", "hint"), [
    ("m.a", "write the unit, e.g. '> 1 B'"),
    ("m.a + m.b", "write the unit, e.g. '> 1 B'"),
    ("m.a / t.a", "write the unit, e.g. '> 1 B/s'"),
    ("t.a * t.b", "which no unit spells"),
])
def test_unit_hints_name_real_units(goni: pytest.Pytester, expr: str, hint: str) -> None:
    goni.path.joinpath("u.yaml").write_text(
        "goni: 1\nid: u\nmeasurements:\n  m: {kind: fake, unit: B, values: {a: 1, b: 2}}\n"
        "  t: {kind: fake, unit: s, values: {a: 1, b: 2}}\n"
        f"gates:\n  - {{id: g, value: '{expr}', expect: '> 1'}}\n")
    out = goni.runpytest("--goni-spec", "u.yaml").stdout.str()
    assert hint in out, out
    assert "bytes'" not in out and "time'" not in out
