"""Under xdist each measurement runs exactly once, on one worker, and the gates reading it run
there too. The measurement used here records the worker and device it really ran on (a line
appended to where.log by whichever process ran it), so a duplicate or a misplaced gate shows."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

pytest.importorskip("xdist")

WHERE = """\
goni: 1
id: {id}
measurements:
  m1: {{kind: whereami, seconds: 0.4}}
  m2: {{kind: whereami, seconds: 0.4}}
  m3: {{kind: whereami, seconds: 0.4}}
  m4: {{kind: whereami, seconds: 0.4}}
gates:
  - {{id: a1, value: m1.x, expect: "< 1 s"}}
  - {{id: b2, value: m2.x, expect: "< 1 s"}}
  - {{id: c3, value: m3.x, expect: "< 1 s"}}
  - {{id: d4, value: m4.x, expect: "< 1 s"}}
  - {{id: a1-again, value: m1.x * 2, expect: "< 2 s"}}
  - {{id: b2-again, value: m2.x, expect: "> 0.1 s"}}
  - {{id: c3-and-d4, value: m3.x + m4.x, expect: "< 2 s"}}
  - {{id: all-of-a, kind: checklist, of: [a1, a1-again]}}
  - {{id: across, kind: checklist, of: [a1, b2, c3-and-d4]}}
  - {{id: d4-slow, value: m4.x, expect: "< 0.1 s"}}
  - {{id: across-failing, kind: checklist, of: [b2, d4-slow]}}
"""

#: measurement -> gates that read it (directly or, for a checklist, through its evidence)
READERS = {"m1": {"a1", "a1-again"}, "m2": {"b2", "b2-again"},
           "m3": {"c3", "c3-and-d4"}, "m4": {"d4", "c3-and-d4", "d4-slow"}}


def _run(p: pytest.Pytester, specs: dict[str, str], *args: str) -> tuple[pytest.RunResult, list[list[str]], dict]:
    for name, spec_id in specs.items():
        p.path.joinpath(name).write_text(textwrap.dedent(WHERE.format(id=spec_id)))
    res = p.runpytest_subprocess("--goni-spec", "*.yaml", "--goni-report", "out", "-v", "-p", "no:randomly", *args)
    where = [line.split() for line in (p.path / "where.log").read_text().splitlines()]
    return res, where, json.loads((p.path / "out" / "results.json").read_text())


def _gate_workers(out: str) -> dict[str, str]:
    """gate node id -> worker, from xdist's verbose lines '[gw1] [ 50%] PASSED w.yaml::a1'."""
    return {m.group(2): m.group(1) for m in re.finditer(r"\[(gw\d+)\][^\n]*?(?:PASSED|FAILED|SKIPPED) (\S+)", out)}


def _statuses(data: dict, spec_id: str) -> dict[str, str]:
    spec = next(s for s in data["specs"] if s["id"] == spec_id)
    return {g["gate"]: g["status"] for g in spec["gates"]}


def _check_once_and_colocated(where: list[list[str]], data: dict, out: str, spec_file: str, spec_id: str) -> dict:
    ran = {w[0]: w[1] for w in where if w[0].startswith(spec_id + ".")}
    names = [w[0] for w in where if w[0].startswith(spec_id + ".")]
    assert sorted(names) == sorted(f"{spec_id}.m{i}" for i in range(1, 5)), names  # each exactly once
    spec = next(s for s in data["specs"] if s["id"] == spec_id)
    assert {m: r["worker"] for m, r in spec["measurements"].items()} == \
        {k.split(".", 1)[1]: v for k, v in ran.items()}  # results.json says where each ran
    gates = _gate_workers(out)
    for m, readers in READERS.items():
        for gate in readers:
            assert gates[f"{spec_file}::{gate}"] == ran[f"{spec_id}.{m}"], (gate, m)
    return ran


def test_measurements_spread_over_two_workers_each_once(goni: pytest.Pytester) -> None:
    res, where, data = _run(goni, {"w.yaml": "w"}, "-n", "2", "--goni-dist", "measurement")
    res.assert_outcomes(passed=9, failed=2)
    ran = _check_once_and_colocated(where, data, res.stdout.str(), "w.yaml", "w")
    assert set(ran.values()) == {"gw0", "gw1"}  # the work was spread, not kept on one worker
    assert all(w[2] == "cpu" for w in where)
    # checklists read evidence judged on other workers: right verdicts, no measurement run twice
    verdicts = _statuses(data, "w")
    assert verdicts["across"] == "PASS" and verdicts["all-of-a"] == "PASS"
    assert verdicts["d4-slow"] == "FAIL" and verdicts["across-failing"] == "FAIL"


def test_n_auto_also_runs_each_measurement_once(goni: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")
    res, where, data = _run(goni, {"w.yaml": "w"}, "-n", "auto", "--goni-dist", "measurement")
    res.assert_outcomes(passed=9, failed=2)
    ran = _check_once_and_colocated(where, data, res.stdout.str(), "w.yaml", "w")
    assert len(set(ran.values())) >= 2


def test_on_cpu_a_spec_stays_on_one_worker_by_default(goni: pytest.Pytester) -> None:
    """Without a GPU per worker, measurements timed side by side would disturb each other, so the
    unit is the spec: two specs go to two workers, each spec's measurements one after another."""
    res, where, data = _run(goni, {"w.yaml": "w", "v.yaml": "v"}, "-n", "2")
    res.assert_outcomes(passed=18, failed=4)
    out = res.stdout.str()
    ran_w = _check_once_and_colocated(where, data, out, "w.yaml", "w")
    ran_v = _check_once_and_colocated(where, data, out, "v.yaml", "v")
    assert len(set(ran_w.values())) == 1 and len(set(ran_v.values())) == 1
    assert set(ran_w.values()) != set(ran_v.values())


def test_load_and_worksteal_keep_a_measurement_once(goni: pytest.Pytester) -> None:
    res, where, data = _run(goni, {"w.yaml": "w"}, "-n", "2", "--dist", "worksteal", "--goni-dist", "measurement")
    res.assert_outcomes(passed=9, failed=2)
    _check_once_and_colocated(where, data, res.stdout.str(), "w.yaml", "w")


def test_units_follow_shared_measurements_and_checklists() -> None:
    from types import SimpleNamespace as G

    from pytest_goni.scheduling import share_groups, spreads_measurements

    gates = [G(id="a", measurements={"m1"}, of=[]), G(id="b", measurements={"m2"}, of=[]),
             G(id="c", measurements={"m1", "m3"}, of=[]), G(id="d", measurements={"m3"}, of=[]),
             G(id="all", measurements=set(), of=["b", "d"])]
    units = share_groups(gates, "s.yaml")
    assert units["a"] == units["c"] == units["d"] == units["all"] == units["b"] == "s.yaml::m1"
    assert share_groups(gates[:2], "s.yaml") == {"a": "s.yaml::m1", "b": "s.yaml::m2"}
    split = share_groups(gates, "s.yaml", split_checklists=True)  # checklists read verdicts from other workers
    assert split == {"a": "s.yaml::m1", "c": "s.yaml::m1", "d": "s.yaml::m1", "b": "s.yaml::m2",
                     "all": "s.yaml::checklist:all"}
    assert spreads_measurements("auto", 2, 2) and not spreads_measurements("auto", 4, 2)
    assert not spreads_measurements("auto", 2, 0) and spreads_measurements("measurement", 2, 0)


# ---- the timeline: where an xdist run's wall time went ----------------------------------------------
ORDER = ("process_start", "configured", "kinds_loaded", "session_start", "collected", "first_gate",
         "last_gate_end", "session_finish")


def _in_order(events: dict) -> None:
    times = [events[e] for e in ORDER]
    assert times == sorted(times), events


def test_timeline_says_when_each_worker_did_what(goni: pytest.Pytester) -> None:
    """results.json's timeline: each process's events in order, every unit sent to the worker where
    its measurement really ran (where.log), each measurement inside its worker's gates, all of it
    schema-valid; a gate's unit ran after it was sent."""
    jsonschema = pytest.importorskip("jsonschema")
    from importlib import resources

    res, where, data = _run(goni, {"w.yaml": "w"}, "-n", "2", "--goni-dist", "measurement")
    res.assert_outcomes(passed=9, failed=2)
    schema = json.loads(resources.files("pytest_goni.schema").joinpath("results.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    tl = data["timeline"]
    procs = tl["processes"]
    assert set(procs) == {"controller", "gw0", "gw1"} and tl["process_start_from"] in ("/proc", "module import")
    for w in ("gw0", "gw1"):
        _in_order(procs[w])
        assert procs["controller"]["session_start"] <= procs[w]["process_start"]  # xdist starts workers then
        assert procs[w]["session_finish"] <= procs["controller"]["session_finish"]
    assert procs["controller"]["process_start"] == 0.0 <= procs["controller"]["session_start"]
    ran = {w[0].split(".", 1)[1]: w[1] for w in where}
    units = {u["unit"].rpartition("::")[2]: u for u in tl["units"]}
    unit_of = {"m1": "m1", "m2": "m2", "m3": "m3", "m4": "m3"}  # c3-and-d4 reads m3 and m4: one unit
    assert {m: units[unit_of[m]]["worker"] for m in ran} == ran  # each measurement's unit went where it ran
    assert sum(u["gates"] for u in tl["units"]) == 11 and len(tl["gates"]) == 11
    for u in tl["units"]:
        assert u["sent"] <= u["start"] <= u["end"], u
    for m in tl["measurements"]:
        w = procs[m["worker"]]
        assert w["first_gate"] <= m["start"] < m["end"] <= w["last_gate_end"], (m, w)
        assert m["end"] - m["start"] >= 0.39  # the kind sleeps 0.4 s


def test_timeline_of_a_serial_run(goni: pytest.Pytester) -> None:
    res, where, data = _run(goni, {"w.yaml": "w"}, "-n", "0")
    res.assert_outcomes(passed=9, failed=2)
    tl = data["timeline"]
    assert list(tl["processes"]) == ["main"]
    _in_order(tl["processes"]["main"])
    # the units the gates would form under xdist, in the order they ran
    assert {u["unit"].rpartition("::")[2] for u in tl["units"]} >= {"m1", "m2", "m3"}
    assert all(u["worker"] == "main" and u["start"] <= u["end"] for u in tl["units"])
    assert [m["measurement"] for m in tl["measurements"]] == [w[0] for w in where]  # in the order they ran


def test_workers_with_another_rootdir_still_get_whole_units(goni: pytest.Pytester) -> None:
    """pytest derives the rootdir from option values naming existing folders: a --goni-report folder
    outside the project, created by the controller, gives the workers another rootdir (and other node
    ids) than the controller's. Units must still be whole: each measurement once, its gates with it."""
    goni.path.joinpath("w.yaml").write_text(textwrap.dedent(WHERE.format(id="w")))
    out = goni.path.parent / f"{goni.path.name}-elsewhere" / "out"  # not there when pytest starts
    res = goni.runpytest_subprocess("--goni-spec", "w.yaml", "--goni-report", str(out), "-v", "-p", "no:randomly",
                                    "-n", "2", "--goni-dist", "measurement")
    res.assert_outcomes(passed=9, failed=2)
    where = [line.split() for line in (goni.path / "where.log").read_text().splitlines()]
    data = json.loads((out / "results.json").read_text())
    gates = {k.rpartition("::")[2]: v for k, v in _gate_workers(res.stdout.str()).items()}
    assert sorted(w[0] for w in where) == [f"w.m{i}" for i in range(1, 5)]  # each exactly once
    ran = {w[0].split(".", 1)[1]: w[1] for w in where}
    for m, readers in READERS.items():
        assert {gates[g] for g in readers} == {ran[m]}, (m, readers)
    assert {u["unit"].rpartition("::")[2] for u in data["timeline"]["units"]} >= {"m1", "m2", "m3"}


ONE_LONG = """\
goni: 1
id: s
measurements:
  long: {kind: whereami, seconds: 2.0}
  a: {kind: whereami, seconds: 0.3}
  b: {kind: whereami, seconds: 0.3}
  c: {kind: whereami, seconds: 0.3}
gates:
  - {id: long-1, value: long.x, expect: "< 1 s"}
  - {id: long-2, value: long.x, expect: "> 0.1 s"}
  - {id: a-1, value: a.x, expect: "< 1 s"}
  - {id: a-2, value: a.x, expect: "> 0.1 s"}
  - {id: b-1, value: b.x, expect: "< 1 s"}
  - {id: b-2, value: b.x, expect: "> 0.1 s"}
  - {id: c-1, value: c.x, expect: "< 1 s"}
  - {id: c-2, value: c.x, expect: "> 0.1 s"}
"""


def test_a_worker_gets_its_next_unit_when_it_is_free(goni: pytest.Pytester) -> None:
    """Last run's durations say long takes 2 s and a, b, c 0.3 s each: the worker measuring long
    must not be handed a second unit at the start (xdist's LoadScope sends one more while two gates
    are pending), so the other worker runs a, b and c, one after another, each when it is free."""
    goni.path.joinpath("s.yaml").write_text(textwrap.dedent(ONE_LONG))
    cache = goni.path / ".pytest_cache" / "v" / "goni" / "durations"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"s.yaml::long": 2.0, "s.yaml::a": 0.3, "s.yaml::b": 0.3, "s.yaml::c": 0.3}))
    res = goni.runpytest_subprocess("--goni-spec", "s.yaml", "--goni-report", "out", "-p", "no:randomly",
                                    "-n", "2", "--goni-dist", "measurement")
    res.assert_outcomes(passed=8)
    units = json.loads((goni.path / "out" / "results.json").read_text())["timeline"]["units"]
    assert units[0]["unit"] == "s.yaml::long" and units[0]["expected_s"] == 2.0  # longest first, by the cache
    by_worker: dict[str, list[str]] = {}
    for u in units:
        by_worker.setdefault(u["worker"], []).append(u["unit"].rpartition("::")[2])
    assert sorted(sorted(us) for us in by_worker.values()) == [["a", "b", "c"], ["long"]], by_worker
    other = next(w for w, us in by_worker.items() if "long" not in us)
    sent = [u["sent"] for u in units if u["worker"] == other]
    starts = [u["start"] for u in units if u["worker"] == other]
    assert sent[1] >= starts[0] and sent[2] >= starts[1]  # each sent once the previous one had begun
