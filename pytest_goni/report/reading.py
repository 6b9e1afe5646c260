"""What a gate record says, for the reports: its threshold as numbers, which way is better, and
a value with its unit written for people."""

from __future__ import annotations

import math
from typing import Any

from ..units import UnitError, format_quantity, unit


def finite_number(x: Any) -> float | None:
    """``x`` as a finite float, or None (missing, text, NaN, inf)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _op(expect: str) -> str:
    text = (expect or "").strip()
    for op in ("<=", ">=", "==", "<", ">"):
        if text.startswith(op):
            return op
    return text.split(" ", 1)[0]


def threshold_of(gate: dict[str, Any]) -> tuple[float, float, bool | None] | None:
    """(low, high, passes_above) of a gate's threshold in base units, or None when it has none
    that a number line can show (``within``, a checklist, a string comparison). ``passes_above``
    is True for ``>``/``>=``, False for ``<``/``<=``, None for a band (``between``, ``==``).

    Uses the record's ``threshold`` ([low, high]) when present, else recovers it from the value and
    the signed relative margin (margin = (value - t) / |t| for ``>``, (t - value) / |t| for ``<``).
    """
    op = _op(gate.get("expect", ""))
    explicit = gate.get("threshold")
    if isinstance(explicit, (list, tuple)) and len(explicit) == 2 and None not in map(finite_number, explicit):
        lo, hi = float(explicit[0]), float(explicit[1])
        return lo, hi, True if op in (">", ">=") else False if op in ("<", "<=") else None
    value, margin = finite_number(gate.get("value")), finite_number(gate.get("margin"))
    if value is None or margin is None or op not in ("<", "<=", ">", ">="):
        return None
    above = op in (">", ">=")
    # value = t (1 + m) for '>' and t (1 - m) for '<' (t > 0); a negative t flips the sign of |t|
    denom = (1 + margin) if above else (1 - margin)
    if abs(denom) < 1e-12:
        return None
    t = value / denom
    if t < 0:  # |t| = -t: value = t (1 - m) for '>' and t (1 + m) for '<'
        denom = (1 - margin) if above else (1 + margin)
        if abs(denom) < 1e-12:
            return None
        t = value / denom
    return t, t, above


def direction(gate: dict[str, Any]) -> str:
    """↑ when higher is better, ↓ when lower is better, ↔ otherwise (a band, a checklist)."""
    op = _op(gate.get("expect", ""))
    if gate.get("kind") == "checklist":
        return "✓"
    return "↑" if op in (">", ">=") else "↓" if op in ("<", "<=") else "↔"


def readable(value: Any, unit_text: str) -> str:
    """A base-unit value for people: (2811237398.5, 'B/s') -> '2.811 GB/s'."""
    v = finite_number(value)
    if v is None:
        return str(value)
    try:
        return format_quantity(v, unit(unit_text)[1]) if unit_text else format_quantity(v, None)
    except UnitError:
        return f"{v:.4g} {unit_text}"
