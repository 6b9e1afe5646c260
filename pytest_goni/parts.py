"""A measurement in parts: the values of its kind's ``split`` axis (a list param such as
``contexts``) measured separately, so one long sweep can run on several xdist workers at once.

A kind declares ``split="contexts"`` when it measures each value of that list independently: the
metrics of ``contexts: [a, b]`` are exactly those of ``[a]`` and of ``[b]`` together (same keys,
same inputs at each point). The loader checks the declared keys partition that way
(:func:`plan_split`); a gate then needs only the parts holding the keys it reads
(:meth:`Split.values_for`), the scheduler makes each part a node of its own, and the runner runs a
part as the measurement with the axis cut to that part's values. The gates read the parts' metrics
merged; the reports show one measurement with its ``parts``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, eq=False)
class Split:
    """How one measurement splits: its axis, the axis values in spec order, each value's keys."""

    axis: str
    values: tuple[Any, ...]
    keys: dict[Any, frozenset[str]]

    def label(self, values: Iterable[Any]) -> str:
        """``contexts=8192`` (or ``contexts=8192,32768``): how a part is named in logs and reports."""
        return f"{self.axis}={','.join(str(v) for v in values)}"

    def params(self, params: dict[str, Any], values: Iterable[Any]) -> dict[str, Any]:
        """The measurement's params cut to ``values`` of the axis (in spec order)."""
        wanted = set(values)
        return {**params, self.axis: [v for v in self.values if v in wanted]}

    def values_for(self, keys: Iterable[str]) -> list[Any] | None:
        """The axis values whose parts hold ``keys`` (metric keys without the measurement's name), in
        spec order; None when a key belongs to no part (read the whole measurement)."""
        keys = set(keys)
        found = [v for v in self.values if self.keys[v] & keys]
        covered = set().union(*(self.keys[v] for v in found)) if found else set()
        if not keys or not keys <= covered:
            return None
        return found


def plan_split(kind: Any, params: dict[str, Any]) -> Split | None:
    """The measurement's parts, or None: the kind declares no axis, the axis has fewer than two
    values (or values that are not plain scalars, or repeated ones), or the keys the kind declares
    for each value do not partition the keys of the whole (then it is not safe to split)."""
    axis = getattr(kind, "split", None)
    values = params.get(axis) if axis else None
    if not isinstance(values, list) or len(values) < 2:
        return None
    if not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in values):
        return None
    if len(set(values)) != len(values):
        return None
    try:
        whole = set(kind.metrics(params))
        keys = {v: frozenset(kind.metrics({**params, axis: [v]})) for v in values}
    except Exception:  # noqa: BLE001 - a kind whose metrics() refuses one value runs whole
        return None
    if sum(len(k) for k in keys.values()) != len(whole) or set().union(*keys.values()) != whole:
        return None
    return Split(axis, tuple(values), keys)


def values_needed(spec: Any, gate: Any, name: str) -> list[Any] | None:
    """The axis values of measurement ``name`` that ``gate`` reads; None: the whole measurement
    (it does not split, or the gate is a checklist, or it reads a key of no part)."""
    split = getattr(spec.measurements.get(name), "split", None)
    compiled = getattr(gate, "compiled", None)
    if split is None or compiled is None:
        return None
    prefix = name + "."
    return split.values_for({p[len(prefix):] for p in compiled.paths if p.startswith(prefix)})


def merge_records(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """One measurement's results.json record from the records of its parts (run on any workers):
    metrics, logs and artifacts together; ``parts`` lists each part (values, worker, device,
    seconds, start, error); ``seconds`` is their sum, ``started_at`` the first start, ``worker``
    and ``device`` every one that ran a part, the error the first part's that failed."""
    parts = _parts_of(old) + [p for p in _parts_of(new) if p not in _parts_of(old)]
    parts.sort(key=lambda p: (p.get("started_at") or 0.0))
    starts = [p["started_at"] for p in parts if isinstance(p.get("started_at"), (int, float))]
    out = dict(old)
    out.update({
        "metrics": {**old.get("metrics", {}), **new.get("metrics", {})},
        "log": list(old.get("log", [])) + [x for x in new.get("log", []) if x not in old.get("log", [])],
        "artifacts": list(old.get("artifacts", [])) + [a for a in new.get("artifacts", [])
                                                      if a not in old.get("artifacts", [])],
        "parts": parts,
        "seconds": round(sum(float(p.get("seconds") or 0.0) for p in parts), 6),
        "started_at": min(starts) if starts else old.get("started_at"),
        "worker": ",".join(dict.fromkeys(str(p.get("worker")) for p in parts)),
        "device": ",".join(dict.fromkeys(str(p.get("device")) for p in parts)),
        "error": next((p["error"] for p in parts if p.get("error")), None),
    })
    out.pop("part", None)
    return out


def _parts_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    if record.get("parts"):
        return list(record["parts"])
    keep = ("part", "worker", "device", "seconds", "started_at", "error", "memory", "isolation")
    return [{k: record.get(k) for k in keep}]
