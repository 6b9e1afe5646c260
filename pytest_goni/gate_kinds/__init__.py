"""Gate kinds beyond thresholds, written as data: ``decision`` (ordered rules), ``grade`` (a table
of practical thresholds and a graduation rule), ``fit`` (the scaling law L = a N^-b + c) and the
paired ``significance`` tests, added to the judge's threshold and significance gates;
:func:`compile_gate` picks a gate's kind and compiles it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_goni.judge import GATE_KINDS, CompiledGate, GateSpecError

from .decision import DecisionGate
from .fit import FitGate
from .grade import GradeGate
from .paired import PairedSignificanceGate

GATE_KINDS.update({"decision": DecisionGate, "grade": GradeGate, "fit": FitGate,
                   "significance": PairedSignificanceGate})


def compile_gate(gate: Mapping[str, Any], metric_units: Mapping[str, str]) -> CompiledGate:
    """Check a gate mapping against the spec's metrics and compile it.

    ``metric_units`` maps every metric path of the spec to its unit string. Raises
    :class:`GateSpecError` naming the key at fault (and a column in it where one helps).
    """
    if not isinstance(gate, Mapping):
        raise GateSpecError("gates", f"a gate is a mapping with id, value, expect; got {gate!r}")
    kind = gate.get("kind") or "threshold"
    if kind not in GATE_KINDS:
        raise GateSpecError("kind", f"unknown gate kind {kind!r}; known: {', '.join(sorted(GATE_KINDS))}")
    return GATE_KINDS[kind](gate, metric_units)
