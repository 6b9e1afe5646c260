"""Quantities and dimensions: parsing ``5K tok/s`` and showing values to people.

A quantity is a float in *base units* (seconds, bytes, tokens, items, FLOP) with a :class:`Dim`,
the exponents over those base dimensions. Conversions go through exact fractions so that
``1 MiB`` is exactly 1048576 bytes and ``0.1 ms`` is the float nearest to 1e-4 s, rounded once.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar


class UnitError(ValueError):
    """An unknown unit, a malformed quantity, or quantities of different dimensions combined.

    ``col`` is a 0-based column in the text the error is about, when one is known.
    """

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
#: Spellings of a plain number (ratio / count) and their scale.
PLAIN_UNITS: dict[str, Fraction] = {"": Fraction(1), "x": Fraction(1), "\u00d7": Fraction(1),
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
    if u in PLAIN_UNITS:
        return PLAIN_UNITS[u], Dim.NONE
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
    number = _bounded_fraction(m.group(1))
    rest = text[m.end():]
    try:
        scale, dim = unit_exact(rest)
        return _finite(number * scale, m.group(1)), dim, rest.strip()
    except UnitError:
        # "5K tok/s", "3.5M": a multiplier glued to the number, then the unit.
        if rest[:1] in _NUMBER_SUFFIX and (len(rest) == 1 or rest[1].isspace()):
            scale, dim = unit_exact(rest[1:])
            return _finite(number * _NUMBER_SUFFIX[rest[0]] * scale, m.group(1)), dim, rest[1:].strip()
        raise


_MAX_FLOAT = Fraction(sys.float_info.max)


def _bounded_fraction(number: str) -> Fraction:
    """``Fraction(number)``, refusing exponents so large that the exact value alone would cost
    memory and time (``1e999999999`` is a billion-digit integer) before any range check."""
    mantissa, _, exponent = number.lower().partition("e")
    if len(mantissa) > 400 or (exponent and abs(int(exponent)) > 400):
        raise UnitError(f"{number} is out of range (a threshold must be a finite double, up to ~1.8e308)")
    return Fraction(number)


def _finite(value: Fraction, number: str) -> Fraction:
    if abs(value) > _MAX_FLOAT:
        raise UnitError(f"{number} is out of range (a threshold must be a finite double, up to ~1.8e308)")
    return value


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


def unit_for(dim: Dim) -> str | None:
    """A unit a spec can write for ``dim`` (``s``, ``B``, ``tok/s``, ``B/s``), or None when no
    unit spelling has that dimension (a product like time^2)."""
    text = "" if dim.is_none else _base_unit_text(dim)
    try:
        return text if unit_exact(text)[1] == dim else None
    except UnitError:
        return None


def format_quantity(value_base: float, dim: Dim | None, unit_text: str | None = None) -> str:
    """A value in base units, for people: 0.0123 s -> "12.3 ms", 2.5e9 B -> "2.328 GiB".

    Rule: four significant digits in the largest unit of the dimension's ladder in which the value
    is at least 1 (binary units for bytes, decimal for bandwidth and FLOP/s, a K/M/G suffix on
    counts and token rates at 10^4 and above). Given ``unit_text`` of the same dimension (the
    threshold's unit), the value is written in that unit instead, so value and threshold read alike,
    as long as it reads as a number between 0.01 and 10^4 there (else the ladder's unit).
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
            shown = value_base / float(scale)
            # ...unless that reads badly ("0.002811 TB/s", "25000 ms"): then the dimension's ladder
            if not (dim in _LADDERS and math.isfinite(shown) and shown != 0 and not 0.01 <= abs(shown) < 1e4):
                return f"{_num(shown)} {unit_text.strip()}"
    if not math.isfinite(value_base):
        return f"{value_base} {_base_unit_text(dim)}" if not dim.is_none else str(value_base)
    if dim in _LADDERS:
        return _scaled(value_base, _LADDERS[dim])
    if dim in _SUFFIXED:
        return _with_suffix(value_base, _SUFFIXED[dim])
    return f"{_num(value_base)} {_base_unit_text(dim)}"
