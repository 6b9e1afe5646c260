"""The terminal report: a rich table per spec, a panel per failed gate, and --goni-list."""

from __future__ import annotations

import io
import re
from typing import Any

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..gate_result import GateResult
from ..spec import GateSpec, Spec
from ..status import ERROR, FAIL, INVALID, PASS, SKIP, STATUSES
from . import Collected
from .reading import readable

STYLE = {PASS: "bold green", FAIL: "bold red", INVALID: "bold yellow", ERROR: "bold red", SKIP: "dim"}


def _console(tr: Any) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    tw = getattr(tr, "_tw", None)
    width = getattr(tw, "fullwidth", 80) or 80  # the terminal's own width
    markup = bool(getattr(tw, "hasmarkup", False))
    return Console(file=buf, width=width, force_terminal=markup, no_color=not markup,
                   color_system="standard" if markup else None, highlight=False), buf


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _margin(m: float | None) -> str:
    return "" if m is None else f"{m:+.1%}"


#: A cell shortened to fit ends with this.
ELLIPSIS = "…"


def _short_value(display: str) -> str:
    """``2.22 [2.216, 2.223]`` -> ``2.22``, ``4/4 evidence gates pass`` -> ``4/4 pass``: what a value
    loses first in a narrow terminal (the interval is in the failure text and the HTML report)."""
    return re.sub(r"^(\d+/\d+) evidence gates pass$", r"\1 pass", re.sub(r"\s*\[[^\]]*\]$", "", display))


def _short_expect(expect: str) -> str:
    """``all of a, b, c pass`` -> ``all 3 pass``: a checklist's evidence list, counted instead."""
    m = re.fullmatch(r"all of (.+) pass", expect)
    return f"all {len(m.group(1).split(', '))} pass" if m else expect


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(n - 1, 0)] + ELLIPSIS


def _overhead(columns: int) -> int:
    """What the table adds around its cells (rich's SIMPLE_HEAVY box): a space of padding on each
    side of every column, a divider between columns and an edge on each side."""
    return 3 * columns + 1


Row = tuple[str, str, str, str, str]


def fit_cells(rows: list[Row], width: int) -> tuple[list[Row], bool]:
    """Rows ``(gate, value, expect, margin, verdict)`` made to fit ``width`` columns, one line each.

    The gate id and the verdict are never cut. What gives way, in order: a checklist's list of
    evidence gates (counted instead); the interval of a value too long for the room left (kept in
    the failure text and the HTML report); then value and expect are cut with an ellipsis, expect
    first, down to 8 characters each; then the margin column goes; then (a very narrow terminal)
    value and expect go under the gate id, on a line of their own. Returns the rows and whether the
    margin column is kept.
    """
    def widest(rs: list[Row], i: int, head: str) -> int:
        return max([len(head)] + [len(r[i]) for r in rs])

    def room(rs: list[Row], margin: bool) -> int:
        """Columns left for the value and expect cells."""
        fixed = widest(rs, 0, "gate") + widest(rs, 4, "verdict") + (widest(rs, 3, "margin") if margin else 0)
        return width - fixed - _overhead(5 if margin else 4)

    def fits(rs: list[Row], margin: bool) -> bool:
        return widest(rs, 1, _value_head(rs)) + widest(rs, 2, "expect") <= room(rs, margin)

    if fits(rows, True):
        return rows, True
    rows = [(g, v, _short_expect(e), m, s) for g, v, e, m, s in rows]
    for margin in (True, False):
        space = room(rows, margin)
        v_room = space - widest(rows, 2, "expect")
        shorter = [(g, v if len(v) <= v_room else _short_value(v), e, m, s) for g, v, e, m, s in rows]
        if fits(shorter, margin):
            return shorter, margin
        v_w, e_w = widest(shorter, 1, _value_head(shorter)), widest(shorter, 2, "expect")
        e_cap = max(8, space - v_w)                # expect gives way first
        v_cap = max(8, space - min(e_w, e_cap))
        if min(v_w, v_cap) + min(e_w, e_cap) <= space:
            return [(g, _cut(v, v_cap), _cut(e, e_cap), m, s) for g, v, e, m, s in shorter], margin
    return rows, False  # no room beside the gate ids: spec_table puts value and expect under each


def _value_head(rows: list[tuple[str, ...]]) -> str:
    return "value [interval]" if any("[" in r[1] for r in rows) else "value"


def spec_table(results: list[GateResult], width: int = 200) -> Table:
    """The gates of one spec, one line each, fitted to ``width`` columns (see :func:`fit_cells`)."""
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    caption = "  ".join(f"{n} {s}" for s, n in counts.items() if n)
    ordered = sorted(results, key=lambda r: r.line)
    cells = [(r.gate + (" (red-line)" if r.severity == "red-line" else ""),
              r.display or ("—" if r.status in (ERROR, SKIP) else ""), r.expect, _margin(r.margin), r.status)
             for r in ordered]
    fitted, with_margin = fit_cells(cells, width)
    table = Table(caption=caption, box=box.SIMPLE_HEAVY, expand=False)
    gate_w = max([4] + [len(c[0]) for c in fitted])
    if gate_w + 7 + _overhead(4) + 16 > width:  # stacked: "value  expect" under each gate id
        table.add_column("gate: value  expect", no_wrap=True, min_width=gate_w, overflow="ellipsis")
        table.add_column("verdict", no_wrap=True, min_width=7)
        for gate, value, expect, _, status in fitted:
            table.add_row(Text(gate) + Text(f"\n  {value}  {expect}", style="dim"), Text(status, style=STYLE[status]))
        return table
    # the gate id and the verdict keep their whole width, whatever the terminal's
    table.add_column("gate", no_wrap=True, min_width=gate_w)
    table.add_column(_value_head(fitted), no_wrap=True, overflow="ellipsis")
    table.add_column("expect", no_wrap=True, overflow="ellipsis")
    if with_margin:
        table.add_column("margin", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True, min_width=7)
    for gate, value, expect, margin, status in fitted:
        row = [gate, value, expect] + ([margin] if with_margin else []) + [Text(status, style=STYLE[status])]
        table.add_row(*row)
    return table


def failure_text(r: GateResult) -> str:
    """What a failed gate says: what, where, by how much, and why (plain text, for FAILURES)."""
    lines = [f"{r.status}: gate {r.spec}::{r.gate} at {r.file}:{r.line}"
             + (f"  [severity {r.severity}]" if r.severity != "normal" else "")]
    if r.display:
        lines.append(f"  measured  {r.display}")
    lines.append(f"  expected  {r.expect}")
    if r.margin is not None:
        lines.append(f"  margin    {_margin(r.margin)}")
    if r.reason:
        lines.append(f"  reason    {r.reason}")
    if r.why:
        lines.append(f"  why       {r.why}")
    for path, ev in r.evidence.items():
        if isinstance(ev, dict) and "summary" in ev:
            s = ev["summary"]
            unit = ev.get("unit", "")
            lines.append(f"  evidence  {path}: {ev.get('display') or readable(ev.get('value'), unit)} "
                         f"(n={int(s.get('count', 0))}, median {readable(s.get('median'), unit)}, "
                         f"p90 {readable(s.get('p90'), unit)}, iqr {readable(s.get('iqr'), unit)})")
    if r.yaml:
        lines.append("  gate:")
        lines.extend("    " + y for y in r.yaml.splitlines())
    return "\n".join(lines)


def measurement_reports(measurements: dict[str, Any]) -> list[tuple[str, str]]:
    """Text a measurement attaches for people (``meta["report"]`` on one of its metrics: the V5
    comparison matrix), in measurement order."""
    out = []
    for name, res in measurements.items():
        for metric in (res.get("metrics") or {}).values():
            text = (metric.get("meta") or {}).get("report")
            if text:
                out.append((name, str(text)))
                break
    return out


def print_summary(tr: Any, run: Collected) -> None:
    """One table per spec (controller only, also under xdist), then a line about spec errors."""
    if not run.results and not run.spec_errors:
        return
    console, buf = _console(tr)
    console.rule("[bold]pytest-goni gates")
    by_spec: dict[str, list[GateResult]] = {}
    for r in run.results:
        by_spec.setdefault(r.spec, []).append(r)
    for spec_id, results in by_spec.items():
        spec = run.specs[spec_id]
        console.print(Text.assemble((spec_id, "bold"), f" — {spec.get('title', '')}"))
        console.print(Text(f"{spec['file']}  profile {spec['profile']}  config {spec['config_hash']}"
                           + (f"  source {_short(spec['source'])}" if spec.get("source") else ""), style="dim"))
        console.print(spec_table(results, console.width))
        for name, text in measurement_reports(run.measurements.get(spec_id, {})):
            console.print(Panel(Text(text), title=f"{spec_id}: {name}", title_align="left", border_style="cyan"))
    # A failed gate's text is pytest's own FAILURES entry (once per gate, and --tb=no hides it); a
    # spec error is in pytest's ERRORS section: here only a line pointing there.
    if run.spec_errors:
        console.print(Text(f"{len(run.spec_errors)} spec(s) with errors, not run: "
                           + ", ".join(file for file, _ in run.spec_errors) + " (see ERRORS above)", style="red"))
    for line in memory_lines(run.measurements):
        console.print(Text(line, style="yellow"))
    tr.write(buf.getvalue())


#: Resident-memory growth of one measurement worth a line in the summary.
LARGE_RSS_GROWTH = 256 * 2**20


def _forked(measurement: dict[str, Any]) -> bool:
    return str(measurement.get("isolation", "")).startswith("fork")


def memory_lines(measurements: dict[str, dict[str, Any]], large: int = LARGE_RSS_GROWTH) -> list[str]:
    """One line per measurement whose process grew by ``large`` bytes or more while it ran."""
    from ..units import BYTES, format_quantity

    out = []
    for spec_id, by_name in measurements.items():
        for name, m in by_name.items():
            mem = m.get("memory") or {}
            grown = int(mem.get("rss_growth", 0))
            if grown >= large:
                out.append(f"memory: measurement {spec_id}.{name} ({m.get('kind')}) grew resident memory by "
                           f"{format_quantity(grown, BYTES)} (from {format_quantity(mem['rss_before'], BYTES)})"
                           + (" (in a child process of its own)" if _forked(m) else ""))
    return out


def print_listing(tr: Any, gates: list[tuple[str, Spec, GateSpec]]) -> None:
    """--goni-list: every spec's measurements and gates (node id, spec, gate), nothing run."""
    console, buf = _console(tr)
    seen: set[str] = set()
    for nodeid, spec, gate in gates:
        if spec.id not in seen:
            seen.add(spec.id)
            table = Table(title=f"{spec.id} [{spec.display_path}, profile {spec.profile}] measurements",
                          box=box.SIMPLE, title_justify="left")
            for col in ("measurement", "kind", "timeout", "metrics"):
                table.add_column(col, overflow="fold")
            for m in spec.measurements.values():
                keys = [k.split(".", 1)[1] for k in spec.metric_units if k.startswith(m.name + ".")]
                table.add_row(m.name, m.kind, f"{m.timeout_s:g} s", ", ".join(keys))
            console.print(table)
        what = f"checklist of {', '.join(gate.of)}" if gate.is_checklist else \
            f"{gate.raw.get('value', gate.raw.get('a'))}  {gate.raw.get('expect')}"
        console.print(f"  {nodeid}  (line {gate.mark.line})  {what}")
    tr.write(buf.getvalue())
