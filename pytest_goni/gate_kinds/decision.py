"""Gate kind ``decision``: ordered rules over named values, written as data (the V5 seed's
``should_scale``, v5-gpt2-gates.md lines 406-426, is the model).

```yaml
kind: decision
values:   {loss_ratio: EXPR, speed_ratio: EXPR, ...}           # expressions over metric paths
          # or {name: {value: EXPR, stat: max}}: that value's own statistic (the gate's 'stat' otherwise),
          # so a rule reads what the threshold gate on the same metric reads (e.g. the worst seed)
counts:   {advantages: {of: [speed_ratio, memory_ratio], expect: "> 1.1"}}
rules:                                                          # first rule whose conditions all hold decides
  - {when: {loss_ratio: "> 1.15"}, decide: no, reason: Loss too high}
  - {when: {advantages: ">= 2"}, decide: yes, reason: "Has {advantages} clear advantages"}
  - {decide: no, reason: No clear advantage}                     # no 'when': always holds
expect: yes                                                     # the decision that passes the gate
```

Every rule's outcome is reported — met, not met (with the values it read) or not reached — so a
reader sees *why*. A value that cannot be computed (a NaN) or reads a metric marked invalid (a
synthetic task that failed its known-answer check; a comparison neither model can perform) is
unknown: a rule is met when all its conditions hold and not met when one fails, whatever the unknown
values are (a count over unknown members is checked at every count they allow), and a reached rule
that depends on an unknown value makes the decision INVALID, with the reason, rather than silently
false. A missing metric FAILs. ``reason`` may quote values as ``{name}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pytest_goni.gate_kinds.common import condition, fmt, named_expressions, values_or_invalid
from pytest_goni.judge import FAIL, INVALID, PASS, CompiledGate, GateSpecError, Verdict, statistic


def _yes_no(v: Any, key: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("yes", "no", "true", "false", "go", "stop"):
        return v.lower() in ("yes", "true", "go")
    raise GateSpecError(key, f"must be yes or no, got {v!r}")


class DecisionGate(CompiledGate):
    kind = "decision"

    def __init__(self, gate: Mapping[str, Any], metric_units: Mapping[str, str]) -> None:
        super().__init__(gate)
        self.metric_units = metric_units
        raw = gate.get("values")
        self.value_stats: dict[str, str] = {}  # names with their own statistic
        if isinstance(raw, Mapping):
            plain: dict[str, Any] = {}
            for name, entry in raw.items():
                if isinstance(entry, Mapping):
                    if set(entry) - {"value", "stat"} or "value" not in entry:
                        raise GateSpecError("values", f"value {name!r}: give an expression, or "
                                                      f"{{value: EXPR, stat: STATISTIC}}, got keys {sorted(entry)}")
                    self.value_stats[str(name)] = statistic({"stat": entry.get("stat", self.stat)})
                    entry = entry["value"]
                plain[str(name)] = entry
            gate = {**gate, "values": plain}
        self.values = named_expressions(gate, "values", metric_units)
        self.counts: dict[str, tuple[list[str], Any]] = {}
        for name, spec in (gate.get("counts") or {}).items():
            if not isinstance(spec, Mapping) or "of" not in spec or "expect" not in spec:
                raise GateSpecError("counts", f"count {name!r} needs 'of: [value names]' and 'expect: \"> X\"'")
            unknown = [v for v in spec["of"] if v not in self.values]
            if unknown:
                raise GateSpecError("counts", f"count {name!r} counts unknown values {unknown}; "
                                              f"values: {', '.join(self.values)}")
            self.counts[str(name)] = (list(spec["of"]), condition(spec["expect"], "counts"))
        rules = gate.get("rules")
        if not isinstance(rules, list) or not rules:
            raise GateSpecError("rules", "a decision needs 'rules:', a list of {when, decide, reason}")
        names = set(self.values) | set(self.counts)
        self.rules = []
        for i, r in enumerate(rules):
            if not isinstance(r, Mapping) or "decide" not in r:
                raise GateSpecError("rules", f"rule {i + 1} needs 'decide: yes|no' (and 'when:', 'reason:')")
            when = r.get("when") or {}
            if not isinstance(when, Mapping):
                raise GateSpecError("rules", f"rule {i + 1}: 'when' maps value names to conditions like '> 1.15'")
            for n in when:
                if n not in names:
                    raise GateSpecError("rules", f"rule {i + 1} reads {n!r}, which is neither a value nor a "
                                                 f"count ({', '.join(sorted(names))})")
            conds = {str(n): condition(c, "rules") for n, c in when.items()}
            self.rules.append((conds, _yes_no(r["decide"], "rules"), str(r.get("reason", ""))))
        if "expect" not in gate:
            raise GateSpecError("expect", "a decision gate needs 'expect: yes' (or no)")
        self.expected = _yes_no(gate["expect"], "expect")
        self.paths = set().union(*(e.paths() for e in self.values.values()))
        self.scales = {p: 1.0 for p in self.paths}

    def _values(self, metrics: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any], str | None,
                                                           dict[str, str]]:
        """Every value under its statistic: one pass per statistic in use, merged."""
        values: dict[str, float] = {}
        evidence: dict[str, Any] = {}
        invalid: dict[str, str] = {}
        for stat in sorted({self.value_stats.get(n, self.stat) for n in self.values}):
            group = {n: e for n, e in self.values.items() if self.value_stats.get(n, self.stat) == stat}
            v, ev, missing, inv = values_or_invalid(group, metrics, stat, self.metric_units)
            evidence.update(ev)
            if missing:
                return {}, evidence, missing, invalid
            values.update(v)
            invalid.update(inv)
        return values, evidence, None, invalid

    def judge(self, metrics: Mapping[str, Any], baseline: float | None = None) -> Verdict:
        expect_text = "decision " + ("yes" if self.expected else "no")
        values, evidence, missing, invalid = self._values(metrics)
        if missing:
            return Verdict(FAIL, None, "n/a", expect_text, None, None, missing, evidence)
        possible: dict[str, list[float]] = {}  # a count over unknown members: every count it could be
        for name, (members, cond) in self.counts.items():
            known = [values[m] for m in members if math.isfinite(values[m])]
            lo = sum(cond.check(v) for v in known)
            possible[name] = [float(c) for c in range(lo, lo + len(members) - len(known) + 1)]
            values[name] = possible[name][0] if len(possible[name]) == 1 else math.nan
        outcomes: list[dict[str, Any]] = []
        decision, reason = None, ""
        for i, (conds, decide, why) in enumerate(self.rules, 1):
            read = {n: values[n] for n in conds}
            text = " and ".join(f"{n} {c.text.strip()}" for n, c in conds.items()) or "otherwise"
            shown = ", ".join(f"{n} = {self._show(n, values, possible)}" for n in read)
            if decision is not None:
                outcomes.append({"rule": i, "when": text, "outcome": "not reached"})
                continue
            holds = {n: self._holds(n, c, values, possible) for n, c in conds.items()}
            if False in holds.values():
                met = False
            elif None in holds.values():
                unknown = ", ".join(self._why_unknown(n, values, invalid) for n, h in holds.items() if h is None)
                outcomes.append({"rule": i, "when": text, "outcome": "unknown", "values": read})
                return Verdict(INVALID, None, "undecided", expect_text, None, None,
                               f"rule {i} ({text}) reads {unknown}; " + _lines(outcomes), evidence,
                               {"rules": outcomes, "values": values, "invalid": invalid})
            else:
                met = True
            outcomes.append({"rule": i, "when": text, "outcome": "met" if met else "not met", "values": read,
                             "decide": "yes" if decide else "no"})
            if met:
                decision = decide
                reason = why.format(**{k: (self._show(k, values, possible) if k in self.counts else fmt(v))
                                       for k, v in values.items()})
                if shown:
                    reason += f" ({shown})"
        if decision is None:
            return Verdict(INVALID, None, "undecided", expect_text, None, None,
                           "no rule applied (add a last rule without 'when'); " + _lines(outcomes), evidence,
                           {"rules": outcomes, "values": values})
        said = "yes" if decision else "no"
        status = PASS if decision == self.expected else FAIL
        noted = f"; not used, invalid: {'; '.join(invalid.values())}" if invalid else ""
        return Verdict(status, float(decision), f"{said}: {reason}", expect_text, None, None,
                       f"decision {said}: {reason}; " + _lines(outcomes) + noted, evidence,
                       {"rules": outcomes, "values": values, "decision": said, "invalid": invalid})

    def _holds(self, name: str, cond: Any, values: dict[str, float], possible: dict[str, list[float]]) -> bool | None:
        """True / False when the condition holds / fails whatever the unknown values are; None when it
        depends on them (a count is checked at every count its unknown members allow)."""
        if name in possible:
            seen = {cond.check(c) for c in possible[name]}
            return seen.pop() if len(seen) == 1 else None
        v = values[name]
        return cond.check(v) if math.isfinite(v) else None

    def _show(self, name: str, values: dict[str, float], possible: dict[str, list[float]]) -> str:
        if name in possible:
            counts = possible[name]
            return str(int(counts[0])) if len(counts) == 1 else f"{int(counts[0])}-{int(counts[-1])}"
        return fmt(values[name])

    def _why_unknown(self, name: str, values: dict[str, float], invalid: dict[str, str]) -> str:
        if name in self.counts:
            members = [m for m in self.counts[name][0] if not math.isfinite(values[m])]
            return f"{name} (counts {', '.join(self._why_unknown(m, values, invalid) for m in members)})"
        return f"{name} ({invalid[name]})" if name in invalid else f"{name}, with no value"


def _lines(outcomes: list[dict[str, Any]]) -> str:
    parts = []
    for o in outcomes:
        vals = ", ".join(f"{n} = {fmt(v)}" for n, v in o.get("values", {}).items())
        parts.append(f"rule {o['rule']} [{o['when']}]: {o['outcome']}" + (f" ({vals})" if vals else ""))
    return "; ".join(parts)
