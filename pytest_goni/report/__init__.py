"""Reports: gathering gate results (also from xdist workers), terminal tables, results JSON."""

from __future__ import annotations

from typing import Any

import pytest

from ..gate_result import GateResult


class ResultCollector:
    """Gathers gate results from test reports, so the controller sees every worker's results."""

    def __init__(self, state: Any):
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        goni = getattr(report, "goni", None)
        if goni is None:
            return
        spec = report.goni_spec
        self.state.specs.setdefault(spec["id"], spec)
        self.state.results.append(GateResult.from_dict(goni))
        self.state.measurements.setdefault(spec["id"], {}).update(report.goni_measurements or {})

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = str(report.longrepr)
            self.state.spec_errors.append((report.nodeid, text))
