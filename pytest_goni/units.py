"""Quantities, dimensions and thresholds: what ``expect:`` says and how values are shown.

A quantity is a float in *base units* (seconds, bytes, tokens, items, FLOP) with a :class:`Dim`,
the exponents over those base dimensions. Conversions go through exact fractions so that
``1 MiB`` is exactly 1048576 bytes and ``0.1 ms`` is the float nearest to 1e-4 s, rounded once.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from pytest_goni.expr import Expr


class UnitError(ValueError):
    """An unknown unit, a malformed quantity, or quantities of different dimensions combined.

    ``col`` is a 0-based column in the text the error is about, when one is known.
    """

    def __init__(self, message: str, col: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.col = col


class ExpectError(ValueError):
    """A malformed ``expect:`` text; the message carries a hint of the right form."""

    def __init__(self, message: str, col: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.col = col


# --------------------------------------------------------------------------------------------
# Dimensions

_BASE_DIMS = ("time", "bytes", "tokens", "items", "flop")


@dataclass(frozen=True)
class Dim:
    """Exponents over the base dimensions; ``tok/s`` is ``tokens^1 time^-1``."""

    time: Fraction = Fraction(0)
    bytes: Fraction = Fraction(0)
    tokens: Fraction = Fraction(0)
    items: Fraction = Fraction(0)
    flop: Fraction = Fraction(0)

    NONE: ClassVar[Dim]

    def __repr__(self) -> str:
        return f"Dim({self})"

    def __post_init__(self) -> None:
        for name in _BASE_DIMS:
            object.__setattr__(self, name, Fraction(getattr(self, name)))

    def exponents(self) -> tuple[Fraction, ...]:
        return tuple(getattr(self, n) for n in _BASE_DIMS)

    def __mul__(self, other: Dim) -> Dim:
        return Dim(*(a + b for a, b in zip(self.exponents(), other.exponents())))

    def __truediv__(self, other: Dim) -> Dim:
        return Dim(*(a - b for a, b in zip(self.exponents(), other.exponents())))

    def __pow__(self, power: Fraction | int) -> Dim:
        p = Fraction(power)
        return Dim(*(a * p for a in self.exponents()))

    @property
    def is_none(self) -> bool:
        return all(e == 0 for e in self.exponents())

    def __str__(self) -> str:
        if self.is_none:
            return "dimensionless"

        def term(name: str, e: Fraction) -> str:
            return name if e == 1 else f"{name}^{e}"

        num = [term(n, e) for n, e in zip(_BASE_DIMS, self.exponents()) if e > 0]
        den = [term(n, -e) for n, e in zip(_BASE_DIMS, self.exponents()) if e < 0]
        top = "*".join(num) if num else "1"
        return top + ("/" + "*".join(den) if den else "")

    def phrase(self) -> str:
        """The dimension in words, for error messages: 'a time', 'bytes', 'a token rate'."""
        return _PHRASES.get(self, f"a quantity in {self}")


Dim.NONE = Dim()
TIME = Dim(time=1)
BYTES = Dim(bytes=1)
TOKENS = Dim(tokens=1)
ITEMS = Dim(items=1)
FLOP = Dim(flop=1)
_PER_S = Dim(time=-1)

_PHRASES = {
    Dim.NONE: "a plain number (ratio or count)",
    TIME: "a time",
    BYTES: "bytes",
    TOKENS: "a token count",
    ITEMS: "an item count",
    FLOP: "a FLOP count",
    TOKENS * _PER_S: "a token rate",
    ITEMS * _PER_S: "an item rate",
    FLOP * _PER_S: "a compute rate",
    BYTES * _PER_S: "a bandwidth",
}

# --------------------------------------------------------------------------------------------
# Units

_SI = {"K": 10**3, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_NUMBER_SUFFIX = {"K": 10**3, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}

#: Units written whole (no SI prefix taken off): name -> (scale to base unit, dim).
_ATOMS: dict[str, tuple[Fraction, Dim]] = {
    "ns": (Fraction(1, 10**9), TIME),
    "us": (Fraction(1, 10**6), TIME),
    "\u00b5s": (Fraction(1, 10**6), TIME),  # micro sign
    "\u03bcs": (Fraction(1, 10**6), TIME),  # greek mu
    "ms": (Fraction(1, 10**3), TIME),
    "s": (Fraction(1), TIME),
    "min": (Fraction(60), TIME),
    "h": (Fraction(3600), TIME),
    "B": (Fraction(1), BYTES),
    "kB": (Fraction(10**3), BYTES),
}
for _i, _p in enumerate("KMGTP", start=1):
    _ATOMS[f"{_p}B"] = (Fraction(1000**_i), BYTES)
    _ATOMS[f"{_p}iB"] = (Fraction(1024**_i), BYTES)

#: Units that take a K/M/G/T/P prefix ("Ktok", "TFLOP").
_PREFIXABLE: dict[str, Dim] = {
    "tok": TOKENS, "token": TOKENS, "tokens": TOKENS,
    "item": ITEMS, "items": ITEMS,
    "FLOP": FLOP, "FLOPs": FLOP, "flop": FLOP,
}
_DIMENSIONLESS: dict[str, Fraction] = {"": Fraction(1), "x": Fraction(1), "\u00d7": Fraction(1),
                                       "%": Fraction(1, 100)}

_KNOWN_SPELLINGS = sorted(
    set(_ATOMS) | set(_PREFIXABLE) | {"%", "x"}
    | {"tok/s", "Ktok/s", "Mtok/s", "items/s", "FLOP/s", "GFLOP/s", "TFLOP/s", "B/s", "MB/s",
       "GB/s", "TB/s", "MiB/s", "GiB/s", "ms/tok", "B/tok"}
)


def _suggest(u: str) -> str:
    """' (did you mean ...?)' for a misspelt unit, or ''."""
    same_case = [k for k in _KNOWN_SPELLINGS if k.lower() == u.lower() and k != u]
    close = difflib.get_close_matches(u, _KNOWN_SPELLINGS, n=3, cutoff=0.6)
    picks = list(dict.fromkeys(same_case + close))[:3]
    if not picks:
        return ""
    return " (did you mean " + " or ".join(f"'{p}'" for p in picks) + "?)"


def _unknown(u: str) -> UnitError:
    known = "ns us ms s, B KB MB GB KiB MiB GiB, tok/s items/s FLOP/s B/s (K/M/G/T prefixes), %, x"
    hint = _suggest(u) or f" (known: {known})"
    return UnitError(f"unknown unit '{u}'{hint}")


def _atom(a: str, whole: str) -> tuple[Fraction, Dim]:
    if a in _ATOMS:
        return _ATOMS[a]
    if a in _PREFIXABLE:
        return Fraction(1), _PREFIXABLE[a]
    if len(a) > 1 and a[0] in _SI and a[1:] in _PREFIXABLE:
        return Fraction(_SI[a[0]]), _PREFIXABLE[a[1:]]
    raise _unknown(whole)


def unit_exact(u: str) -> tuple[Fraction, Dim]:
    """Like :func:`unit`, with the scale as an exact fraction."""
    u = u.strip()
    if u in _DIMENSIONLESS:
        return _DIMENSIONLESS[u], Dim.NONE
    parts = [p.strip() for p in u.split("/")]
    if len(parts) > 2 or not all(parts):
        raise _unknown(u)
    scale, dim = _atom(parts[0], u)
    if len(parts) == 2:
        dscale, ddim = _atom(parts[1], u)
        scale, dim = scale / dscale, dim / ddim
    return scale, dim


def unit(u: str) -> tuple[float, Dim]:
    """Scale of ``u`` to its base unit and its dimension: ``unit("ms") == (0.001, TIME)``.

    ``""`` is a plain number; an unknown unit raises :class:`UnitError` with a did-you-mean.
    """
    scale, dim = unit_exact(u)
    return float(scale), dim


_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)")


def parse_quantity_exact(text: str) -> tuple[Fraction, Dim, str]:
    """``"5K tok/s"`` -> (5000, tokens/time, "tok/s"): exact value in base units, dim, unit text.

    The number may carry a K/M/G/T multiplier written right after it (``5K``, ``3.5M``).
    """
    m = _NUMBER.match(text)
    if not m:
        raise UnitError(f"'{text.strip()}' is not a number with an optional unit "
                        "(e.g. '100 ms', '5K tok/s', '1.2x', '5%')")
    number = Fraction(m.group(1))
    rest = text[m.end():]
    try:
        scale, dim = unit_exact(rest)
        return number * scale, dim, rest.strip()
    except UnitError:
        # "5K tok/s", "3.5M": a multiplier glued to the number, then the unit.
        if rest[:1] in _NUMBER_SUFFIX and (len(rest) == 1 or rest[1].isspace()):
            scale, dim = unit_exact(rest[1:])
            return number * _NUMBER_SUFFIX[rest[0]] * scale, dim, rest[1:].strip()
        raise


def parse_quantity(text: str) -> tuple[float, Dim]:
    """``"100 ms"`` -> (0.1, TIME); ``"5K tok/s"`` -> (5000.0, tokens/time)."""
    value, dim, _ = parse_quantity_exact(text)
    return float(value), dim


# --------------------------------------------------------------------------------------------
# Formatting

def _num(x: float) -> str:
    """Four significant digits, no exponent for everyday magnitudes."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e4 and abs(x) < 1e15:
        return f"{x:.0f}"
    return f"{x:.4g}"


def _scaled(value: float, ladder: list[tuple[str, float]]) -> str:
    """Pick the largest unit of the ladder in which |value| >= 1 (the smallest if none)."""
    name, scale = ladder[0]
    if value == 0:
        name, scale = next((n, s) for n, s in ladder if s == 1.0)
    for n, s in ladder:
        if value != 0 and abs(value) >= s:
            name, scale = n, s
    sep = "" if name in ("%", "x") else " "
    return f"{_num(value / scale)}{sep}{name}".rstrip()


_LADDERS: dict[Dim, list[tuple[str, float]]] = {
    TIME: [("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)],
    BYTES: [("B", 1.0), ("KiB", 1024.0), ("MiB", 1024.0**2), ("GiB", 1024.0**3), ("TiB", 1024.0**4)],
    BYTES * _PER_S: [("B/s", 1.0), ("KB/s", 1e3), ("MB/s", 1e6), ("GB/s", 1e9), ("TB/s", 1e12)],
    FLOP * _PER_S: [("FLOP/s", 1.0), ("KFLOP/s", 1e3), ("MFLOP/s", 1e6), ("GFLOP/s", 1e9),
                    ("TFLOP/s", 1e12), ("PFLOP/s", 1e15)],
    FLOP: [("FLOP", 1.0), ("KFLOP", 1e3), ("MFLOP", 1e6), ("GFLOP", 1e9), ("TFLOP", 1e12),
           ("PFLOP", 1e15)],
}
_SUFFIXED = {TOKENS * _PER_S: "tok/s", ITEMS * _PER_S: "items/s", TOKENS: "tok", ITEMS: "items",
             Dim.NONE: ""}
_SUFFIX_LADDER = [("", 1.0), ("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)]


def _with_suffix(value: float, unit_name: str) -> str:
    name, scale = "", 1.0
    if abs(value) >= 1e4:  # 1234 stays "1234"; 12345 becomes "12.35K"
        for n, s in _SUFFIX_LADDER:
            if abs(value) >= s:
                name, scale = n, s
    return f"{_num(value / scale)}{name} {unit_name}".rstrip()


def _base_unit_text(dim: Dim) -> str:
    symbols = dict(zip(_BASE_DIMS, ("s", "B", "tok", "items", "FLOP")))

    def term(n: str, e: Fraction) -> str:
        return symbols[n] if e == 1 else f"{symbols[n]}^{e}"

    num = [term(n, e) for n, e in zip(_BASE_DIMS, dim.exponents()) if e > 0]
    den = [term(n, -e) for n, e in zip(_BASE_DIMS, dim.exponents()) if e < 0]
    return ("*".join(num) if num else "1") + ("/" + "*".join(den) if den else "")


def format_quantity(value_base: float, dim: Dim | None, unit_text: str | None = None) -> str:
    """A value in base units, for people: 0.0123 s -> "12.3 ms", 2.5e9 B -> "2.328 GiB".

    Rule: four significant digits in the largest unit of the dimension's ladder in which the value
    is at least 1 (binary units for bytes, decimal for bandwidth and FLOP/s, a K/M/G suffix on
    counts and token rates at 10^4 and above). Given ``unit_text`` of the same dimension (the
    threshold's unit), the value is written in that unit instead, so value and threshold read alike.
    """
    dim = Dim.NONE if dim is None else dim
    if unit_text is not None:
        try:
            scale, udim = unit_exact(unit_text)
        except UnitError:
            udim = None
        if udim == dim:
            if unit_text.strip() in ("%", "x", "\u00d7"):
                return f"{_num(value_base / float(scale))}{unit_text.strip()}"
            if unit_text.strip() == "":
                return _with_suffix(value_base, "")
            return f"{_num(value_base / float(scale))} {unit_text.strip()}"
    if not math.isfinite(value_base):
        return f"{value_base} {_base_unit_text(dim)}" if not dim.is_none else str(value_base)
    if dim in _LADDERS:
        return _scaled(value_base, _LADDERS[dim])
    if dim in _SUFFIXED:
        return _with_suffix(value_base, _SUFFIXED[dim])
    return f"{_num(value_base)} {_base_unit_text(dim)}"


# --------------------------------------------------------------------------------------------
# Expectations

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
        if self.relative:
            dev = abs(v - r) / abs(r) if r else math.inf
            return (f"{_pct(dev)} away from the reference {self.show(r)}, "
                    f"allowed {_pct(self.tolerance)}")
        return (f"{self.show(abs(v - r))} away from the reference {self.show(r)}, "
                f"allowed {self.show(self.tolerance)}")

    def describe(self) -> str:
        """The expectation normalised for reports: '<= 100 ms', 'between 0.3 and 0.4'."""
        if self.op == "between":
            return f"between {self._rhs_text}"
        if self.op == "within":
            return f"within {self._rhs_text}"
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

    def _within_slack(self, v: float, ref: float) -> float:
        allowed = self._allowed(ref)
        # One part in 10^12 of slack so that "within 5% of 100" admits 105 despite float rounding.
        return allowed - abs(v - ref) + 1e-12 * max(abs(ref), abs(v))


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
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", rhs) and rhs not in _DIMENSIONLESS:
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


def _parse_within(raw: str, s: str, lead: int) -> Expectation:
    from pytest_goni.expr import ExprError, parse

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
