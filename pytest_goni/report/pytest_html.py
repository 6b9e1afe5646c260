"""Feeds pytest-html (when it is installed and ``--html`` is used): a value and a threshold
column in its results table, and per gate the chart, the failure text and the plots as extras."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pytest

from ..gate_result import GateResult
from .html import gate_chart
from .terminal import failure_text


class PytestHtmlFeed:
    """Registered as a plugin only when pytest-html is active (its hooks exist then)."""

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, "<th>goni value</th>")
        cells.insert(3, "<th>threshold</th>")

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        goni = getattr(report, "goni", None) or {}
        cells.insert(2, f"<td>{html.escape(goni.get('display') or '')}</td>")
        cells.insert(3, f"<td>{html.escape(goni.get('expect') or '')}</td>")

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
        report = yield
        goni = getattr(report, "goni", None)
        if goni is None:
            return report
        from pytest_html import extras

        out = list(getattr(report, "extras", []))
        chart = gate_chart(goni)
        if chart:
            out.append(extras.html(chart))
        out.append(extras.text(failure_text(GateResult.from_dict(goni)), name=f"gate {goni['gate']}"))
        for meas in (getattr(report, "goni_measurements", None) or {}).values():
            for art in meas.get("artifacts", []):
                p = Path(art)
                if p.suffix == ".png" and p.is_file():
                    out.append(extras.png(base64.b64encode(p.read_bytes()).decode(), name=p.name))
        report.extras = out
        return report
