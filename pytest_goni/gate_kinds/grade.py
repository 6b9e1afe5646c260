"""Gate kind ``grade``: a table of practical thresholds gives each metric a grade, and a graduation
rule over the grades passes or fails the gate (the V5 seed's "Practical Thresholds" and
"Graduation Criteria", v5-gpt2-gates.md lines 376-394).

```yaml
kind: grade
grades: [Good enough, Promising, Excellent]                 # lowest first
metrics:
  validation_loss: {value: EXPR, levels: ["<= 1.15", "<= 1.05", "< 1.0"]}   # one condition per grade
  statefulness:    {value: EXPR, levels: [">= 1.1", ">= 1.25", ">= 1.5"]}
require: {validation_loss: Good enough}                     # optional floors ("Loss 20% worse -> FIX FIRST")
graduate:                                                    # any clause passes
  - {at_least: Excellent, count: 1}
  - {at_least: Promising, count: 2}
```

A metric's grade is the highest level whose condition holds (a metric below the first level has
none). ``count`` counts metrics graded at least ``at_least``, so an Excellent also counts as a
Promising. A metric that reads an invalid metric (or has no value) is ungraded: the gate passes when
graduation holds whatever its grade, fails when it fails whatever its grade, and is INVALID, with the
reason, when it depends on it (or when it is a required one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pytest_goni.gate_kinds.common import condition, fmt, named_expressions, values_or_invalid
from pytest_goni.judge import FAIL, INVALID, PASS, CompiledGate, GateSpecError, Verdict

NONE = "none"


class GradeGate(CompiledGate):
    kind = "grade"

    def __init__(self, gate: Mapping[str, Any], metric_units: Mapping[str, str]) -> None:
        super().__init__(gate)
        self.metric_units = metric_units
        grades = gate.get("grades")
        if not isinstance(grades, list) or len(grades) < 1 or len(set(map(str, grades))) != len(grades):
            raise GateSpecError("grades", "must list distinct grade names, lowest first")
        self.grades = [str(g) for g in grades]
        table = gate.get("metrics")
        if not isinstance(table, Mapping) or not table:
            raise GateSpecError("metrics", "must map metric names to {value: EXPR, levels: [...]}")
        exprs, self.levels = {}, {}
        for name, spec in table.items():
            if not isinstance(spec, Mapping) or "value" not in spec or "levels" not in spec:
                raise GateSpecError("metrics", f"{name!r} needs 'value' and 'levels'")
            if len(spec["levels"]) != len(self.grades):
                raise GateSpecError("metrics", f"{name!r} gives {len(spec['levels'])} levels for "
                                               f"{len(self.grades)} grades")
            exprs[str(name)] = spec["value"]
            self.levels[str(name)] = [condition(c, "metrics") for c in spec["levels"]]
        self.values = named_expressions({"metrics": exprs}, "metrics", metric_units)
        self.require = {str(k): self._rank(v, "require") for k, v in (gate.get("require") or {}).items()}
        for k in self.require:
            if k not in self.values:
                raise GateSpecError("require", f"{k!r} is not one of the graded metrics")
        clauses = gate.get("graduate")
        if not isinstance(clauses, list) or not clauses:
            raise GateSpecError("graduate", "needs clauses like {at_least: Excellent, count: 1}")
        self.clauses = [(self._rank(c.get("at_least"), "graduate"), int(c.get("count", 1))) for c in clauses]
        self.paths = set().union(*(e.paths() for e in self.values.values()))
        self.scales = {p: 1.0 for p in self.paths}

    def _rank(self, grade: Any, key: str) -> int:
        if str(grade) not in self.grades:
            raise GateSpecError(key, f"unknown grade {grade!r}; grades: {', '.join(self.grades)}")
        return self.grades.index(str(grade))

    def grade_of(self, name: str, value: float) -> int:
        """Index of the highest grade whose condition holds; -1 for none."""
        best = -1
        for i, cond in enumerate(self.levels[name]):
            if cond.check(value):
                best = i
        return best

    def judge(self, metrics: Mapping[str, Any], baseline: float | None = None) -> Verdict:
        expect = " or ".join(f"{n} x at least {self.grades[r]}" for r, n in self.clauses)
        if self.require:
            expect += "; with " + ", ".join(f"{k} at least {self.grades[r]}" for k, r in self.require.items())
        values, evidence, missing, invalid = values_or_invalid(self.values, metrics, self.stat, self.metric_units)
        if missing:
            return Verdict(FAIL, None, "n/a", expect, None, None, missing, evidence)
        unknown = {n: invalid.get(n, "no value") for n, v in values.items() if not math.isfinite(v)}
        needed = [n for n in unknown if n in self.require]
        if needed:
            return Verdict(INVALID, None, "n/a", expect, None, None,
                           "cannot grade the required " + "; ".join(f"{n} ({unknown[n]})" for n in needed), evidence,
                           {"values": values, "invalid": invalid})
        ranks = {n: self.grade_of(n, v) for n, v in values.items() if n not in unknown}
        names = {n: (self.grades[r] if r >= 0 else NONE) for n, r in ranks.items()}
        names.update({n: "unknown" for n in unknown})
        table = ", ".join(f"{n} {fmt(values[n])} -> {names[n]}" for n in values)
        details = {"grades": names, "values": values, "invalid": invalid}
        if unknown:
            # graduation that holds with the unknown metrics graded lowest holds whatever they are; one that
            # fails with them graded highest fails whatever they are; otherwise it depends on them
            low = self._graduates({**ranks, **{n: -1 for n in unknown}})
            high = self._graduates({**ranks, **{n: len(self.grades) - 1 for n in unknown}})
            if not low and high:
                return Verdict(INVALID, None, "n/a", expect, None, None,
                               "graduation depends on " + "; ".join(f"{n} ({why})" for n, why in unknown.items())
                               + f": {table}", evidence, details)
            ranks.update({n: -1 if low else len(self.grades) - 1 for n in unknown})
            table += " (the verdict holds whatever the unknown grades are)"
        for k, floor in self.require.items():
            if ranks[k] < floor:
                return Verdict(FAIL, 0.0, f"FIX FIRST ({k} {names[k]})", expect, None, None,
                               f"{k} is graded {names[k]}, below the required {self.grades[floor]}: {table}",
                               evidence, details)
        for floor, count in self.clauses:
            have = sum(r >= floor for n, r in ranks.items() if n not in unknown)
            if sum(r >= floor for r in ranks.values()) >= count:
                return Verdict(PASS, 1.0, f"GO ({have} at least {self.grades[floor]})", expect, None, None,
                               f"{have} metric(s) at least {self.grades[floor]} (need {count}): {table}",
                               evidence, details)
        return Verdict(FAIL, 0.0, "FIX FIRST", expect, None, None, f"no graduation clause met: {table}",
                       evidence, details)

    def _graduates(self, ranks: dict[str, int]) -> bool:
        """Whether the floors and a graduation clause hold at these grades."""
        if any(ranks[k] < floor for k, floor in self.require.items()):
            return False
        return any(sum(r >= floor for r in ranks.values()) >= count for floor, count in self.clauses)
