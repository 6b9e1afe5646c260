"""Compiling a gate from its YAML mapping, and giving a verdict on measured metrics.

``compile_gate`` checks everything it can before anything runs — expression syntax, metric paths,
units against the threshold, statistic and confidence — so a bad spec is a collection error.
``CompiledGate.judge`` never raises on bad measurements: a NaN, a division by zero or a missing
metric is a FAIL with its reason; too few samples or an interval straddling the threshold is
INVALID (not a verdict, as MLPerf does).

Intervals are percentile bootstraps of the whole expression: each metric's samples are resampled,
the statistic taken, the expression evaluated. Metrics of one measurement with equal sample counts
are resampled with the same indices (the runner interleaves candidate and baseline, so sample i of
each ran back to back and pairing keeps that correlation). A metric whose ``meta`` says
``exact: True`` (a byte count, a parameter count) is a constant in the interval.
"""

from __future__ import annotations

import difflib
import math
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_goni import stats
from pytest_goni.expect import Expectation, ExpectError, parse_expect
from pytest_goni.expr import EvalError, Expr, ExprError, parse
from pytest_goni.stats import MIN_SAMPLES_FOR_INTERVAL, STATISTICS, Metric
from pytest_goni.status import FAIL, INVALID, PASS
from pytest_goni.units import Dim, UnitError, format_quantity, unit_exact, unit_for

N_BOOT = 2000
DISPLAY_CONFIDENCE = 0.95  # the interval shown when a gate does not ask for one
_BOOT_BLOCK = 2_000_000    # resampled values held at once per metric


class GateSpecError(ValueError):
    """A gate that cannot be compiled. ``key`` is the gate key at fault (``"value"``,
    ``"expect"``, ...); ``col`` a 0-based column inside that key's text when known."""

    def __init__(self, key: str, message: str, col: int | None = None) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message
        self.col = col


@dataclass
class Verdict:
    """The outcome of one gate. ``value`` and ``interval`` are in base units."""

    status: str                          # PASS | FAIL | INVALID
    value: float | None
    display: str                         # "12.3 ms [11.9, 12.8]"
    expect: str                          # "<= 100 ms"
    margin: float | None
    interval: tuple[float, float] | None
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)   # per metric path
    details: dict[str, Any] = field(default_factory=dict)    # test statistics, confidence, ...

    @property
    def passed(self) -> bool:
        return self.status == PASS


# --------------------------------------------------------------------------------------------
# Compilation helpers

def _expression(gate: Mapping[str, Any], key: str) -> Expr:
    if key not in gate or gate[key] is None or gate[key] == "":
        raise GateSpecError(key, f"the gate needs '{key}:', an expression over metric paths "
                                 "(e.g. 'train.candidate.val_loss / train.gpt2.val_loss')")
    text = gate[key]
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise GateSpecError(key, f"must be an expression (text), got {text!r}")
    try:
        return parse(text)
    except ExprError as e:
        raise GateSpecError(key, e.message, e.col) from None


def _path_error(path: str, metric_units: Mapping[str, str]) -> str:
    measurement = path.split(".", 1)[0]
    by_measurement: dict[str, list[str]] = {}
    for p in sorted(metric_units):
        by_measurement.setdefault(p.split(".", 1)[0], []).append(p)
    if measurement not in by_measurement:
        names = sorted(by_measurement)
        close = difflib.get_close_matches(measurement, names, n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        listing = ", ".join(names) if names else "none"
        return f"no measurement named '{measurement}' for '{path}'{hint}; measurements: {listing}"
    produced = by_measurement[measurement]
    close = difflib.get_close_matches(path, produced, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    shown = ", ".join(produced[:12]) + (f", ... ({len(produced) - 12} more)" if len(produced) > 12 else "")
    return f"unknown metric '{path}'{hint}; measurement '{measurement}' produces: {shown}"


def _check_paths(expr: Expr, key: str, metric_units: Mapping[str, str], col_offset: int = 0) -> None:
    cols = expr.path_cols()
    for p in sorted(expr.paths(), key=lambda q: cols[q]):
        if p not in metric_units:
            raise GateSpecError(key, _path_error(p, metric_units), col_offset + cols[p])


def _unit_of(metric_units: Mapping[str, str], key: str, stat: str) -> Callable[[str], Dim]:
    def unit_of(path: str) -> Dim:
        if stat == "count":
            return Dim.NONE
        try:
            return unit_exact(metric_units[path])[1]
        except UnitError as e:
            raise GateSpecError(key, f"metric '{path}' declares a unit this plugin does not know: "
                                     f"{e.message}") from None
    return unit_of


def _dimension(expr: Expr, key: str, metric_units: Mapping[str, str], stat: str,
               col_offset: int = 0) -> Dim:
    try:
        return expr.dimension(_unit_of(metric_units, key, stat))
    except UnitError as e:
        raise GateSpecError(key, e.message, None if e.col is None else col_offset + e.col) from None


def statistic(gate: Mapping[str, Any]) -> str:
    """The gate's ``stat`` (median by default), checked against the known statistics."""
    stat = gate.get("stat", "median")
    if stat not in STATISTICS:
        close = difflib.get_close_matches(str(stat), STATISTICS, n=2, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise GateSpecError("stat", f"unknown statistic {stat!r}; {hint}known: {', '.join(STATISTICS)}")
    return stat


def _confidence(gate: Mapping[str, Any]) -> float | None:
    c = gate.get("confidence")
    if c is None:
        return None
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        raise GateSpecError("confidence", f"must be a number between 0 and 1 such as 0.95, got {c!r}")
    if not 0 < c < 1:
        hint = f" (write {c / 100:g} for {c:g}%)" if 1 < c < 100 else ""
        raise GateSpecError("confidence", f"must lie strictly between 0 and 1, got {c!r}{hint}")
    return float(c)


def _min_samples(gate: Mapping[str, Any]) -> int | None:
    n = gate.get("min_samples")
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GateSpecError("min_samples", f"must be a whole number >= 1, got {n!r}")
    return n


def _expect(gate: Mapping[str, Any]) -> Expectation:
    if "expect" not in gate:
        raise GateSpecError("expect", "the gate needs 'expect:', e.g. '<= 1.15' or '> 5K tok/s'")
    try:
        return parse_expect(gate["expect"])
    except (ExpectError, UnitError) as e:
        raise GateSpecError("expect", e.message, e.col) from None


def _unit_hint(expr: Expr, dim: Dim, metric_units: Mapping[str, str]) -> str | None:
    """A unit the author can write for the value's dimension: the metric's own unit when the
    value is one metric, else the base unit (``s``, ``B``, ``tok/s``); None if none exists."""
    path = expr.single_path
    if path is not None and metric_units.get(path):
        try:
            if unit_exact(metric_units[path])[1] == dim:
                return metric_units[path]
        except UnitError:
            pass
    return unit_for(dim)


# --------------------------------------------------------------------------------------------
# Gates

class CompiledGate:
    """A gate ready to judge. Subclasses implement one gate kind."""

    kind = "threshold"

    def __init__(self, gate: Mapping[str, Any]) -> None:
        gid = gate.get("id")
        if not isinstance(gid, str) or not gid:
            raise GateSpecError("id", f"every gate needs an 'id' (text), got {gid!r}")
        self.id: str = gid
        self.gate = dict(gate)
        self.severity: str | None = gate.get("severity")
        self.why: str | None = gate.get("why")
        self.requires: Any = gate.get("requires")
        self.stat: str = statistic(gate)
        self.confidence: float | None = _confidence(gate)
        self.min_samples: int | None = _min_samples(gate)
        self.paths: set[str] = set()
        self.scales: dict[str, float] = {}

    @property
    def measurements(self) -> set[str]:
        """The measurements this gate reads (first segments of its paths)."""
        return {p.split(".", 1)[0] for p in self.paths}

    def judge(self, metrics: Mapping[str, Metric], baseline: float | None = None) -> Verdict:
        raise NotImplementedError

    # ---- shared judging helpers -------------------------------------------------------------
    def _samples(self, metrics: Mapping[str, Metric]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str], str | None]:
        """Each path's samples in base units, the evidence, the notes, and a reason if a metric
        is missing."""
        arrays: dict[str, np.ndarray] = {}
        evidence: dict[str, Any] = {}
        notes: list[str] = []
        for p in sorted(self.paths):
            m = metrics.get(p)
            if m is None:
                return arrays, evidence, notes, (f"metric '{p}' was not produced by measurement "
                                                 f"'{p.split('.', 1)[0]}'")
            arrays[p] = np.asarray(m.samples, dtype=np.float64) * self.scales[p]
            evidence[p] = {
                "unit": m.unit,
                "stat": self.stat,
                "value": stats.summarize(m.samples, self.stat),
                "summary": stats.describe(m.samples),
                "n": len(m.samples),
                "note": m.note,
            }
            if m.note:
                notes.append(f"{p}: {m.note}")
        return arrays, evidence, notes, None

    def _not_judgeable(self, metrics: Mapping[str, Metric], arrays: Mapping[str, np.ndarray],
                       missing: str | None) -> tuple[str, str] | None:
        """(FAIL, why) when a metric is missing, (INVALID, why) when a metric is marked invalid
        (``meta["invalid"]``: a synthetic task that failed its known-answer check) or below
        ``min_samples``; else None."""
        if missing:
            return FAIL, missing
        for p in sorted(arrays):
            why = metrics[p].meta.get("invalid")
            if why:
                return INVALID, f"{p}: {why}"
        few = self._too_few(metrics, arrays, self.min_samples, "(min_samples)")
        return (INVALID, few) if few else None

    def _too_few(self, metrics: Mapping[str, Metric], arrays: Mapping[str, np.ndarray],
                 need: int | None, why: str) -> str | None:
        if need is None:
            return None
        for p in sorted(arrays):
            n = len(arrays[p])
            if n < need and not _exact(metrics[p]):
                return f"only {n} sample{'s' if n != 1 else ''} of '{p}', need {need} {why}"
        return None


def _exact(m: Metric) -> bool:
    return bool(m.meta.get("exact"))


def _pct(level: float) -> str:
    return f"{level * 100:g}%"


def _with_notes(reason: str, notes: list[str]) -> str:
    return reason + (" (" + "; ".join(notes) + ")" if notes else "")


def _stat_rows(rows: np.ndarray, stat: str) -> np.ndarray:
    """A statistic of each row (bootstrap replicates), matching stats.summarize."""
    if stat in ("median", "p50"):
        return np.median(rows, axis=1)
    if stat == "mean":
        return rows.mean(axis=1)
    if stat == "min":
        return rows.min(axis=1)
    if stat == "max":
        return rows.max(axis=1)
    if stat == "p90":
        return np.percentile(rows, 90, axis=1)
    if stat == "p99":
        return np.percentile(rows, 99, axis=1)
    if stat == "std":
        return rows.std(axis=1, ddof=1) if rows.shape[1] > 1 else np.zeros(rows.shape[0])
    if stat == "iqr":
        q75, q25 = np.percentile(rows, [75, 25], axis=1)
        return q75 - q25
    if stat == "count":
        return np.full(rows.shape[0], float(rows.shape[1]))
    raise ValueError(f"no bootstrap for statistic {stat!r}")


def _display(show: Callable[[float], str], value: float, interval: tuple[float, float] | None) -> str:
    """'12.3 ms [11.9, 12.8]': the interval ends drop the unit when it is the value's."""
    text = show(value)
    if interval is None:
        return text
    lo, hi = show(interval[0]), show(interval[1])
    parts = [s.rsplit(" ", 1) for s in (text, lo, hi)]
    if all(len(q) == 2 for q in parts) and len({q[1] for q in parts}) == 1:
        lo, hi = parts[1][0], parts[2][0]
    elif all(s[-1:] in "%x" and s[-1:] == text[-1:] for s in (lo, hi)) and text[-1:] in ("%", "x"):
        lo, hi = lo[:-1], hi[:-1]
    return f"{text} [{lo}, {hi}]"


class ThresholdGate(CompiledGate):
    """``value: EXPR`` compared by ``expect:`` with a threshold."""

    kind = "threshold"

    def __init__(self, gate: Mapping[str, Any], metric_units: Mapping[str, str]) -> None:
        super().__init__(gate)
        if gate.get("stat") == "last" and self.confidence is not None:
            raise GateSpecError("confidence", "the statistic 'last' has no bootstrap interval; "
                                              "drop 'confidence' or read another statistic")
        self.expr = _expression(gate, "value")
        _check_paths(self.expr, "value", metric_units)
        self.dim = _dimension(self.expr, "value", metric_units, self.stat)
        self.expect = _expect(gate)
        self.expect.value_dim = self.dim
        self._check_expect_units(metric_units)
        self.paths = set(self.expr.paths())
        if self.expect.ref_expr is not None:
            self.paths |= self.expect.ref_expr.paths()
        self.scales = {p: (1.0 if self.stat == "count" else float(unit_exact(metric_units[p])[0]))
                       for p in self.paths}

    def _check_expect_units(self, metric_units: Mapping[str, str]) -> None:
        exp, vdim = self.expect, self.dim
        text = exp.text.strip()
        hint = _unit_hint(self.expr, vdim, metric_units)
        where = f"the value is {vdim.phrase()}" + (f" ({hint})" if hint else "")
        if exp.literal is not None:
            if isinstance(exp.literal, str):
                raise GateSpecError("expect", f"'{text}' compares with text, but a threshold gate's "
                                              "value is a number (text outcomes are for kind: decision)")
            if not vdim.is_none:
                raise GateSpecError("expect", f"'{text}' compares with true/false but {where}")
            return
        if exp.op == "within":
            try:
                exp.resolve_side(vdim)
            except ExpectError as e:
                raise GateSpecError("expect", e.message) from None
            if exp.ref_expr is not None:
                offset = exp.text.index(exp.ref_expr.text) if exp.ref_expr.text in exp.text else 0
                _check_paths(exp.ref_expr, "expect", metric_units, offset)
                rdim = _dimension(exp.ref_expr, "expect", metric_units, self.stat, offset)
                if rdim != vdim:
                    raise GateSpecError("expect", f"'{text}': the reference is {rdim.phrase()} but "
                                                  f"{where}", offset)
            if not exp.relative and exp.tolerance_dim != vdim:
                tdim = exp.tolerance_dim or Dim.NONE
                raise GateSpecError("expect", f"'{text}' allows a deviation of {tdim.phrase()} but {where}")
            return
        edim = exp.dim or Dim.NONE
        if edim == vdim:
            return
        if edim.is_none:
            suggestion = _unit_hint(self.expr, vdim, metric_units)
            if suggestion is None:
                raise GateSpecError("expect", f"'{text}' is a plain number but {where}, which no unit "
                                              "spells; compare a ratio of like quantities instead")
            raise GateSpecError("expect", f"'{text}' is a plain number but {where}; write the unit, "
                                          f"e.g. '{exp.describe()} {suggestion}'")
        if vdim.is_none:
            raise GateSpecError("expect", f"'{text}' compares {edim.phrase()} but the value is a plain "
                                          "number (a ratio or count)")
        raise GateSpecError("expect", f"'{text}' compares {edim.phrase()} but {where}")

    # ---- judging ----------------------------------------------------------------------------
    def judge(self, metrics: Mapping[str, Metric], baseline: float | None = None) -> Verdict:
        exp = self.expect
        arrays, evidence, notes, missing = self._samples(metrics)

        def verdict(status: str, reason: str, value: float | None = None,
                    interval: tuple[float, float] | None = None, margin: float | None = None,
                    **details: Any) -> Verdict:
            display = _display(exp.show, value, interval) if value is not None else "n/a"
            details.setdefault("stat", self.stat)
            details.setdefault("confidence", self.confidence)
            return Verdict(status, value, display, exp.describe(), margin, interval,
                           _with_notes(reason, notes), evidence, details)

        blocked = self._not_judgeable(metrics, arrays, missing)
        if blocked:
            return verdict(*blocked)

        def point(path: str) -> float:
            a = arrays[path]
            if a.size == 0:
                raise EvalError(f"'{path}' has no samples")
            return stats.summarize(a, self.stat)

        try:
            value = self.expr.evaluate(point)
        except EvalError as e:
            return verdict(FAIL, str(e))
        ref = None
        if exp.op == "within":
            if exp.ref_is_baseline:
                if baseline is None:
                    return verdict(INVALID, "no stored baseline to compare with "
                                            "(run with --goni-compare NAME)", value)
                ref = float(baseline)
            else:
                try:
                    ref = exp.ref_expr.evaluate(point)
                except EvalError as e:
                    return verdict(FAIL, f"reference: {e}", value)
        margin = exp.margin(value, ref)

        # Interval: required with `confidence`, shown when samples allow otherwise.
        level = self.confidence or DISPLAY_CONFIDENCE
        need_note = f"for a {_pct(level)} interval"
        few = self._too_few(metrics, arrays, MIN_SAMPLES_FOR_INTERVAL, need_note)
        interval, slack = None, None
        constant = all(_exact(metrics[p]) for p in arrays) or self.stat == "count"
        if few is None and self.stat != "last" and not constant:
            reps, ref_reps = self._bootstrap(metrics, arrays, baseline if exp.ref_is_baseline else None)
            bad = int((~np.isfinite(reps)).sum())
            if ref_reps is not None:
                bad += int((~np.isfinite(ref_reps)).sum())
            if bad == 0:
                q = [(1 - level) / 2, 1 - (1 - level) / 2]
                interval = tuple(float(x) for x in np.quantile(reps, q))
                if exp.op == "within":
                    allowed = exp.tolerance * np.abs(ref_reps) if exp.relative else exp.tolerance
                    s = allowed - exp.deviation(reps, ref_reps) + 1e-12 * np.maximum(np.abs(ref_reps), np.abs(reps))
                    slack = tuple(float(x) for x in np.quantile(s, q))
            elif self.confidence is not None:
                return verdict(INVALID, f"{bad} of {N_BOOT} bootstrap resamples have no finite value "
                                        "(the spread reaches a division by zero or a log of <= 0)",
                               value, margin=margin)
        elif self.confidence is not None and not constant:
            return verdict(INVALID, few or "no interval", value, margin=margin)

        passed = exp.check(value, ref)
        breach = exp.breach(value, ref)
        measured = f"measured {exp.show(value)}"
        if self.confidence is None or exp.literal is not None or constant:
            # No interval asked for, or none needed: exact quantities have no spread.
            if passed:
                return verdict(PASS, f"{measured}, expected {exp.describe()}", value, interval, margin)
            if exp.literal is not None:
                return verdict(FAIL, f"{measured}, expected {exp.describe()}", value, interval, margin)
            return verdict(FAIL, f"{measured} {breach}", value, interval, margin)

        assert interval is not None
        where = (("pass" if slack[0] >= 0 else "fail" if slack[1] < 0 else "straddle")
                 if exp.op == "within" else exp.check_interval(*interval))
        span = f"{_pct(level)} interval [{exp.show(interval[0])}, {exp.show(interval[1])}]"
        if where == "pass":
            return verdict(PASS, f"{measured}, whole {span} meets {exp.describe()}", value, interval, margin)
        if where == "fail":
            how = breach or "breaches"
            return verdict(FAIL, f"{measured} {how}; the whole {span} breaches", value, interval, margin)
        bound = exp.describe()
        return verdict(INVALID, f"{span} straddles '{bound}': spread too wide for its threshold "
                                f"(the point value alone would {'pass' if passed else 'fail'})",
                       value, interval, margin)

    def _bootstrap(self, metrics: Mapping[str, Metric], arrays: Mapping[str, np.ndarray],
                   baseline: float | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Bootstrap replicates of the value (and of the ``within`` reference)."""
        reps: dict[str, np.ndarray] = {}
        for p in sorted(arrays):
            a = arrays[p]
            if _exact(metrics[p]) or self.stat == "count":
                reps[p] = np.full(N_BOOT, stats.summarize(a, self.stat))
                continue
            # Paired: every metric of one measurement with n samples draws the same index stream.
            group = f"{p.split('.', 1)[0]}/{a.size}"
            rng = np.random.default_rng([zlib.crc32(self.id.encode()), zlib.crc32(group.encode())])
            rows = max(1, _BOOT_BLOCK // a.size)  # bounded memory for long sample lists
            reps[p] = np.concatenate([
                _stat_rows(a[rng.integers(0, a.size, size=(min(rows, N_BOOT - start), a.size))], self.stat)
                for start in range(0, N_BOOT, rows)
            ])
        value_reps = self.expr.evaluate_array(reps.__getitem__) * np.ones(N_BOOT)
        ref_reps = None
        if self.expect.op == "within":
            if self.expect.ref_expr is not None:
                ref_reps = self.expect.ref_expr.evaluate_array(reps.__getitem__) * np.ones(N_BOOT)
            else:
                ref_reps = np.full(N_BOOT, float(baseline))
        return value_reps, ref_reps


# --------------------------------------------------------------------------------------------
# Significance

_TESTS = {"welch": "welch", "two-sigma": "two-sigma", "two_sigma": "two-sigma", "2-sigma": "two-sigma",
          "2sigma": "two-sigma"}
_SIG_EXPECT = {("a", "<", "b"): "<", ("a", ">", "b"): ">", ("a", "!=", "b"): "!=",
               ("b", ">", "a"): "<", ("b", "<", "a"): ">", ("b", "!=", "a"): "!="}


class SignificanceGate(CompiledGate):
    """Two samples ``a`` and ``b`` compared by Welch's t-test or the seed's two-sigma rule
    (significant if |mean_a - mean_b| > 2 * sqrt(std_a^2 + std_b^2)).

    ``a``/``b`` are expressions over metric paths; an expression of several metrics is taken
    sample by sample (the samples must pair up: equal counts, or a single constant).
    """

    kind = "significance"

    def __init__(self, gate: Mapping[str, Any], metric_units: Mapping[str, str]) -> None:
        super().__init__(gate)
        if "value" in gate:
            raise GateSpecError("value", "a significance gate compares 'a' with 'b'; it has no 'value'")
        if gate.get("stat", "mean") != "mean":
            raise GateSpecError("stat", "a significance test compares means; drop 'stat' or write 'mean'")
        self.a = _expression(gate, "a")
        _check_paths(self.a, "a", metric_units)
        self.b = _expression(gate, "b")
        _check_paths(self.b, "b", metric_units)
        da = _dimension(self.a, "a", metric_units, "mean")
        db = _dimension(self.b, "b", metric_units, "mean")
        if da != db:
            raise GateSpecError("b", f"'b' is {db.phrase()} but 'a' is {da.phrase()}; "
                                     "a significance test compares like with like")
        self.dim = da
        test = gate.get("test", "welch")
        if test not in _TESTS:
            raise GateSpecError("test", f"unknown test {test!r}; known: welch, two-sigma")
        self.test = _TESTS[test]
        alpha = gate.get("alpha")
        if alpha is None:
            alpha = 1 - self.confidence if self.confidence is not None else 0.05
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise GateSpecError("alpha", f"must lie strictly between 0 and 1 (e.g. 0.05), got {alpha!r}")
        self.alpha = float(alpha)
        raw = gate.get("expect")
        words = tuple(str(raw).split()) if isinstance(raw, str) else ()
        if words not in _SIG_EXPECT:
            raise GateSpecError("expect", f"a significance gate expects 'a < b', 'a > b' or 'a != b', "
                                          f"got {raw!r}")
        self.direction = _SIG_EXPECT[words]
        self.expect_text = f"a {self.direction} b"
        self.paths = self.a.paths() | self.b.paths()
        self.scales = {p: float(unit_exact(metric_units[p])[0]) for p in self.paths}
        self.unit_text = ""
        single = self.a.single_path or self.b.single_path
        if single is not None:
            self.unit_text = metric_units[single]

    def _show(self, v: float) -> str:
        return format_quantity(v, self.dim, self.unit_text or None)

    def _describe(self) -> str:
        rule = f"Welch, alpha {self.alpha:g}" if self.test == "welch" else "two-sigma"
        return f"{self.a.text} {self.direction} {self.b.text} ({rule})"

    def _side(self, expr: Expr, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """The samples of one side, element-wise over paired metric samples."""
        path = expr.single_path
        if path is not None:
            return arrays[path]
        sizes = {arrays[p].size for p in expr.paths()} - {1}
        if len(sizes) > 1:
            raise _Unpaired(f"'{expr.text}' combines metrics of different sample counts "
                            f"({', '.join(str(s) for s in sorted(sizes))}); they cannot be paired")
        out = expr.evaluate_array(arrays.__getitem__)
        if out.ndim == 0:
            out = out.reshape(1)
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            i = int(bad[0])
            try:
                expr.evaluate(lambda p: arrays[p][i] if arrays[p].size > 1 else arrays[p][0])
                why = "is not finite"
            except EvalError as e:
                why = str(e)
            raise EvalError(f"'{expr.text}' at sample {i}: {why}")
        return out

    def judge(self, metrics: Mapping[str, Metric], baseline: float | None = None) -> Verdict:
        arrays, evidence, notes, missing = self._samples(metrics)
        for e in evidence.values():
            e["stat"], e["value"] = "mean", e["summary"]["mean"]

        def verdict(status: str, reason: str, value: float | None = None,
                    interval: tuple[float, float] | None = None, margin: float | None = None,
                    display: str | None = None, **details: Any) -> Verdict:
            details.update(test=self.test, alpha=self.alpha)
            shown = display or (self._show(value) if value is not None else "n/a")
            return Verdict(status, value, shown, self._describe(), margin, interval,
                           _with_notes(reason, notes), evidence, details)

        try:
            a, b = self.sides(metrics, arrays, missing)
        except Blocked as e:
            return verdict(e.status, str(e))
        for name, s in (("a", a), ("b", b)):
            if s.size < 2:
                return verdict(INVALID, f"only {s.size} sample{'s' if s.size != 1 else ''} of {name} "
                                        "('" + (self.a.text if name == "a" else self.b.text) + "'), "
                                        "need at least 2 for a significance test")
            if not np.isfinite(s).all():
                return verdict(FAIL, f"{name} has non-finite samples")
        ma, mb = float(a.mean()), float(b.mean())
        sa, sb = float(a.std(ddof=1)), float(b.std(ddof=1))
        diff = ma - mb
        details = {"mean_a": ma, "mean_b": mb, "std_a": sa, "std_b": sb, "n_a": int(a.size),
                   "n_b": int(b.size)}
        means = f"mean a {self._show(ma)} vs b {self._show(mb)}"
        if self.test == "welch":
            return self._welch(a, b, ma, mb, diff, means, details, verdict)
        return self._two_sigma(sa, sb, ma, mb, diff, means, details, verdict)

    def sides(self, metrics: Mapping[str, Metric], arrays: Mapping[str, np.ndarray],
              missing: str | None) -> tuple[np.ndarray, np.ndarray]:
        """The samples of sides a and b; raises Blocked(status, why) when they cannot be judged."""
        blocked = self._not_judgeable(metrics, arrays, missing)
        if blocked:
            raise Blocked(*blocked)
        try:
            return self._side(self.a, arrays), self._side(self.b, arrays)
        except _Unpaired as e:
            raise Blocked(INVALID, str(e)) from None
        except EvalError as e:
            raise Blocked(FAIL, str(e)) from None

    def _welch(self, a, b, ma, mb, diff, means, details, verdict) -> Verdict:
        from scipy import stats as sst

        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = math.sqrt(va + vb)
        if se == 0:
            p_two = 0.0 if diff != 0 else 1.0
            t = math.copysign(math.inf, diff) if diff else 0.0
            half = 0.0
        else:
            with warnings.catch_warnings():  # scipy warns on near-constant samples; se > 0 here
                warnings.simplefilter("ignore", RuntimeWarning)
                t, p_two = stats.welch_t(a, b)
            df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
            half = float(sst.t.ppf(1 - self.alpha / 2, df)) * se
        if self.direction == "!=":
            p = p_two
        else:
            toward = diff < 0 if self.direction == "<" else diff > 0
            p = p_two / 2 if toward else 1 - p_two / 2
        interval = (diff - half, diff + half)
        details.update(t=float(t), p=float(p), p_two_sided=float(p_two))
        display = f"{self._show(diff)} [{self._show(interval[0])}, {self._show(interval[1])}], p={p:.3g}"
        margin = (self.alpha - p) / self.alpha
        sided = "two-sided" if self.direction == "!=" else "one-sided"
        if p < self.alpha:
            return verdict(PASS, f"{means}: a {self.direction} b, {sided} Welch p = {p:.3g} < {self.alpha:g}",
                           diff, interval, margin, display, **details)
        return verdict(FAIL, f"{means}: a {self.direction} b is not significant, {sided} Welch "
                             f"p = {p:.3g} >= {self.alpha:g}", diff, interval, margin, display, **details)

    def _two_sigma(self, sa, sb, ma, mb, diff, means, details, verdict) -> Verdict:
        threshold = 2 * math.sqrt(sa**2 + sb**2)
        toward = {"<": -diff, ">": diff, "!=": abs(diff)}[self.direction]
        margin = (toward - threshold) / threshold if threshold else toward
        interval = (diff - threshold, diff + threshold)
        details.update(threshold=threshold)
        display = f"{self._show(diff)} (2 sigma = {self._show(threshold)})"
        rule = f"|{self._show(abs(diff))}| vs 2*sqrt(sa^2 + sb^2) = {self._show(threshold)}"
        if toward > threshold:
            return verdict(PASS, f"{means}: a {self.direction} b by more than two sigma ({rule})",
                           diff, interval, margin, display, **details)
        return verdict(FAIL, f"{means}: a {self.direction} b is not significant by the two-sigma rule "
                             f"({rule})", diff, interval, margin, display, **details)


class _Unpaired(Exception):
    pass


class Blocked(Exception):
    """A significance gate's sides cannot be judged: the status to give and why."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


#: Gate kinds this module compiles; gate_kinds/ adds the others (gate_kinds.compile_gate picks one).
GATE_KINDS: dict[str, type[CompiledGate]] = {"threshold": ThresholdGate, "significance": SignificanceGate}
