"""Judging one gate of a spec into a :class:`GateResult`: thresholds and significance through
judge.py, checklists from their evidence gates, skips and measurement failures with reasons."""

from __future__ import annotations

from typing import Any

from .gate_result import GateResult
from .optional import missing_from
from .runner import Runner
from .spec import GateSpec, Spec
from .status import ERROR, FAIL, INVALID, PASS, SKIP


class GateFailed(Exception):
    """Raised by a gate item whose result is not PASS; carries the result."""

    def __init__(self, result: GateResult):
        super().__init__(f"{result.status}: {result.reason}")
        self.result = result


def compares_with_baseline(gate: GateSpec) -> bool:
    expect = getattr(gate.compiled, "expect", None)
    return bool(getattr(expect, "ref_is_baseline", False))


def skip_reason(spec: Spec, gate: GateSpec, device: str, baseline_given: bool = True) -> str | None:
    """Why this gate cannot run here, or None."""
    if not baseline_given and compares_with_baseline(gate):
        return (f"gate {gate.id!r} compares with a stored baseline: run with --goni-compare NAME "
                "(store one with --goni-save NAME)")
    if gate.profiles and spec.profile not in gate.profiles:
        return f"gate {gate.id!r} applies to profiles {', '.join(gate.profiles)}; running profile {spec.profile!r}"
    if not device.startswith("cuda"):
        if gate.requires == "cuda":
            return f"gate {gate.id!r} requires CUDA; no CUDA device here"
        needs = sorted(m for m in gate.measurements if spec.measurements[m].requires_cuda)
        if needs:
            kinds = ", ".join(f"{m} ({spec.measurements[m].kind})" for m in needs)
            return f"measurement {kinds} requires CUDA; no CUDA device here"
    return None


class GateRun:
    """Judges the gates of one spec on one runner, keeping each result so checklists (and the
    report hooks) reuse it. The session holds one per spec."""

    def __init__(self, runner: Runner, spec: Spec, evidence: Any = None):
        self.runner, self.spec = runner, spec
        # evidence(spec, gate id) -> result dict or None: a verdict judged on another xdist worker
        self.evidence = evidence
        self.by_id = {g.id: g for g in spec.gates}
        self.results: dict[str, GateResult] = {}

    def base(self, gate: GateSpec) -> GateResult:
        """The gate's record before a verdict: where it is, what it expects."""
        return GateResult(
            spec=self.spec.id, gate=gate.id, file=self.spec.display_path, line=gate.mark.line, status=SKIP,
            severity=gate.severity, why=gate.raw.get("why", ""), kind=gate.raw.get("kind", "threshold"),
            expect=str(gate.raw.get("expect", "")), yaml=self.spec.gate_yaml(gate))

    def skipped(self, gate: GateSpec, reason: str) -> GateResult:
        return self.base(gate).with_status(SKIP, reason)

    def judge(self, gate: GateSpec) -> GateResult:
        if gate.id not in self.results:
            self.results[gate.id] = self._judge(gate)
        return self.results[gate.id]

    def _judge(self, gate: GateSpec) -> GateResult:
        given = self.runner.baseline is not None or self.runner.saving
        reason = skip_reason(self.spec, gate, self.runner.device, given)
        if reason:
            return self.skipped(gate, reason)
        if gate.is_checklist:
            return self._checklist(gate)
        metrics, failures = self.runner.gate_metrics(self.spec, gate)
        if failures and failures[0].startswith("SKIP: "):
            return self.skipped(gate, failures[0].removeprefix("SKIP: "))
        if failures:
            return self.base(gate).with_status(ERROR, "; ".join(failures))
        absent = sorted({metrics[p].meta["skip"] for p in gate.compiled.paths
                         if p in metrics and metrics[p].meta.get("skip")})
        if absent:  # a measurement that had nothing to measure here (an eval set without a path)
            return self.skipped(gate, "; ".join(absent))
        entry = self.runner.baseline.get((self.spec.id, gate.id)) if self.runner.baseline else None
        try:
            verdict = gate.compiled.judge(metrics, baseline=entry.value if entry else None)
        except ImportError as exc:  # a significance test without scipy, ...
            missing = missing_from(exc)
            if missing is None:
                raise
            return self.skipped(gate, f"gate {gate.id!r} skipped: {missing}")
        out = self.base(gate).with_verdict(verdict)
        if compares_with_baseline(gate) and self.runner.baseline is None:  # measured for --goni-save only
            return out.with_status(SKIP, "no baseline to compare with yet (--goni-compare NAME); "
                                         "this run's value is saved")
        problem = self._baseline_problem(gate, entry, verdict.evidence) if compares_with_baseline(gate) else None
        return out.with_status(INVALID, problem) if problem else out

    def _baseline_problem(self, gate: GateSpec, entry: Any, evidence: dict[str, Any]) -> str | None:
        """Why the stored baseline cannot be compared with this gate's value (or None)."""
        from .baselines import device_name, incompatible, measurement_hash

        base = self.runner.baseline
        if entry is None:
            return (f"baseline {base.name!r} ({base.path}) has no value for gate {self.spec.id}::{gate.id}; "
                    f"save one with --goni-save")
        measured = {m: (self.spec.measurements[m].kind, self.spec.measurements[m].params) for m in gate.measurements}
        units = {p: ev["unit"] for p, ev in evidence.items() if isinstance(ev, dict) and "unit" in ev}
        return incompatible(entry, profile=self.spec.profile, config_hash=measurement_hash(measured), units=units,
                            device=device_name(self.runner.device), name=base.name)

    def _evidence(self, ref: str) -> GateResult:
        """An evidence gate's result: judged on another worker when one did (see scheduling), else here."""
        if ref not in self.results and self.evidence is not None:
            found = self.evidence(self.spec, ref)
            if found is not None:
                base = self.base(self.by_id[ref])
                return GateResult.from_dict({**base.to_dict(), **found})
        return self.judge(self.by_id[ref])

    def _checklist(self, gate: GateSpec) -> GateResult:
        parts = {ref: self._evidence(ref) for ref in gate.of}
        ran = {ref: r for ref, r in parts.items() if r.status != SKIP}
        passed = [ref for ref, r in ran.items() if r.passed]
        lines = [f"{ref}: {r.status}" + (f" ({r.reason})" if not r.passed and r.reason else "")
                 for ref, r in parts.items()]
        out = self.base(gate).with_status(
            SKIP, "; ".join(lines), expect=f"all of {', '.join(gate.of)} pass",
            display=f"{len(passed)}/{len(ran)} evidence gates pass"
                    + (f", {len(parts) - len(ran)} skipped" if len(ran) < len(parts) else ""),
            evidence={ref: {"status": r.status, "display": r.display} for ref, r in parts.items()},
            value=float(len(passed)))
        if not ran:
            return out.with_status(SKIP, "every evidence gate was skipped: " + "; ".join(lines))
        statuses = {r.status for r in ran.values()}
        if statuses == {PASS}:
            return out.with_status(PASS, out.reason)
        return out.with_status(FAIL if statuses & {FAIL, ERROR} else INVALID, out.reason)

    def measurements_behind(self, gate: GateSpec) -> set[str]:
        """Measurements a gate reads, through its checklist evidence too."""
        if not gate.is_checklist:
            return set(gate.measurements)
        out: set[str] = set()
        for ref in gate.of:
            out |= self.measurements_behind(self.by_id[ref])
        return out
