"""A measurement whose kind declares a split axis runs in parts under xdist: each part once, on
whichever worker has a gate reading it, the gates reading the parts' metrics merged, with the same
values as a serial run (which measures it whole). The fake ``sweep`` kind records the points each
run measured and where (where.log)."""

from __future__ import annotations

import json
import re
import textwrap
from types import SimpleNamespace

import pytest

pytest.importorskip("xdist")

SWEEP = """\
goni: 1
id: sw
measurements:
  sw: {kind: sweep, points: [1, 2, 3, 4], seconds: 0.3}
  other: {kind: whereami, seconds: 0.3}
gates:
  - {id: p1, value: sw.p1.x, expect: "< 1 s"}
  - {id: p2, value: sw.p2.x, expect: "< 1 s", confidence: 0.9}
  - {id: p3-over-p4, value: sw.p3.x / sw.p4.x, expect: "< 1"}
  - {id: p4, value: sw.p4.x, expect: "> 0.1 s"}
  - {id: o, value: other.x, expect: "< 1 s"}
  - {id: all-points, kind: checklist, of: [p1, p2, p3-over-p4]}
"""


def _run(p: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, list[list[str]], dict]:
    p.path.joinpath("sw.yaml").write_text(textwrap.dedent(SWEEP))
    (p.path / "where.log").unlink(missing_ok=True)
    res = p.runpytest_subprocess("--goni-spec", "sw.yaml", "--goni-report", "out", "-v", "-p", "no:randomly", *args)
    where = [line.split() for line in (p.path / "where.log").read_text().splitlines()]
    return res, where, json.loads((p.path / "out" / "results.json").read_text())


def _gates(data: dict) -> dict[str, dict]:
    return {g["gate"]: g for g in data["specs"][0]["gates"]}


def test_parts_run_once_each_on_two_workers_with_the_serial_values(goni: pytest.Pytester) -> None:
    """-n 2: each part once, on both workers, each gate where its part ran, one merged record
    (schema-valid, each part in the timeline); -n 0: the measurement whole, once; every gate's
    value, interval, margin and verdict the same in both."""
    jsonschema = pytest.importorskip("jsonschema")
    from importlib import resources

    res, where, data = _run(goni, "-n", "2", "--goni-dist", "measurement")
    res.assert_outcomes(passed=5, failed=1)  # p4 (0.04 s) fails "> 0.1 s"
    runs = [w for w in where if w[0] == "sw.sw"]
    points = sorted(int(v) for w in runs for v in w[3].split(","))
    assert points == [1, 2, 3, 4], runs  # every point measured, none twice
    assert sorted(w[3] for w in runs) == ["1", "2", "3,4"]  # p3-over-p4 reads 3 and 4: one part, one run
    assert len({w[1] for w in runs}) == 2, runs  # the parts ran on both workers
    ran = {w[3]: w[1] for w in runs}
    gate_workers = {m.group(2).rpartition("::")[2]: m.group(1)
                    for m in re.finditer(r"\[(gw\d+)\][^\n]*?(?:PASSED|FAILED) (\S+)", res.stdout.str())}
    assert gate_workers["p1"] == ran["1"] and gate_workers["p2"] == ran["2"]
    assert gate_workers["p3-over-p4"] == gate_workers["p4"] == ran["3,4"]  # each gate where its part ran
    record = data["specs"][0]["measurements"]["sw"]  # one record, the parts merged
    assert sorted(record["metrics"]) == ["p1.x", "p2.x", "p3.x", "p4.x"]
    assert sorted(p["part"]["label"] for p in record["parts"]) == ["points=1", "points=2", "points=3,4"]
    assert {p["part"]["label"]: p["worker"] for p in record["parts"]} == {f"points={k}": w for k, w in ran.items()}
    assert abs(record["seconds"] - sum(p["seconds"] for p in record["parts"])) < 1e-3
    jsonschema.Draft202012Validator(json.loads(
        resources.files("pytest_goni.schema").joinpath("results.schema.json").read_text())).validate(data)
    tl = data["timeline"]["measurements"]
    assert sorted(m["measurement"] for m in tl if m["measurement"].startswith("sw.sw")) == \
        ["sw.sw[points=1]", "sw.sw[points=2]", "sw.sw[points=3,4]"]
    assert _gates(data)["all-points"]["status"] == "PASS"

    res0, where0, serial = _run(goni, "-n", "0")
    res0.assert_outcomes(passed=5, failed=1)
    assert [w[3] for w in where0 if w[0] == "sw.sw"] == ["1,2,3,4"]  # serially: measured whole, once
    assert "parts" not in serial["specs"][0]["measurements"]["sw"]
    a, b = _gates(serial), _gates(data)
    assert a.keys() == b.keys()
    for gate in a:
        for key in ("status", "value", "interval", "margin", "display"):
            assert a[gate].get(key) == b[gate].get(key), (gate, key, a[gate].get(key), b[gate].get(key))
    assert record["metrics"] == serial["specs"][0]["measurements"]["sw"]["metrics"]


def test_spec_mode_keeps_a_split_measurement_whole(goni: pytest.Pytester) -> None:
    """With one unit per spec (the CPU default under -n) nothing is spread: the measurement runs whole."""
    res, where, data = _run(goni, "-n", "2", "--goni-dist", "spec")
    res.assert_outcomes(passed=5, failed=1)
    assert [w[3] for w in where if w[0] == "sw.sw"] == ["1,2,3,4"]


def _kind(keys_of, split="points"):
    return SimpleNamespace(split=split, metrics=keys_of)


def test_a_split_needs_the_keys_to_partition() -> None:
    from pytest_goni.parts import plan_split

    per_point = _kind(lambda p: {f"p{v}.x": "s" for v in p["points"]})
    split = plan_split(per_point, {"points": [8, 2, 4]})
    assert split is not None and split.values == (8, 2, 4)
    assert split.values_for({"p2.x", "p4.x"}) == [2, 4]  # spec order
    assert split.values_for({"p2.x", "elsewhere"}) is None  # a key of no part: the whole
    assert split.params({"points": [8, 2, 4], "n": 1}, [4, 8]) == {"points": [8, 4], "n": 1}
    assert split.label([8, 4]) == "points=8,4"
    # a key shared by every value, or one no value declares alone: not safe to split
    shared = _kind(lambda p: {**{f"p{v}.x": "s" for v in p["points"]}, "total": "s"})
    assert plan_split(shared, {"points": [1, 2]}) is None
    assert plan_split(per_point, {"points": [1]}) is None             # nothing to split
    assert plan_split(per_point, {"points": [1, 1]}) is None          # repeated values
    assert plan_split(per_point, {"points": [{"a": 1}, {"b": 2}]}) is None  # not plain values
    assert plan_split(_kind(per_point.metrics, split=None), {"points": [1, 2]}) is None


def test_units_and_costs_per_part() -> None:
    from pytest_goni.parts import plan_split
    from pytest_goni.scheduling import measurement_nodes, node_cost, share_groups

    kind = _kind(lambda p: {f"p{v}.x": "s" for v in p["points"]})
    m = SimpleNamespace(split=plan_split(kind, {"points": [1000, 3000]}))
    spec = SimpleNamespace(measurements={"sw": m, "o": SimpleNamespace(split=None)})

    def gate(gid, *paths):
        return SimpleNamespace(id=gid, measurements={p.split(".")[0] for p in paths}, of=[],
                               compiled=SimpleNamespace(paths=set(paths)))

    gates = [gate("a", "sw.p1000.x"), gate("b", "sw.p3000.x"), gate("c", "sw.p3000.x", "o.x"), gate("d", "o.x")]
    units = share_groups(gates, "s.yaml", True, spec=spec)
    assert units == {"a": "s.yaml::sw[points=1000]", "b": "s.yaml::o", "c": "s.yaml::o", "d": "s.yaml::o"}
    assert share_groups(gates, "s.yaml", True) == dict.fromkeys("abcd", "s.yaml::o")  # no spec: whole
    assert measurement_nodes(spec, SimpleNamespace(compiled=None), "sw") == ["sw[points=1000]", "sw[points=3000]"]
    known = {"sw": 8.0, "o": 1.0}.get
    assert node_cost(spec, "sw[points=1000]", known) == 2.0  # the whole's time, shared by axis value
    assert node_cost(spec, "sw[points=3000]", {"sw[points=3000]": 5.5}.get) == 5.5  # its own, once known
