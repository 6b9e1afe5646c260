"""What the data-driven gate kinds share: named expressions over metric paths, read at a statistic,
and conditions written as ``expect:`` strings ("> 1.15")."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pytest_goni import stats
from pytest_goni.expect import Expectation, ExpectError, parse_expect
from pytest_goni.expr import EvalError, Expr
from pytest_goni.judge import GateSpecError, _check_paths, _expression
from pytest_goni.stats import Metric
from pytest_goni.units import UnitError, unit_exact


def named_expressions(gate: Mapping[str, Any], key: str, metric_units: Mapping[str, str]) -> dict[str, Expr]:
    """``key: {name: EXPR, ...}`` compiled, every path checked against the spec's metrics."""
    raw = gate.get(key)
    if not isinstance(raw, Mapping) or not raw:
        raise GateSpecError(key, f"'{key}:' must map names to expressions over metric paths, got {raw!r}")
    out = {}
    for name, text in raw.items():
        expr = _expression({key: text}, key)
        _check_paths(expr, key, metric_units)
        out[str(name)] = expr
    return out


def condition(text: Any, key: str) -> Expectation:
    """A comparison such as ``"> 1.15"`` or ``">= 2"`` (the ``expect:`` grammar)."""
    try:
        return parse_expect(str(text))
    except (ExpectError, UnitError) as e:
        raise GateSpecError(key, f"{text!r}: {e.message}") from None


def point_values(exprs: Mapping[str, Expr], metrics: Mapping[str, Metric], stat: str,
                 metric_units: Mapping[str, str]) -> tuple[dict[str, float], dict[str, Any], str | None,
                                                          str | None]:
    """Each expression at the statistic of its metrics: (values, evidence, missing, invalid)."""
    evidence: dict[str, Any] = {}
    point: dict[str, float] = {}
    for expr in exprs.values():
        for p in expr.paths():
            m = metrics.get(p)
            if m is None:
                return {}, evidence, f"metric '{p}' was not produced by measurement '{p.split('.', 1)[0]}'", None
            if m.meta.get("invalid"):
                return {}, evidence, None, f"{p}: {m.meta['invalid']}"
            scale = float(unit_exact(metric_units[p])[0]) if p in metric_units else 1.0
            point[p] = stats.summarize(m.samples, stat) * scale
            evidence[p] = {"unit": m.unit, "stat": stat, "value": point[p], "n": len(m.samples), "note": m.note}
    values = {}
    for name, expr in exprs.items():
        try:
            values[name] = expr.evaluate(point.__getitem__)
        except EvalError:
            values[name] = math.nan
    return values, evidence, None, None


def values_or_invalid(exprs: Mapping[str, Expr], metrics: Mapping[str, Metric], stat: str,
                      metric_units: Mapping[str, str]) -> tuple[dict[str, float], dict[str, Any], str | None,
                                                                dict[str, str]]:
    """Like ``point_values``, but a metric marked invalid makes only the values that read it unknown
    (NaN), each with its reason: (values, evidence, missing, {name: why invalid}). For gates that can
    still decide without those values (a decision rule reached before them, a graduation that holds
    whatever they are)."""
    invalid: dict[str, str] = {}
    valid: dict[str, Expr] = {}
    for name, expr in exprs.items():
        why = next((f"{p}: {metrics[p].meta['invalid']}" for p in sorted(expr.paths())
                    if p in metrics and metrics[p].meta.get("invalid")), None)
        if why:
            invalid[name] = why
        else:
            valid[name] = expr
    values, evidence, missing, _ = point_values(valid, metrics, stat, metric_units)
    if missing:
        return {}, evidence, missing, invalid
    values.update({name: math.nan for name in invalid})
    return values, evidence, None, invalid


def fmt(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.4g}"
