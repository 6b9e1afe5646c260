"""The ``expect:`` grammar: an :class:`Expectation` compares a gate's value with a threshold.

``< 100 ms``, ``>= 1.2x``, ``between 0.3 and 0.4``, ``within 5% of EXPR``, ``== true``. Thresholds
are held in base units (see :mod:`pytest_goni.units`); ``within`` references are expressions
(:mod:`pytest_goni.expr`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pytest_goni.expr import Expr, ExprError, parse
from pytest_goni.units import (
    PLAIN_UNITS,
    TIME,
    Dim,
    UnitError,
    format_quantity,
    parse_quantity_exact,
    unit_exact,
)


class ExpectError(ValueError):
    """A malformed ``expect:`` text; the message carries a hint of the right form."""

    def __init__(self, message: str, col: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.col = col


_OPS = ("<=", ">=", "==", "<", ">")
_OP_LIKE = re.compile(r"^[<>=!\u2264\u2265\u2260]+")
_OP_FIXES = {"=<": "<=", "=>": ">=", "=": "==", "===": "==", "<<": "<", ">>": ">",
             "\u2264": "<=", "\u2265": ">=", "=<=": "<="}
_EXAMPLES = "(try '<= 1.2', '>= 5K tok/s', 'between 0.3 and 0.4', 'within 5% of other.metric')"


@dataclass
class Expectation:
    """A parsed ``expect:``: a comparison of the gate's value with a threshold.

    Thresholds are in base units. ``dim`` is the threshold's dimension, ``None`` for a plain number
    (and for ``within P% of EXPR``, whose reference carries the dimension). ``unit_text`` is the
    unit the author wrote, used to show the measured value in the same unit.
    """

    text: str
    op: str
    dim: Dim | None = None
    threshold: float | None = None          # < <= > >= ==
    low: float | None = None                # between
    high: float | None = None
    tolerance: float | None = None          # within: fraction (relative) or base-unit amount
    relative: bool = True
    tolerance_dim: Dim | None = None        # within, absolute tolerance
    ref_expr: Expr | None = None            # within ... of EXPR
    ref_is_baseline: bool = False           # within ... of baseline (the stored baseline)
    side: str | None = None                 # one-sided within: "up" (only above the reference
                                            # counts) or "down"; "slower"/"faster" until compiled

    literal: bool | str | None = None       # == true / == "scale"
    unit_text: str = ""
    value_dim: Dim | None = None            # the gated value's dimension, once compiled
    _rhs_text: str = ""

    # ---- predicates -------------------------------------------------------------------------
    @property
    def is_numeric(self) -> bool:
        return self.literal is None

    def check(self, value: float | bool | str, ref: float | None = None) -> bool:
        """Whether ``value`` (base units) satisfies this expectation; ``ref`` for ``within``."""
        if self.literal is not None:
            return _literal_equal(value, self.literal)
        v = float(value)  # type: ignore[arg-type]
        op = self.op
        if op == "<":
            return v < self.threshold
        if op == "<=":
            return v <= self.threshold
        if op == ">":
            return v > self.threshold
        if op == ">=":
            return v >= self.threshold
        if op == "==":
            return math.isclose(v, self.threshold, rel_tol=1e-9, abs_tol=1e-12)
        if op == "between":
            return self.low <= v <= self.high
        return self._within_slack(v, self._need_ref(ref)) >= 0

    def margin(self, value: float | bool | str, ref: float | None = None) -> float | None:
        """Signed relative margin: > 0 passes by that fraction of the threshold, < 0 breaches.

        ``None`` for a string/bool comparison. A zero threshold gives the absolute difference.
        """
        if self.literal is not None:
            return None
        v = float(value)  # type: ignore[arg-type]
        if not math.isfinite(v):
            return math.nan
        op = self.op
        if op in ("<", "<="):
            return _rel(self.threshold - v, self.threshold)
        if op in (">", ">="):
            return _rel(v - self.threshold, self.threshold)
        if op == "==":
            return 0.0 if self.check(v) else -abs(_rel(v - self.threshold, self.threshold))
        if op == "between":
            return min(v - self.low, self.high - v) / (max(abs(self.low), abs(self.high)) or 1.0)
        r = self._need_ref(ref)
        allowed = self._allowed(r)
        return self._within_slack(v, r) / allowed if allowed else self._within_slack(v, r)

    def check_interval(self, lo: float, hi: float) -> str:
        """Where a whole interval [lo, hi] of the value lies: 'pass' (every point satisfies),
        'fail' (no point does) or 'straddle'. Not for ``within`` (its reference varies too)."""
        if self.op == "within" or self.literal is not None:
            raise ValueError(f"'{self.text}' has no interval test")
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return "straddle"
        ok_lo, ok_hi = self.check(lo), self.check(hi)
        if ok_lo and ok_hi:
            return "pass"
        if self.op in ("<", "<=", ">", ">="):
            return "fail" if not ok_lo and not ok_hi else "straddle"
        low, high = (self.threshold, self.threshold) if self.op == "==" else (self.low, self.high)
        if hi < low and not math.isclose(hi, low, rel_tol=1e-9) or \
                lo > high and not math.isclose(lo, high, rel_tol=1e-9):
            return "fail"
        return "straddle"

    def breach(self, value: float, ref: float | None = None) -> str:
        """How ``value`` breaches, in words: '> 100 ms by 23%'. Empty when it does not."""
        if self.literal is not None:
            return "" if self.check(value) else f"is {value!r}, not {self._rhs_text}"
        v = float(value)
        if self.check(v, ref):
            return ""
        show = self.show
        if self.op in ("<", "<="):
            word = ">" if v > self.threshold else ">="
            return f"{word} {self._rhs_text}{_by(v - self.threshold, self.threshold)}"
        if self.op in (">", ">="):
            word = "<" if v < self.threshold else "<="
            return f"{word} {self._rhs_text}{_by(self.threshold - v, self.threshold)}"
        if self.op == "==":
            return f"!= {self._rhs_text}"
        if self.op == "between":
            if v < self.low:
                return f"below {show(self.low)}{_by(self.low - v, self.low)}"
            return f"above {show(self.high)}{_by(v - self.high, self.high)}"
        r = self._need_ref(ref)
        away = "away from" if self.side is None else ("above" if self.side == "up" else "below")
        if self.relative:
            dev = abs(v - r) / abs(r) if r else math.inf
            return (f"{_pct(dev)} {away} the reference {self.show(r)}, "
                    f"allowed {_pct(self.tolerance)}")
        return (f"{self.show(abs(v - r))} {away} the reference {self.show(r)}, "
                f"allowed {self.show(self.tolerance)}")

    def describe(self) -> str:
        """The expectation normalised for reports: '<= 100 ms', 'between 0.3 and 0.4'."""
        if self.op == "between":
            return f"between {self._rhs_text}"
        if self.op == "within":
            return f"no more than {self._rhs_text}" if self.side else f"within {self._rhs_text}"
        return f"{self.op} {self._rhs_text}"

    def show(self, value_base: float) -> str:
        """A value in this expectation's unit: '123 ms' next to '< 100 ms'."""
        if self.op == "within":
            dim = self.value_dim if self.relative else self.tolerance_dim
        else:
            dim = self.dim if self.dim is not None else self.value_dim
        return format_quantity(value_base, dim, self.unit_text)

    # ---- helpers ----------------------------------------------------------------------------
    def _need_ref(self, ref: float | None) -> float:
        if ref is None:
            raise ValueError(f"'{self.text}' needs the reference value (ref=...)")
        return float(ref)

    def _allowed(self, ref: float) -> float:
        return self.tolerance * abs(ref) if self.relative else self.tolerance

    def deviation(self, v: Any, ref: Any) -> Any:
        """How far ``v`` is from ``ref`` in the direction that counts (floats or numpy arrays):
        both ways for ``within``, only upwards / downwards for the one-sided form."""
        if self.side == "up":
            return v - ref
        if self.side == "down":
            return ref - v
        return abs(v - ref)

    def resolve_side(self, value_dim: Dim) -> None:
        """Turn "slower" / "faster" into up / down once the value's dimension is known: a slower
        time is larger, a slower rate (tok/s, FLOP/s, B/s) is smaller."""
        if self.side not in ("slower", "faster"):
            return
        if value_dim == TIME:
            up = self.side == "slower"
        elif value_dim.time < 0:
            up = self.side == "faster"
        else:
            raise ExpectError(f"'{self.text}': '{self.side}' needs a time or a rate, but the value is "
                              f"{value_dim.phrase()} (write 'above' or 'below')")
        self.side = "up" if up else "down"

    def _within_slack(self, v: float, ref: float) -> float:
        allowed = self._allowed(ref)
        # One part in 10^12 of slack so that "within 5% of 100" admits 105 despite float rounding.
        return allowed - self.deviation(v, ref) + 1e-12 * max(abs(ref), abs(v))


def _pct(x: float) -> str:
    return f"{x * 100:.4g}%"


def _rel(diff: float, threshold: float) -> float:
    return diff / abs(threshold) if threshold else diff


def _by(diff: float, threshold: float) -> str:
    if not threshold or not math.isfinite(diff):
        return ""
    return f" by {abs(diff) / abs(threshold):.1%}"


def _literal_equal(value: object, literal: bool | str) -> bool:
    if isinstance(literal, bool):
        if isinstance(value, str):
            return value.strip().lower() == str(literal).lower()
        try:
            return (float(value) != 0) == literal  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    return isinstance(value, str) and value == literal


def _quantity(text: str, whole: str, col: int) -> tuple[float, Dim | None, str]:
    """Parse a threshold; errors name the expect text and column."""
    try:
        value, dim, unit_text = parse_quantity_exact(text)
    except UnitError as e:
        raise UnitError(f"in '{whole}': {e.message}", col=col) from None
    return float(value), (None if dim.is_none else dim), unit_text


def parse_expect(text: str) -> Expectation:
    """Parse ``expect:`` text: ``< 100 ms``, ``>= 1.2x``, ``between 0.3 and 0.4``,
    ``within 5% of EXPR``, ``== true``, ``== "scale"``.

    Raises :class:`ExpectError` for a malformed form, :class:`UnitError` for an unknown unit.
    """
    if isinstance(text, bool):  # YAML `expect: true`
        return Expectation(text=str(text).lower(), op="==", literal=text, _rhs_text=str(text).lower())
    if not isinstance(text, str):
        kind = type(text).__name__
        raise ExpectError(f"expect must be text like '<= 1.15' or '> 5K tok/s', got {text!r} ({kind}); "
                          "quote it in YAML and start with a comparison")
    raw = text
    s = text.strip()
    lead = len(text) - len(text.lstrip())
    if not s:
        raise ExpectError(f"expect is empty {_EXAMPLES}", col=0)
    low = s.lower()
    if low.startswith("between") and (len(s) == 7 or s[7].isspace()):
        return _parse_between(raw, s, lead)
    if low.startswith("within") and (len(s) == 6 or s[6].isspace()):
        return _parse_within(raw, s, lead)
    if low.startswith("no more than "):
        return _parse_one_sided(raw, s, lead)

    m = _OP_LIKE.match(s)
    if not m:
        words = {"less than": "<", "at most": "<=", "greater than": ">", "more than": ">",
                 "at least": ">="}
        for w, op in words.items():
            if low.startswith(w):
                raise ExpectError(f"'{s}' is not a comparison (write '{op} {s[len(w):].strip()}')",
                                  col=lead)
        try:
            _quantity(s, s, lead)
            hint = f"(write '<= {s}', '>= {s}' or '== {s}')"
        except UnitError:
            hint = _EXAMPLES
        raise ExpectError(f"'{s}' has no comparison operator {hint}", col=lead)
    op_text = m.group(0)
    rest = s[m.end():]
    rhs = rest.strip()
    rhs_col = lead + m.end() + (len(rest) - len(rest.lstrip()))
    if op_text not in _OPS:
        fix = _OP_FIXES.get(op_text) or next((o for o in _OPS if op_text.startswith(o)), None)
        if fix:
            raise ExpectError(f"'{s}' is not a comparison (did you mean '{fix} {rhs}'?)", col=lead)
        raise ExpectError(f"'{s}' is not a comparison {_EXAMPLES}", col=lead)
    if not rhs:
        raise ExpectError(f"'{s}' has no threshold after '{op_text}' (e.g. '{op_text} 1.15')",
                          col=lead + len(s))
    exp = Expectation(text=raw, op=op_text, _rhs_text=rhs)
    if op_text == "==":
        lit = _literal(rhs)
        if lit is not None:
            exp.literal = lit
            exp._rhs_text = "true" if lit is True else "false" if lit is False else f'"{lit}"'
            return exp
    value, dim, unit_text = _quantity(rhs, s, rhs_col)
    exp.threshold, exp.dim, exp.unit_text = value, dim, unit_text
    return exp


def _literal(rhs: str) -> bool | str | None:
    if rhs.lower() in ("true", "false"):
        return rhs.lower() == "true"
    if len(rhs) >= 2 and rhs[0] == rhs[-1] and rhs[0] in "\"'":
        return rhs[1:-1]
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", rhs) and rhs not in PLAIN_UNITS:
        try:
            unit_exact(rhs)
        except UnitError:
            return rhs  # a bare word: == scale
    return None


def _parse_between(raw: str, s: str, lead: int) -> Expectation:
    m = re.fullmatch(r"between\s+(.+?)\s+and\s+(.+)", s, flags=re.IGNORECASE)
    if not m:
        raise ExpectError(f"'{s}' is not a range (write 'between 0.3 and 0.4', both ends inclusive)",
                          col=lead)
    lo, lo_dim, lo_unit = _quantity(m.group(1), s, lead + m.start(1))
    hi, hi_dim, hi_unit = _quantity(m.group(2), s, lead + m.start(2))
    if lo_dim is None and hi_dim is not None:  # "between 1 and 2 ms": the unit covers both
        lo, lo_dim, lo_unit = _quantity(f"{m.group(1)} {hi_unit}", s, lead + m.start(1))
    if lo_dim != hi_dim:
        a = "a plain number" if lo_dim is None else lo_dim.phrase()
        b = "a plain number" if hi_dim is None else hi_dim.phrase()
        raise ExpectError(f"'{s}': the ends are of different kinds ({a} and {b})", col=lead + m.start(2))
    if lo > hi:
        raise ExpectError(f"'{s}': the low end {m.group(1)} is above the high end {m.group(2)}",
                          col=lead + m.start(1))
    return Expectation(text=raw, op="between", dim=hi_dim, low=lo, high=hi, unit_text=hi_unit,
                       _rhs_text=f"{m.group(1)} and {m.group(2)}")


_UP_WORDS = ("above", "over", "higher than", "more than", "larger than", "bigger than")
_DOWN_WORDS = ("below", "under", "lower than", "less than", "smaller than")
_ONE_SIDED = re.compile(r"no\s+more\s+than\s+(.+?)\s+(above|over|below|under|(?:higher|more|larger|bigger|lower|"
                        r"less|smaller|slower|faster)\s+than)\s+(.+)", flags=re.IGNORECASE)


def _parse_one_sided(raw: str, s: str, lead: int) -> Expectation:
    """``no more than 5% slower than baseline``, ``no more than 2 ms above other.metric``: a
    ``within`` that only counts deviations in one direction (a regression, not an improvement)."""
    m = _ONE_SIDED.fullmatch(s)
    if not m:
        raise ExpectError(f"'{s}' is not a one-sided tolerance (write 'no more than 5% slower than baseline', "
                          "'no more than 10% above other.metric' or 'no more than 2% below baseline')", col=lead)
    word = " ".join(m.group(2).lower().split())
    rebuilt = f"within {m.group(1)} of {m.group(3)}"
    exp = _parse_within(raw, rebuilt, lead)
    exp.side = ("up" if word in _UP_WORDS else "down" if word in _DOWN_WORDS else word.split()[0])
    exp._rhs_text = f"{m.group(1)} {word} {m.group(3).strip()}"
    return exp


def _parse_within(raw: str, s: str, lead: int) -> Expectation:
    m = re.fullmatch(r"within\s+(.+?)\s+of\s+(.+)", s, flags=re.IGNORECASE)
    if not m:
        raise ExpectError(f"'{s}' is not a tolerance (write 'within 5% of other.metric' or "
                          "'within 2 ms of other.metric')", col=lead)
    tol_text, ref_text = m.group(1), m.group(2)
    tol, tol_dim, tol_unit = _quantity(tol_text, s, lead + m.start(1))
    if tol < 0:
        raise ExpectError(f"'{s}': the tolerance must not be negative", col=lead + m.start(1))
    relative = tol_unit == "%"
    if tol_dim is None and not relative:
        raise ExpectError(f"'{s}': write the tolerance as a percent ('within 5% of ...') or with a "
                          f"unit ('within 2 ms of ...'); a bare {tol_text} is ambiguous",
                          col=lead + m.start(1))
    exp = Expectation(text=raw, op="within", tolerance=tol, relative=relative,
                      tolerance_dim=None if relative else tol_dim, unit_text="" if relative else tol_unit,
                      _rhs_text=f"{tol_text} of {ref_text.strip()}")
    if ref_text.strip() == "baseline":
        exp.ref_is_baseline = True
        return exp
    try:
        exp.ref_expr = parse(ref_text)
    except ExprError as e:
        raise ExpectError(f"in '{s}': {e.message}", col=lead + m.start(2) + e.col) from None
    return exp
