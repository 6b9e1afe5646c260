"""The terminal report: a rich table per spec, a panel per failed gate, and --goni-list."""

from __future__ import annotations

import io
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


def spec_table(results: list[GateResult]) -> Table:
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    caption = "  ".join(f"{n} {s}" for s, n in counts.items() if n)
    table = Table(caption=caption, box=box.SIMPLE_HEAVY, expand=False)
    table.add_column("gate", no_wrap=True)
    table.add_column("value [interval]", overflow="fold")
    table.add_column("expect", overflow="fold")
    table.add_column("margin", justify="right")
    table.add_column("verdict")
    for r in sorted(results, key=lambda r: r.line):
        gate = r.gate + (" (red-line)" if r.severity == "red-line" else "")
        value = r.display or ("—" if r.status in (ERROR, SKIP) else "")
        table.add_row(gate, value, r.expect, _margin(r.margin), Text(r.status, style=STYLE[r.status]))
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
        console.print(spec_table(results))
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
