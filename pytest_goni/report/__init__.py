"""Reports: terminal tables, results JSON, HTML and Markdown, all read from :class:`Collected`,
what the controller gathered from every gate's test report (also from xdist workers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..gate_result import GateResult


@dataclass
class Collected:
    """Every gate result of the run, the measurements behind them, the specs' headers, spec errors."""

    results: list[GateResult] = field(default_factory=list)
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)  # spec id -> name -> result json
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)         # spec id -> header
    spec_errors: list[tuple[str, str]] = field(default_factory=list)        # (file, message)
    #: Whether the session ended with every selected gate judged; until it ends, results.json
    #: (rewritten as each gate finishes) says it is partial and why.
    complete: bool = False
    incomplete_reason: str | None = None
    #: when each process did what (timeline.build_timeline), set when the session ends
    timeline: dict[str, Any] | None = None

    def add(self, result: GateResult, spec: dict[str, Any], measurements: dict[str, Any]) -> None:
        self.specs.setdefault(spec["id"], spec)
        self.results.append(result)
        known = self.measurements.setdefault(spec["id"], {})
        for name, record in measurements.items():
            if record.get("part") or record.get("parts"):  # a part of a split measurement (parts.py)
                from ..parts import merge_records

                known[name] = merge_records(known.get(name, record), record)
            else:
                known[name] = record
