"""One gate's result, the one record the terminal report, results.json, JUnit and baselines read.

Built from the judge's :class:`~pytest_goni.judge.Verdict` with everything in it (the test
statistics of a significance gate in ``details`` too), or from a skip / measurement error.
Under xdist it crosses from worker to controller as :meth:`GateResult.to_dict` and comes back
through :meth:`GateResult.from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .jsonsafe import json_safe
from .judge import Verdict
from .status import PASS


@dataclass
class GateResult:
    """Where the gate is, what it expected, what was measured and the verdict. Values in base units."""

    spec: str
    gate: str
    file: str
    line: int
    status: str                                   # one of status.STATUSES
    severity: str = "normal"
    why: str = ""
    kind: str = "threshold"
    value: float | None = None
    display: str = ""                              # "12.3 ms [11.9, 12.8]"
    expect: str = ""                               # "<= 100 ms"
    margin: float | None = None
    interval: list[float] | None = None
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)   # per metric path (or evidence gate)
    details: dict[str, Any] = field(default_factory=dict)    # test statistics: t, p, threshold, ...
    yaml: str = ""                                 # the gate's YAML, for failure reports

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def with_verdict(self, verdict: Verdict) -> GateResult:
        """This gate's record carrying the judge's verdict, details included."""
        return dataclasses.replace(
            self, status=verdict.status, value=verdict.value, display=verdict.display,
            expect=verdict.expect, margin=verdict.margin,
            interval=list(verdict.interval) if verdict.interval is not None else None,
            reason=verdict.reason, evidence=verdict.evidence, details=json_safe(verdict.details))

    def with_status(self, status: str, reason: str, **changes: Any) -> GateResult:
        return dataclasses.replace(self, status=status, reason=reason, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain fields (floats as they are): what a test report carries from an xdist worker."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        """Standard JSON (non-finite floats as text), as written into results.json."""
        return json_safe(self.to_dict())
