"""Gate kind ``decision``: ordered rules over named values, written as data (the V5 seed's
``should_scale``, v5-gpt2-gates.md lines 406-426, is the model).

```yaml
kind: decision
values:   {loss_ratio: EXPR, speed_ratio: EXPR, ...}           # expressions over metric paths
counts:   {advantages: {of: [speed_ratio, memory_ratio], expect: "> 1.1"}}
rules:                                                          # first rule whose conditions all hold decides
  - {when: {loss_ratio: "> 1.15"}, decide: no, reason: Loss too high}
  - {when: {advantages: ">= 2"}, decide: yes, reason: "Has {advantages} clear advantages"}
  - {decide: no, reason: No clear advantage}                     # no 'when': always holds
expect: yes                                                     # the decision that passes the gate
```

Every rule's outcome is reported — met, not met (with the values it read) or not reached — so a
reader sees *why*. A value a reached rule needs that cannot be computed (a NaN, a missing metric)
makes the decision INVALID rather than silently false; a metric marked invalid (a synthetic task
that failed its known-answer check) does too. ``reason`` may quote values as ``{name}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pytest_goni.gate_kinds.common import condition, fmt, named_expressions, point_values
from pytest_goni.judge import FAIL, INVALID, PASS, CompiledGate, GateSpecError, Verdict


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

    def judge(self, metrics: Mapping[str, Any], baseline: float | None = None) -> Verdict:
        expect_text = "decision " + ("yes" if self.expected else "no")
        values, evidence, missing, invalid = point_values(self.values, metrics, self.stat, self.metric_units)
        if missing:
            return Verdict(FAIL, None, "n/a", expect_text, None, None, missing, evidence)
        if invalid:
            return Verdict(INVALID, None, "n/a", expect_text, None, None, invalid, evidence)
        for name, (members, cond) in self.counts.items():
            vals = [values[m] for m in members]
            values[name] = math.nan if any(not math.isfinite(v) for v in vals) else \
                float(sum(cond.check(v) for v in vals))
        outcomes: list[dict[str, Any]] = []
        decision, reason = None, ""
        for i, (conds, decide, why) in enumerate(self.rules, 1):
            read = {n: values[n] for n in conds}
            text = " and ".join(f"{n} {c.text.strip()}" for n, c in conds.items()) or "otherwise"
            shown = ", ".join(f"{n} = {fmt(v)}" for n, v in read.items())
            if decision is not None:
                outcomes.append({"rule": i, "when": text, "outcome": "not reached"})
                continue
            unknown = [n if n not in self.counts else
                       f"{n} (counts {', '.join(m for m in self.counts[n][0] if not math.isfinite(values[m]))})"
                       for n, v in read.items() if not math.isfinite(v)]
            if unknown:
                outcomes.append({"rule": i, "when": text, "outcome": "unknown", "values": read})
                lines = _lines(outcomes)
                return Verdict(INVALID, None, "undecided", expect_text, None, None,
                               f"rule {i} ({text}) reads {', '.join(unknown)}, with no value; " + lines,
                               evidence, {"rules": outcomes, "values": values})
            met = all(c.check(values[n]) for n, c in conds.items())
            outcomes.append({"rule": i, "when": text, "outcome": "met" if met else "not met", "values": read,
                             "decide": "yes" if decide else "no"})
            if met:
                decision = decide
                reason = why.format(**{k: (int(v) if k in self.counts else fmt(v)) for k, v in values.items()})
                if shown:
                    reason += f" ({shown})"
        if decision is None:
            return Verdict(INVALID, None, "undecided", expect_text, None, None,
                           "no rule applied (add a last rule without 'when'); " + _lines(outcomes), evidence,
                           {"rules": outcomes, "values": values})
        said = "yes" if decision else "no"
        status = PASS if decision == self.expected else FAIL
        return Verdict(status, float(decision), f"{said}: {reason}", expect_text, None, None,
                       f"decision {said}: {reason}; " + _lines(outcomes), evidence,
                       {"rules": outcomes, "values": values, "decision": said})


def _lines(outcomes: list[dict[str, Any]]) -> str:
    parts = []
    for o in outcomes:
        vals = ", ".join(f"{n} = {fmt(v)}" for n, v in o.get("values", {}).items())
        parts.append(f"rule {o['rule']} [{o['when']}]: {o['outcome']}" + (f" ({vals})" if vals else ""))
    return "; ".join(parts)
