"""Measurements that crash, exit, hang, exhaust memory or break their contract fail exactly the
gates that read them, with the reason; every other gate still runs; results.json is written as
gates finish and says when it is partial (issue 12)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from pytest_goni.scheduling import marker_dir

KINDS = '''
import os, resource, shutil, signal, sys, time
from pytest_goni.stats import Metric


def pytest_goni_register(registries):
    @registries.measurement_kind("fake", schema={"type": "object"},
                                 metrics=lambda p: {k: p.get("unit", "") for k in p.get("values", {})})
    def fake(ctx, params):
        return {k: Metric.of([v] * 5, params.get("unit", "")) for k, v in params["values"].items()}

    @registries.measurement_kind("crash", schema={"type": "object"}, metrics=lambda p: {"x": "s"})
    def crash(ctx, params):
        how = params["how"]
        if how == "abort":
            os.abort()
        if how == "exit":
            os._exit(3)
        if how == "sysexit":
            sys.exit(2)
        if how == "kbd":
            raise KeyboardInterrupt
        if how == "base":
            raise BaseException("odd")
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "memory":  # a real exhaustion, bounded for the test by an address-space limit
            resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, resource.RLIM_INFINITY))
            hog = [bytearray(2**28) for _ in range(64)]
            return {"x": float(len(hog))}
        if how == "stuck":  # ignores its timeout's signal, as a C extension would
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            time.sleep(60)
        if how == "raise":
            raise RuntimeError("device on fire")
        if how == "none":
            return {"x": None}
        if how == "text":
            return {"x": "fast"}
        if how == "bytes":
            return {"x": Metric.scalar(5, "B")}
        if how == "ms":
            return {"x": Metric.scalar(5, "ms")}
        if how == "extra":
            return {"x": 1.0, "y": 2.0}
        if how == "missing":
            return {}
        if how == "grow":
            keep = bytearray(300 * 2**20)
            keep[::4096] = b"x" * len(keep[::4096])
            return {"x": Metric.scalar(0.001, "s", kept=len(keep))}
        if how == "peek":  # what results.json said while this measurement ran
            shutil.copy(ctx.artifact_dir / "results.json", ctx.artifact_dir / "peek.json")
            return {"x": 0.001}
        if how == "sleep":
            time.sleep(60)
        raise ValueError(how)
'''


def spec(spec_id: str, crashes: dict[str, str]) -> str:
    lines = ["goni: 1", f"id: {spec_id}", "measurements:", "  ok: {kind: fake, unit: s, values: {lat: 0.01}}"]
    lines += [f"  {name}: {{kind: crash, how: {how}" + (", timeout: 0.5" if how == "stuck" else "") + "}"
              for name, how in crashes.items()]
    lines += ["gates:", "  - {id: ok-gate, value: ok.lat, expect: '< 1 s'}"]
    lines += [f"  - {{id: {name}-gate, value: {name}.x, expect: '< 1 s'}}" for name in crashes]
    return "\n".join(lines) + "\n"


@pytest.fixture
def crashy(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(KINDS)
    return pytester


def results(p: pytest.Pytester, folder: str = "out") -> dict:
    return json.loads((p.path / folder / "results.json").read_text())


def gates(data: dict) -> dict[str, dict]:
    return {f"{s['id']}::{g['gate']}": g for s in data["specs"] for g in s["gates"]}


DEATHS = {
    "abort": "process died: SIGABRT in measurement 'abort' (crash)",
    "exit": "process died: exit status 3",
    "sysexit": "SystemExit(2) raised",
    "kbd": "KeyboardInterrupt raised",
    "base": "BaseException: odd",
    "kill": "process died: SIGKILL",
    "memory": "out of memory",
    "stuck": "timeout: killed after",
    "raise": "RuntimeError: device on fire in measurement 'raise' (crash) at conftest.py:",
}


def test_every_way_a_measurement_dies_fails_only_its_gates(crashy: pytest.Pytester) -> None:
    crashy.path.joinpath("die.yaml").write_text(spec("die", {k: k for k in DEATHS}))
    res = crashy.runpytest("--goni-spec", "die.yaml", "--goni-report", "out")
    res.assert_outcomes(passed=1, failed=len(DEATHS))
    data = results(crashy)
    assert data["complete"] is True and data["incomplete_reason"] is None
    got = gates(data)
    assert got["die::ok-gate"]["status"] == "PASS"
    for name, reason in DEATHS.items():
        assert got[f"die::{name}-gate"]["status"] == "ERROR", name
        assert reason in got[f"die::{name}-gate"]["reason"], (name, got[f"die::{name}-gate"]["reason"])
    raised = data["specs"][0]["measurements"]["raise"]
    assert raised["isolation"].startswith("fork") and "raise RuntimeError" in raised["error"]["traceback"]
    assert "isolation.py" not in raised["error"]["traceback"]  # the kind's frames, not the plugin's


CONTRACT = {
    "none": "metric 'x' is None",
    "text": "metric 'x' is text 'fast'",
    "bytes": "metric 'x' is in 'B' but the kind declared 's'",
    "extra": "returned undeclared metric 'y'",
    "missing": "did not return 'x'",
}


def test_the_measurement_contract_names_the_key(crashy: pytest.Pytester) -> None:
    crashy.path.joinpath("c.yaml").write_text(spec("c", {**{k: k for k in CONTRACT}, "ms": "ms"}))
    res = crashy.runpytest("--goni-spec", "c.yaml", "--goni-report", "out")
    res.assert_outcomes(passed=2, failed=len(CONTRACT))
    got = gates(results(crashy))
    for name, reason in CONTRACT.items():
        assert got[f"c::{name}-gate"]["status"] == "ERROR" and reason in got[f"c::{name}-gate"]["reason"]
    assert got["c::ms-gate"]["status"] == "PASS" and got["c::ms-gate"]["value"] == pytest.approx(0.005)


def test_the_kinds_traceback_reaches_the_terminal_under_v(crashy: pytest.Pytester) -> None:
    crashy.path.joinpath("r.yaml").write_text(spec("r", {"raise": "raise"}))
    out = crashy.runpytest("--goni-spec", "r.yaml", "-v").stdout.str()
    assert "at conftest.py:" in out and "in crash" in out
    assert "traceback of measurement 'raise' (crash), its own frames" in out
    assert 'raise RuntimeError("device on fire")' in out


def test_abort_beside_healthy_specs_under_xdist(crashy: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    for i in (1, 2):
        crashy.path.joinpath(f"healthy{i}.yaml").write_text(textwrap.dedent(f"""\
            goni: 1
            id: healthy{i}
            measurements:
              m: {{kind: fake, unit: s, values: {{lat: 0.01}}}}
            gates:
              - {{id: pass-gate, value: m.lat, expect: "< 1 s"}}
              - {{id: fail-gate, value: m.lat, expect: "< 1 ms"}}
            """))
    crashy.path.joinpath("aborts.yaml").write_text(spec("aborts", {"bad": "abort"}))
    t0 = time.monotonic()
    res = crashy.runpytest_subprocess("--goni-spec", "*.yaml", "-n", "2", "--goni-report", "out", timeout=240)
    assert time.monotonic() - t0 < 240
    res.assert_outcomes(passed=3, failed=3)
    data = results(crashy)
    assert data["complete"] is True
    statuses = {k: g["status"] for k, g in gates(data).items()}
    assert statuses == {"healthy1::pass-gate": "PASS", "healthy1::fail-gate": "FAIL",
                        "healthy2::pass-gate": "PASS", "healthy2::fail-gate": "FAIL",
                        "aborts::ok-gate": "PASS", "aborts::bad-gate": "ERROR"}
    assert "process died: SIGABRT in measurement 'bad'" in gates(data)["aborts::bad-gate"]["reason"]


def test_in_process_crash_under_xdist_ends_and_fails_its_gates(crashy: pytest.Pytester) -> None:
    """--goni-isolation none (what CUDA workers use): the worker dies, xdist replaces it, and the
    replacement finds the crash marker instead of running the measurement again."""
    pytest.importorskip("xdist")
    text = spec("inproc", {"bad": "abort"}) + "  - {id: bad-gate-2, value: bad.x * 2, expect: '< 1 s'}\n"
    crashy.path.joinpath("inproc.yaml").write_text(text)
    run_id = f"goni-test-{uuid.uuid4().hex}"
    res = crashy.runpytest_subprocess("--goni-spec", "inproc.yaml", "-n", "2", "--goni-isolation", "none",
                                      "--goni-report", "out", "--testrunuid", run_id, timeout=240)
    assert "crashed" in res.stdout.str()
    got = gates(results(crashy))
    assert got["inproc::ok-gate"]["status"] == "PASS"
    assert got["inproc::bad-gate-2"]["status"] == "ERROR"
    assert "died running this measurement" in got["inproc::bad-gate-2"]["reason"]
    assert not marker_dir(run_id).exists(), "the crash marker outlived the run"


def test_results_json_is_written_as_gates_finish(crashy: pytest.Pytester) -> None:
    crashy.path.joinpath("p.yaml").write_text(spec("p", {"peek": "peek"}))
    crashy.runpytest("--goni-spec", "p.yaml", "--goni-report", "out").assert_outcomes(passed=2)
    during = json.loads((crashy.path / "out" / "peek.json").read_text())
    assert during["complete"] is False and "had not finished" in during["incomplete_reason"]
    assert [g["gate"] for g in during["specs"][0]["gates"]] == ["ok-gate"]
    assert results(crashy)["complete"] is True
    assert not list((crashy.path / "out").glob(".*tmp"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_an_interrupted_run_leaves_partial_results_that_say_so(crashy: pytest.Pytester, sig: int) -> None:
    crashy.path.joinpath("s.yaml").write_text(spec("s", {"nap": "sleep"}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:randomly", "--goni-spec", "s.yaml",
                             "--goni-report", "out"], cwd=crashy.path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = crashy.path / "out" / "results.json"
    try:
        deadline = time.monotonic() + 120
        while not (path.exists() and json.loads(path.read_text())["specs"]):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        proc.send_signal(sig)
        proc.wait(timeout=180)
    finally:
        proc.kill()
    data = json.loads(path.read_text())
    assert data["complete"] is False
    assert ("interrupted" if sig == signal.SIGINT else "had not finished") in data["incomplete_reason"], data
    assert gates(data)["s::ok-gate"]["status"] == "PASS"


def test_options_are_checked_before_anything_runs(crashy: pytest.Pytester) -> None:
    crashy.path.joinpath("die.yaml").write_text(spec("die", {"peek": "peek"}))
    crashy.path.joinpath("afile").write_text("")
    res = crashy.runpytest("--goni-spec", "die.yaml", "--goni-report", "afile")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "--goni-report afile:" in res.stderr.str() and "is a file, not a directory" in res.stderr.str()
    res = crashy.runpytest("--goni-spec", "die.yaml", "--goni-profile", "gpuu")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown profile 'gpuu' (did you mean 'gpu'?); known: auto, cpu, gpu " in res.stderr.str()
    assert not Path(crashy.path / "out").exists()


def test_large_memory_growth_is_recorded_and_shown(crashy: pytest.Pytester) -> None:
    crashy.path.joinpath("g.yaml").write_text(spec("g", {"grow": "grow"}))
    res = crashy.runpytest("--goni-spec", "g.yaml", "--goni-report", "out")
    res.assert_outcomes(passed=2)
    mem = results(crashy)["specs"][0]["measurements"]["grow"]["memory"]
    assert mem["rss_growth"] >= 250 * 2**20 and mem["rss_peak"] >= mem["rss_before"] + mem["rss_growth"]
    assert "memory: measurement g.grow (crash) grew resident memory by" in res.stdout.str()
