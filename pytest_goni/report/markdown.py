"""A Markdown summary of a run: one table per spec in the style of lm-evaluation-harness
(value, ± half the interval, an arrow saying which way is better), for a pull request or a CI
job page. Written to ``summary.md`` in the report folder and appended to ``$GITHUB_STEP_SUMMARY``
when that variable is set (GitHub Actions shows it on the run's page)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ..status import STATUSES
from .reading import direction, readable

ICON = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "INVALID": "⚠️ INVALID", "ERROR": "💥 ERROR", "SKIP": "⏭️ SKIP"}


def _cell(text: Any) -> str:
    return str("" if text is None else text).replace("|", "\\|").replace("\n", " ")


def _value_and_pm(gate: dict[str, Any]) -> tuple[str, str]:
    """('12.3 ms', '0.4 ms'): the value as displayed (without its interval) and ± half the interval."""
    display = gate.get("display") or ""
    value = display.split(" [", 1)[0] if display else "—"
    iv = gate.get("interval")
    if not iv or len(iv) != 2:
        return value, ""
    try:
        half = abs(float(iv[1]) - float(iv[0])) / 2
    except (TypeError, ValueError):
        return value, ""
    if not math.isfinite(half):
        return value, ""
    unit = _unit_of(gate)
    return value, readable(half, unit) if unit is not None else f"{half:.3g}"


def _unit_of(gate: dict[str, Any]) -> str | None:
    """The base unit of a single-metric gate (the unit its interval is in); None when mixed."""
    units = {ev.get("unit", "") for ev in (gate.get("evidence") or {}).values() if isinstance(ev, dict)}
    return units.pop() if len(units) == 1 and len(gate.get("evidence") or {}) == 1 else None


def render_markdown(results: dict[str, Any]) -> str:
    env = results.get("environment", {})
    gates = [g for s in results.get("specs", []) for g in s.get("gates", [])]
    counts = ", ".join(f"{sum(g['status'] == s for g in gates)} {s}" for s in STATUSES
                       if any(g["status"] == s for g in gates))
    lines = ["## pytest-goni", "",
             f"{counts or 'no gates'} · {env.get('device', '')} · commit `{(env.get('git_commit') or '?')[:12]}`", ""]
    for spec in results.get("specs", []):
        lines += [f"### {spec['id']} — {spec.get('title') or ''}".rstrip(" —"), "",
                  f"`{spec.get('file')}` · profile `{spec.get('profile')}` · config `{spec.get('config_hash')}`", "",
                  "| Gate | | Value | ± | Threshold | Margin | Verdict |",
                  "|---|:-:|--:|--:|---|--:|---|"]
        for g in sorted(spec.get("gates", []), key=lambda g: g.get("line", 0)):
            value, pm = _value_and_pm(g)
            margin = g.get("margin")
            m = f"{float(margin):+.1%}" if isinstance(margin, (int, float)) and math.isfinite(margin) else ""
            name = g["gate"] + (" (red-line)" if g.get("severity") == "red-line" else "")
            lines.append(f"| {_cell(name)} | {direction(g)} | {_cell(value)} | {_cell(pm)} | {_cell(g.get('expect'))} "
                         f"| {m} | {ICON.get(g['status'], g['status'])} |")
        bad = [g for g in spec.get("gates", []) if g["status"] in ("FAIL", "INVALID", "ERROR")]
        if bad:
            lines += ["", "<details><summary>why they did not pass</summary>", ""]
            lines += [f"- **{_cell(g['gate'])}** ({g.get('file')}:{g.get('line')}): {_cell(g.get('reason'))}"
                      for g in bad]
            lines += ["", "</details>"]
        lines.append("")
    for err in results.get("spec_errors", []):
        lines.append(f"- spec error in `{err['file']}`: {_cell(err['message'])}")
    lines.append("↑ higher is better · ↓ lower is better · ↔ a band or an equality · ± half the interval")
    return "\n".join(lines) + "\n"


def write_markdown(results: dict[str, Any], path: Path | None) -> list[Path]:
    """``summary.md`` at ``path`` (when given) and an append to ``$GITHUB_STEP_SUMMARY`` (when set)."""
    text = render_markdown(results)
    written = []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as fh:
            fh.write(text)
        written.append(Path(step))
    return written
