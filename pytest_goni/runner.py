"""Runs measurements lazily, once per session (per xdist worker), and judges gates on them.

A measurement that raises, runs out of memory, returns NaN or passes its timeout becomes a
:class:`MeasurementFailure`; every gate reading it fails with that reason and the session goes on.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import isolation, progress
from .context import MeasureContext, MeasurementTimeout
from .contract import ContractError, check_metrics
from .device import release, worker_device
from .parts import merge_records, values_needed
from .plots import GateLine
from .registry import REGISTRIES
from .scheduling import marker_path
from .spec import GateSpec, Spec
from .stats import Metric
from .yaml_positions import printable


@dataclass
class MeasurementFailure:
    reason: str
    traceback: str = ""
    missing: bool = False  # an optional dependency is not installed: its gates SKIP
    location: str = ""     # file:line in the kind's code where it failed


@dataclass
class MeasurementResult:
    name: str
    kind: str
    params: dict[str, Any]
    device: str
    seconds: float
    metrics: dict[str, Metric] = field(default_factory=dict)
    failure: MeasurementFailure | None = None
    log: list[str] = field(default_factory=list)
    memory: dict[str, int] = field(default_factory=dict)  # RSS before / after / peak / growth, bytes
    isolation: str = ""
    worker: str = field(default_factory=lambda: os.environ.get("PYTEST_XDIST_WORKER", "main"))
    artifacts: list[Path] = field(default_factory=list)
    started_at: float = 0.0  # epoch seconds (time.time()) when it began: the run's timeline
    part: dict[str, Any] | None = None  # a part of a split measurement: {axis, values, label} (parts.py)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "params": self.params, "device": self.device, "worker": self.worker,
            "seconds": self.seconds, "started_at": self.started_at,
            "metrics": {k: m.to_json() for k, m in self.metrics.items()},
            "error": None if self.failure is None else {"reason": self.failure.reason,
                                                        "traceback": self.failure.traceback,
                                                        "location": self.failure.location,
                                                        "missing": self.failure.missing},
            "memory": self.memory, "isolation": self.isolation,
            "log": self.log, "artifacts": [str(p) for p in self.artifacts if Path(p).exists()],
            **({"part": self.part} if self.part is not None else {}),
        }


@contextmanager
def deadline_alarm(seconds: float) -> Iterator[None]:
    """Raise :class:`MeasurementTimeout` in the main thread after ``seconds`` (SIGALRM timer).

    Off the main thread, or without SIGALRM, the measurement relies on ``ctx.check_deadline()``.
    A timer already running (pytest-timeout's signal method) is kept: when it would fire first it
    is left alone, otherwise it is set again, less the time taken, when the measurement ends.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds == float("inf"):
        yield
        return
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    if 0 < outer_left <= seconds:
        yield  # the outer timer fires first; ctx.check_deadline() still watches this deadline
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise MeasurementTimeout(f"timed out after {seconds:g} s")

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left > 0:  # give the outer timer back what it had left
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 1e-3), outer_interval)


class Runner:
    """Measurement cache for one process: each measurement of a spec runs once."""

    def __init__(self, artifact_dir: Path | None = None, baseline: Any = None):
        self.device = worker_device()
        self.baseline = baseline  # baselines.Baseline given by --goni-compare, or None
        self.saving = False       # --goni-save: baseline gates are measured even with nothing to compare
        self.artifact_dir = artifact_dir or Path(tempfile.mkdtemp(prefix="goni-artifacts-"))
        self.results: dict[tuple[str, str], MeasurementResult] = {}
        self.parts: dict[tuple[str, str], list[MeasurementResult]] = {}  # runs of parts, per measurement
        self.shipped: set[tuple[str, str]] = set()
        self.shipped_parts: set[tuple[str, str, str]] = set()
        # Run a split measurement's parts as gates need them (an xdist worker whose work units are
        # parts, see scheduling.py), instead of the whole measurement at its first gate.
        self.split = False
        self.isolation = "auto"   # --goni-isolation: auto | fork | none (see isolation.py)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.set_device(int(self.device.split(":")[1]))

    def measure(self, spec: Spec, name: str) -> MeasurementResult:
        key = (str(spec.path), name)
        if key not in self.results:
            self.results[key] = self._run(spec, name)
        return self.results[key]

    def measure_values(self, spec: Spec, name: str, values: list[Any]) -> list[MeasurementResult]:
        """The runs of measurement ``name`` that cover ``values`` of its split axis: the whole
        measurement when it ran here, else its parts; values no part covers yet run now, together,
        as one part (each value is measured once per process)."""
        key = (str(spec.path), name)
        if key in self.results:
            return [self.results[key]]
        runs = self.parts.setdefault(key, [])
        done = {v for r in runs for v in r.part["values"]}
        missing = [v for v in values if v not in done]
        if missing:
            runs.append(self._run(spec, name, missing))
        wanted = set(values)
        return [r for r in runs if wanted & set(r.part["values"])]

    def _run(self, spec: Spec, name: str, values: list[Any] | None = None) -> MeasurementResult:
        mspec = spec.measurements[name]
        kind = REGISTRIES.kinds[mspec.kind]
        split = mspec.split if values is not None else None
        params = split.params(mspec.params, values) if split is not None else dict(mspec.params)
        part = None if split is None else {"axis": split.axis, "values": list(params[split.axis]),
                                           "label": split.label(params[split.axis])}
        shown = name if part is None else f"{name}[{part['label']}]"
        ctx = MeasureContext(
            spec_id=spec.id, measurement=name, device=self.device, profile=spec.profile,
            profile_vars=spec.profile_vars, models=spec.models, spec_path=spec.path,
            artifact_dir=self.artifact_dir, deadline=time.monotonic() + mspec.timeout_s,
            gate_lines=gate_lines(spec, name), part=None if part is None else part["label"],
        )
        result = MeasurementResult(name, mspec.kind, mspec.params, self.device, 0.0, log=ctx.log_lines,
                                   artifacts=ctx.artifacts, part=part)
        declared = {k[len(name) + 1:]: u for k, u in spec.metric_units.items() if k.startswith(name + ".")}
        if split is not None:
            keys = set().union(*(split.keys[v] for v in part["values"]))
            declared = {k: u for k, u in declared.items() if k in keys}

        def work() -> tuple[Any, list[str], list[Path]]:
            with deadline_alarm(mspec.timeout_s):
                metrics = kind.func(ctx, params)
            return metrics, list(ctx.log_lines), list(ctx.artifacts)

        mode = isolation.choose_mode(self.isolation, self.device)
        kind_file = getattr(getattr(kind.func, "__code__", None), "co_filename", None)
        t0 = time.perf_counter()
        result.started_at = time.time()
        progress.started(spec.id, shown, mspec.kind, self.device)
        with self._crash_marker(spec, shown, mode) as previous_crash:
            if previous_crash:
                outcome = isolation.Outcome(error=f"process died: {previous_crash}")
            elif mode == "fork":
                outcome = isolation.run_forked(work, mspec.timeout_s, kind_file)
            else:
                outcome = isolation.run_here(work, kind_file)
        result.memory, result.isolation = outcome.memory, mode
        if outcome.notes:
            result.isolation += f" ({'; '.join(outcome.notes)})"
        if outcome.error is None:
            metrics, log, artifacts = outcome.value
            if mode == "fork":  # the child's log and artifacts, into this process's lists
                result.log[:0] = [line for line in log if line not in result.log]
                result.artifacts.extend(Path(a) for a in artifacts if Path(a) not in result.artifacts)
            try:
                result.metrics = check_metrics(mspec.kind, metrics, declared)
            except ContractError as exc:
                code = getattr(kind.func, "__code__", None)
                outcome.error = str(exc)
                outcome.location = f"{_short(kind_file)}:{code.co_firstlineno} in {code.co_name}" if code else ""
        if outcome.missing:
            result.failure = MeasurementFailure(outcome.missing, missing=True)
        elif outcome.error is not None:
            where = f" at {outcome.location}" if outcome.location else ""
            if outcome.timed_out and not outcome.error.startswith("timeout"):
                outcome.error = f"timeout: {outcome.error}"
            reason = f"{outcome.error} in measurement {shown!r} ({mspec.kind}){where}"
            if outcome.timed_out:
                reason += f" (limit {mspec.timeout_s:g} s)"
            result.failure = MeasurementFailure(printable(reason), printable(outcome.traceback),
                                                location=outcome.location)
        if result.failure is not None and mode != "fork":
            with suppress(Exception):  # a broken CUDA context must not hide the failure
                release(self.device)
        result.seconds = time.perf_counter() - t0
        progress.finished(spec.id, shown, result.seconds, result.failure.reason if result.failure else None)
        return result

    @contextmanager
    def _crash_marker(self, spec: Spec, name: str, mode: str) -> Iterator[str | None]:
        """Under xdist, an in-process measurement leaves a marker while it runs; if its worker dies,
        the replacement worker finds it and fails the measurement's gates instead of re-running it
        (xdist would otherwise replace crashed workers until its restart limit)."""
        run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
        if mode == "fork" or not run_id:
            yield None
            return
        path = marker_path(run_id, f"{spec.path}::{name}")
        if path.exists():
            yield path.read_text() or "a previous worker died running this measurement"
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "?")
        path.write_text(f"worker {worker} died running this measurement (in-process on {self.device})")
        try:
            yield None
        finally:
            path.unlink(missing_ok=True)

    def runs_of(self, spec: Spec, name: str) -> list[MeasurementResult]:
        """Every run of measurement ``name`` in this process: the whole, or the parts that ran."""
        key = (str(spec.path), name)
        return [self.results[key]] if key in self.results else list(self.parts.get(key, []))

    def gate_metrics(self, spec: Spec, gate: GateSpec) -> tuple[dict[str, Metric], list[str]]:
        """All metrics a gate reads, and the failure reasons of the measurements behind it (a
        missing optional dependency comes first, alone: the gate is skipped, not failed)."""
        metrics: dict[str, Metric] = {}
        failures: list[str] = []
        for name in sorted(gate.measurements):
            values = values_needed(spec, gate, name) if self.split else None
            for res in (self.measure(spec, name),) if values is None else self.measure_values(spec, name, values):
                if res.failure and res.failure.missing:
                    return {}, [f"SKIP: measurement {name!r} ({res.kind}) skipped: {res.failure.reason}"]
                if res.failure:
                    failures.append(res.failure.reason)
                metrics.update({f"{name}.{k}": m for k, m in res.metrics.items()})
        return metrics, failures

    def ship(self, spec: Spec, names: set[str]) -> dict[str, Any]:
        """Measurement results not yet sent to the controller (each is sent once per process; the
        parts of a split measurement merged into one record, which the controller merges again
        with the parts other workers ran)."""
        out: dict[str, Any] = {}
        for name in sorted(names):
            key = (str(spec.path), name)
            if key in self.results and key not in self.shipped:
                self.shipped.add(key)
                out[name] = self.results[key].to_json()
            for run in self.parts.get(key, []):
                part_key = key + (run.part["label"],)
                if part_key not in self.shipped_parts:
                    self.shipped_parts.add(part_key)
                    record = run.to_json()
                    out[name] = merge_records(out.get(name, record), record)
        return out


def gate_lines(spec: Spec, name: str) -> list[GateLine]:
    """The gates of ``spec`` whose value is one metric of measurement ``name`` compared with a
    constant (``<``, ``<=``, ``>``, ``>=``): their thresholds in the metric's own unit, for plots."""
    out = []
    for gate in spec.gates:
        compiled = gate.compiled
        expr, expect = getattr(compiled, "expr", None), getattr(compiled, "expect", None)
        if expr is None or expect is None or expect.op not in ("<", "<=", ">", ">="):
            continue
        if expect.threshold is None or expect.ref_expr is not None or expect.ref_is_baseline:
            continue
        paths = expr.paths()
        if len(paths) != 1 or expr.text.strip() not in paths:
            continue
        path = next(iter(paths))
        if not path.startswith(name + "."):
            continue
        scale = compiled.scales.get(path, 1.0) or 1.0
        out.append(GateLine(gate.id, path[len(name) + 1:], expect.op, expect.threshold / scale, expect.text.strip()))
    return out


def _short(path: str | None) -> str:
    return isolation.short_path(path) if path else "?"
