"""Collection nodes: a spec file is a :class:`SpecFile`, each of its gates a :class:`GateItem`.

An item asks the session for its spec's gate judge, so a measurement runs once per process and
a gate's result is judged once, whoever asks (the item, a checklist, the report hook).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .gate_result import GateResult
from .gates import GateFailed, skip_reason
from .session import GoniSession
from .spec import GateSpec, Spec, SpecError
from .status import SKIP


def _session(config: pytest.Config) -> GoniSession:
    session = GoniSession.of(config)
    assert session is not None, "spec files and gate items exist only when specs were given"
    return session


class SpecFile(pytest.File):
    """One YAML spec; its gates are the items. A spec error is this collector's one-line error."""

    def collect(self):  # type: ignore[no-untyped-def]
        spec = _session(self.config).load(self.path)
        for gate in spec.gates:
            yield GateItem.from_parent(self, name=gate.id, spec=spec, gate=gate)

    def repr_failure(self, excinfo, style=None):  # type: ignore[no-untyped-def]
        if isinstance(excinfo.value, SpecError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class GateItem(pytest.Item):
    """One gate of a spec: runs (or reuses) its measurements, then judges them."""

    def __init__(self, *, spec: Spec, gate: GateSpec, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec, self.gate = spec, gate
        self.goni_result: GateResult | None = None
        self.goni_measurements: dict[str, Any] = {}
        self.add_marker("goni")
        self.add_marker(spec.id)
        if gate.severity != "normal":
            self.add_marker(gate.severity)
        if gate.requires == "cuda" or any(spec.measurements[m].requires_cuda for m in gate.measurements):
            self.add_marker("gpu")

    def setup(self) -> None:
        gates = _session(self.config).gates(self.spec)
        runner = gates.runner
        reason = skip_reason(self.spec, self.gate, runner.device, runner.baseline is not None or runner.saving)
        if reason:
            self.goni_result = gates.skipped(self.gate, reason)
            raise pytest.skip.Exception(reason, _use_item_location=True)  # reported at the gate's spec line

    def runtest(self) -> None:
        gates = _session(self.config).gates(self.spec)
        r = self.goni_result = gates.judge(self.gate)
        self.goni_measurements = gates.runner.ship(self.spec, gates.measurements_behind(self.gate))
        for key in ("status", "display", "expect", "margin", "reason"):
            if getattr(r, key) not in (None, ""):
                self.user_properties.append((f"goni_{key}", getattr(r, key)))
        if r.value is not None:
            self.user_properties.append(("goni_value", r.value))
        if r.status == SKIP:  # measured for a --goni-save, with nothing to compare with yet
            raise pytest.skip.Exception(r.reason, _use_item_location=True)
        if not r.passed:
            if self.gate.severity == "info":  # informational: shown in the report, never fails the run
                pytest.xfail(f"info gate {r.status}: {r.reason}")
            raise GateFailed(r)

    def repr_failure(self, excinfo, style=None):  # type: ignore[no-untyped-def]
        if isinstance(excinfo.value, GateFailed):
            from .report.terminal import failure_text

            return failure_text(excinfo.value.result) + self._measurement_tracebacks()
        return super().repr_failure(excinfo)

    def _measurement_tracebacks(self) -> str:
        """Under -v: the own frames of each failed measurement behind this gate (its kind's code)."""
        if self.config.getoption("verbose") <= 0:
            return ""
        gates = _session(self.config).gates(self.spec)
        text = ""
        for name in sorted(gates.measurements_behind(self.gate)):
            for res in gates.runner.runs_of(self.spec, name):
                if res.failure is not None and res.failure.traceback:
                    part = f"[{res.part['label']}]" if res.part else ""
                    text += f"\n  traceback of measurement {name + part!r} ({res.kind}), its own frames:\n"
                    text += "\n".join("    " + line for line in res.failure.traceback.rstrip().splitlines())
        return text

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.gate.mark.line - 1, f"{self.spec.id}::{self.gate.id}"

    def attach_result(self, report: pytest.TestReport, when: str) -> None:
        """Put this gate's result on its test report (setup skip or call), for the controller."""
        if report.skipped and self.goni_result is None:  # skipped by a marker or another plugin
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.goni_result = _session(self.config).gates(self.spec).skipped(self.gate,
                                                                             reason.removeprefix("Skipped: "))
        if self.goni_result is not None and (when == "call" or (when == "setup" and report.skipped)):
            report.goni = self.goni_result.to_dict()
            report.goni_measurements = self.goni_measurements
            report.goni_spec = spec_header(self.spec)


def spec_header(spec: Spec) -> dict[str, Any]:
    return {"id": spec.id, "title": spec.title, "source": spec.source, "file": spec.display_path,
            "profile": spec.profile, "profile_vars": spec.profile_vars, "config_hash": spec.config_hash}
