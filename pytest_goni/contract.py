"""The measurement contract, checked on what a kind returns before any gate reads it.

A kind declares ``metrics(params) -> {key: unit}``; its function must return a mapping of exactly
those keys, each a :class:`~pytest_goni.stats.Metric` (or a plain real number) in a unit of the
declared dimension. A metric in another unit of the same dimension (``ms`` declared ``s``) is
converted; one of another dimension (bytes declared as seconds) is an error naming the key, as is
a missing key, an undeclared one, ``None``, text or a sample that is not a number.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from .stats import Metric
from .units import UnitError, unit_exact


class ContractError(Exception):
    """What a kind returned breaks its declaration; the message names the key."""


def _number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_metrics(kind: str, returned: Any, declared: Mapping[str, str]) -> dict[str, Metric]:
    """``returned`` checked against ``declared`` (key -> unit); Metrics in the declared units."""
    if not isinstance(returned, Mapping):
        raise ContractError(f"kind {kind!r} returned {type(returned).__name__}, not a mapping of metric "
                            "key -> Metric")
    missing = [k for k in declared if k not in returned]
    if missing:
        raise ContractError(f"kind {kind!r} did not return {', '.join(repr(k) for k in missing)} "
                            f"(declared by its metrics(); returned: {', '.join(map(repr, returned)) or 'nothing'})")
    extra = [k for k in returned if k not in declared]
    if extra:
        raise ContractError(f"kind {kind!r} returned undeclared metric {', '.join(repr(str(k)) for k in extra)} "
                            "(add it to the kind's metrics(params))")
    return {key: _checked(kind, key, returned[key], declared[key]) for key in declared}


def _checked(kind: str, key: str, value: Any, unit: str) -> Metric:
    if _number(value):
        return Metric.scalar(float(value), unit)
    if not isinstance(value, Metric):
        raise ContractError(f"kind {kind!r}: metric {key!r} is {_what(value)}; return a Metric "
                            "(Metric.of(samples, unit) / Metric.scalar(value, unit)) or a number")
    if not isinstance(value.samples, (list, tuple)):
        raise ContractError(f"kind {kind!r}: metric {key!r} has samples that are {_what(value.samples)}, "
                            "not a list of numbers")
    bad = [s for s in value.samples if not _number(s)]
    if bad:
        raise ContractError(f"kind {kind!r}: metric {key!r} has a sample that is {_what(bad[0])}, not a number")
    got = (value.unit or "").strip()
    if got == unit.strip() or not got:
        value.unit = unit
        return value
    try:
        got_scale, got_dim = unit_exact(got)
    except UnitError as exc:
        raise ContractError(f"kind {kind!r}: metric {key!r} has unknown unit {got!r} ({exc.message})") from None
    want_scale, want_dim = unit_exact(unit)
    if got_dim != want_dim:
        raise ContractError(f"kind {kind!r}: metric {key!r} is in {got!r} but the kind declared {unit!r} "
                            f"({got_dim.phrase()} is not {want_dim.phrase()})")
    factor = float(got_scale / want_scale)
    samples = [s * factor if math.isfinite(s) else s for s in map(float, value.samples)]
    return Metric(samples, unit, value.note, {**value.meta, "converted_from": got})


def _what(x: Any) -> str:
    if x is None:
        return "None"
    if isinstance(x, str):
        return f"text {x[:40]!r}"
    return f"a {type(x).__name__}"
