"""One self-contained HTML page per run (``report.html``): every spec, every gate with its value,
interval, threshold, margin, verdict and YAML lines, the plots inline under the gates they support,
each measurement's log, and the environment. Built from the results JSON alone (plus the plot
files it names), so it can be redrawn from a saved ``results.json``; no script, no network."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from ..status import STATUSES
from .reading import finite_number, readable, threshold_of

STATUS_COLOR = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INVALID": "#9a6700", "ERROR": "#cf222e", "SKIP": "#6e7781"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1180px;color:#1f2328;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 4px;border-bottom:1px solid #d0d7de}
.meta{color:#57606a;font-size:13px}.counts span{margin-right:10px;font-weight:600}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{text-align:left;padding:4px 8px;vertical-align:top;
border-bottom:1px solid #eaeef2}th{background:#f6f8fa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:0 6px;border-radius:4px;color:#fff;font-weight:700;font-size:12px}
tr.gate.bad td{background:#fff5f5}details{margin:2px 0 10px}summary{cursor:pointer;color:#0969da}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px;margin:4px 0}
.why{color:#57606a;font-style:italic}img.plot{max-width:640px;display:block;margin:6px 0;border:1px solid #d0d7de}
.ev td{font-size:12px}.small{font-size:12px;color:#57606a}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{STATUS_COLOR.get(status, "#6e7781")}">{_e(status)}</span>'


def _margin(m: Any) -> str:
    v = finite_number(m)
    return "" if v is None else f"{v:+.1%}"


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    kind = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}.get(path.suffix.lower())
    return f"data:{kind};base64,{base64.b64encode(data).decode()}" if kind else None


def gate_chart(gate: dict[str, Any], width: int = 560, height: int = 46) -> str:
    """Inline SVG: the value (dot), its interval (bar) and the threshold (line, pass side shaded)."""
    value = finite_number(gate.get("value"))
    thr = threshold_of(gate)
    if value is None or thr is None:
        return ""
    lo_t, hi_t, passes_above = thr
    iv = [finite_number(x) for x in (gate.get("interval") or [])]
    points = [value, lo_t, hi_t] + [x for x in iv if x is not None]
    lo, hi = min(points), max(points)
    log = lo > 0 and hi / lo > 30
    f = (lambda x: math.log10(x)) if log else (lambda x: x)
    a, b = f(lo), f(hi)
    pad = (b - a) * 0.08 or abs(a) * 0.1 or 1.0
    a, b = a - pad, b + pad

    def px(x: float) -> float:
        return 10 + (f(x) - a) / (b - a) * (width - 20)

    y = height / 2 - 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="value against threshold">']
    # the passing side of the threshold, shaded
    if passes_above is None:  # between: the band passes
        band = max(px(hi_t) - px(lo_t), 1)
        parts.append(f'<rect x="{px(lo_t):.1f}" y="4" width="{band:.1f}" height="{y * 2 - 4:.1f}" fill="#dafbe1"/>')
    elif passes_above:
        parts.append(f'<rect x="{px(lo_t):.1f}" y="4" width="{width - 10 - px(lo_t):.1f}" height="{y * 2 - 4:.1f}" '
                     'fill="#dafbe1"/>')
    else:
        parts.append(f'<rect x="10" y="4" width="{px(hi_t) - 10:.1f}" height="{y * 2 - 4:.1f}" fill="#dafbe1"/>')
    for t in {lo_t, hi_t}:
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="2" y2="{y * 2 + 2:.1f}" stroke="#57606a" '
                     'stroke-dasharray="3,2"/>')
    color = STATUS_COLOR.get(gate.get("status", ""), "#0969da")
    if len(iv) == 2 and None not in iv:
        parts.append(f'<line x1="{px(iv[0]):.1f}" x2="{px(iv[1]):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" '
                     'stroke-width="5" stroke-opacity="0.45"/>')
    parts.append(f'<circle cx="{px(value):.1f}" cy="{y:.1f}" r="5" fill="{color}"/>')
    label = (f"● {gate.get('display', '')} (bar: interval)   ┊ threshold {gate.get('expect', '')}, pass side shaded"
             + ("   (log scale)" if log else ""))
    parts.append(f'<text x="10" y="{height - 3}" font-size="11" fill="#57606a">{_e(label)}</text></svg>')
    return "".join(parts)


def _evidence_rows(gate: dict[str, Any]) -> str:
    rows = []
    for path, ev in (gate.get("evidence") or {}).items():
        if not isinstance(ev, dict):
            continue
        s = ev.get("summary") or {}
        val = ev.get("display") or readable(ev.get("value"), ev.get("unit", ""))
        unit = ev.get("unit", "")
        rows.append(f"<tr><td>{_e(path)}</td><td class='num'>{_e(val)}</td><td class='num'>{_e(ev.get('n', ''))}</td>"
                    f"<td class='num'>{_e(readable(s.get('median'), unit))}</td>"
                    f"<td class='num'>{_e(readable(s.get('p90'), unit))}</td>"
                    f"<td>{_e(ev.get('note', ''))}</td></tr>")
    if not rows:
        return ""
    return ("<table class='ev'><tr><th>evidence</th><th>value</th><th>n</th><th>median</th><th>p90</th>"
            "<th>note</th></tr>" + "".join(rows) + "</table>")


def _fmt(x: Any) -> str:
    v = finite_number(x)
    return "" if v is None else f"{v:.4g}"


def _plots_under(spec: dict[str, Any], report_dir: Path | None) -> dict[str, list[tuple[str, str]]]:
    """gate id -> [(plot name, data URI)]: each measurement's plots go under the first gate (by
    line) that reads it; later readers get a pointer to that gate instead of a second copy."""
    out: dict[str, list[tuple[str, str]]] = {}
    placed: dict[str, str] = {}
    for gate in sorted(spec.get("gates", []), key=lambda g: g.get("line", 0)):
        for m in gate.get("measurements", []) or _measurements_of(gate):
            meas = spec.get("measurements", {}).get(m)
            if not meas or m in placed:
                continue
            for art in meas.get("artifacts", []):
                p = Path(art)
                if not p.is_absolute() and report_dir is not None:
                    p = report_dir / p
                uri = _data_uri(p)
                if uri:
                    out.setdefault(gate["gate"], []).append((p.name, uri))
                    placed[m] = gate["gate"]
    return out


def _measurements_of(gate: dict[str, Any]) -> list[str]:
    """Measurement names a gate read, from its evidence paths (``name.key``)."""
    return sorted({p.split(".", 1)[0] for p in (gate.get("evidence") or {}) if "." in p})


def _gate_block(gate: dict[str, Any], plots: list[tuple[str, str]]) -> str:
    status = gate.get("status", "")
    bad = status in ("FAIL", "ERROR", "INVALID")
    sev = " <span class='small'>(red-line)</span>" if gate.get("severity") == "red-line" else ""
    row = (f"<tr class='gate{' bad' if bad else ''}' id='gate-{_e(gate['spec'])}-{_e(gate['gate'])}'>"
           f"<td><b>{_e(gate['gate'])}</b>{sev}"
           f"<div class='small'>{_e(gate.get('file'))}:{_e(gate.get('line'))}</div></td>"
           f"<td class='num'>{_e(gate.get('display') or '—')}</td><td>{_e(gate.get('expect'))}</td>"
           f"<td class='num'>{_margin(gate.get('margin'))}</td><td>{_badge(status)}</td></tr>")
    body = []
    if gate.get("reason"):
        body.append(f"<div><b>reason</b> {_e(gate['reason'])}</div>")
    if gate.get("why"):
        body.append(f"<div class='why'>why: {_e(gate['why'])}</div>")
    chart = gate_chart(gate)
    if chart:
        body.append(chart)
    body.append(_evidence_rows(gate))
    if gate.get("yaml"):
        body.append(f"<pre>{_e(gate['yaml'])}</pre>")
    for name, uri in plots:
        body.append(f"<div class='small'>{_e(name)}</div><img class='plot' alt='{_e(name)}' src='{uri}'>")
    detail = (f"<tr><td colspan='5'><details{' open' if bad or plots else ''}><summary>details</summary>"
              + "".join(body) + "</details></td></tr>")
    return row + detail


def _measurement_table(spec: dict[str, Any]) -> str:
    rows = []
    for name, m in sorted((spec.get("measurements") or {}).items()):
        err = (m.get("error") or {}).get("reason", "")
        log = m.get("log") or []
        log_html = (f"<details><summary>{len(log)} log lines</summary><pre>{_e(chr(10).join(log))}</pre></details>"
                    if log else "")
        rows.append(f"<tr><td>{_e(name)}</td><td>{_e(m.get('kind'))}</td><td>{_e(m.get('device'))}</td>"
                    f"<td>{_e(m.get('worker', ''))}</td><td class='num'>{_fmt(m.get('seconds'))} s</td>"
                    f"<td>{_e(err)}{log_html}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th>measurement</th><th>kind</th><th>device</th><th>worker</th><th>time</th>"
            "<th>error / log</th></tr>" + "".join(rows) + "</table>")


def _counts(gates: list[dict[str, Any]]) -> str:
    n = {s: sum(g.get("status") == s for g in gates) for s in STATUSES}
    return "".join(f"<span style='color:{STATUS_COLOR[s]}'>{c} {s}</span>" for s, c in n.items() if c)


def render_html(results: dict[str, Any], report_dir: Path | None = None) -> str:
    """The whole page as one string (plots embedded as data URIs)."""
    env = results.get("environment", {})
    all_gates = [g for s in results.get("specs", []) for g in s.get("gates", [])]
    out = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
           f"<title>pytest-goni report {_e(env.get('date', ''))}</title><style>{CSS}</style></head><body>",
           "<h1>pytest-goni report</h1>",
           f"<div class='meta'>{_e(env.get('date', ''))} · {_e(env.get('device', ''))} · commit "
           f"{_e((env.get('git_commit') or 'unknown')[:12])}{' (dirty)' if env.get('git_dirty') else ''}</div>",
           f"<div class='counts'>{_counts(all_gates)}</div>"]
    for spec in results.get("specs", []):
        gates = sorted(spec.get("gates", []), key=lambda g: g.get("line", 0))
        plots = _plots_under(spec, report_dir)
        out.append(f"<h2 id='spec-{_e(spec['id'])}'>{_e(spec['id'])} — {_e(spec.get('title') or '')}</h2>")
        out.append(f"<div class='meta'>{_e(spec.get('file'))} · profile {_e(spec.get('profile'))} · config "
                   f"{_e(spec.get('config_hash'))}{' · source ' + _e(spec['source']) if spec.get('source') else ''}"
                   f"</div><div class='counts'>{_counts(gates)}</div>")
        out.append("<table><tr><th>gate</th><th>value [interval]</th><th>threshold</th><th>margin</th>"
                   "<th>verdict</th></tr>")
        out.extend(_gate_block(g, plots.get(g["gate"], [])) for g in gates)
        out.append("</table>")
        out.append(_measurement_table(spec))
    if results.get("spec_errors"):
        out.append("<h2>spec errors</h2>")
        out.extend(f"<pre>{_e(e['file'])}: {_e(e['message'])}</pre>" for e in results["spec_errors"])
    out.append("<h2>environment</h2><table>")
    for key, val in env.items():
        if isinstance(val, dict):
            val = ", ".join(f"{k} {v}" for k, v in val.items() if v)
        elif isinstance(val, list):
            val = ", ".join(map(str, val))
        out.append(f"<tr><th>{_e(key)}</th><td>{_e(val)}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def write_html(results: dict[str, Any], path: Path, report_dir: Path | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(results, report_dir), encoding="utf-8")
    return path
