"""Units, quantities and formatting."""

import math
from fractions import Fraction

import pytest

from pytest_goni.units import (
    BYTES,
    FLOP,
    ITEMS,
    TIME,
    TOKENS,
    Dim,
    UnitError,
    format_quantity,
    parse_quantity,
    unit,
    unit_exact,
)

PER_S = Dim(time=-1)


# ---- units ------------------------------------------------------------------------------------

@pytest.mark.parametrize("u, scale, dim", [
    ("", Fraction(1), Dim.NONE),
    ("x", Fraction(1), Dim.NONE),
    ("%", Fraction(1, 100), Dim.NONE),
    ("ns", Fraction(1, 10**9), TIME),
    ("us", Fraction(1, 10**6), TIME),
    ("\u00b5s", Fraction(1, 10**6), TIME),
    ("\u03bcs", Fraction(1, 10**6), TIME),
    ("ms", Fraction(1, 1000), TIME),
    ("s", Fraction(1), TIME),
    ("min", Fraction(60), TIME),
    ("B", Fraction(1), BYTES),
    ("KB", Fraction(10**3), BYTES),
    ("kB", Fraction(10**3), BYTES),
    ("MB", Fraction(10**6), BYTES),
    ("GB", Fraction(10**9), BYTES),
    ("TB", Fraction(10**12), BYTES),
    ("KiB", Fraction(2**10), BYTES),
    ("MiB", Fraction(2**20), BYTES),
    ("GiB", Fraction(2**30), BYTES),
    ("TiB", Fraction(2**40), BYTES),
    ("tok/s", Fraction(1), TOKENS * PER_S),
    ("Ktok/s", Fraction(10**3), TOKENS * PER_S),
    ("Mtok/s", Fraction(10**6), TOKENS * PER_S),
    ("items/s", Fraction(1), ITEMS * PER_S),
    ("Kitems/s", Fraction(10**3), ITEMS * PER_S),
    ("FLOP/s", Fraction(1), FLOP * PER_S),
    ("GFLOP/s", Fraction(10**9), FLOP * PER_S),
    ("TFLOP/s", Fraction(10**12), FLOP * PER_S),
    ("B/s", Fraction(1), BYTES * PER_S),
    ("GB/s", Fraction(10**9), BYTES * PER_S),
    ("TB/s", Fraction(10**12), BYTES * PER_S),
    ("GiB/s", Fraction(2**30), BYTES * PER_S),
    ("MiB/ms", Fraction(2**20 * 1000), BYTES * PER_S),
    ("ms/tok", Fraction(1, 1000), TIME / TOKENS),
    ("B/tok", Fraction(1), BYTES / TOKENS),
    (" ms ", Fraction(1, 1000), TIME),
])
def test_units(u, scale, dim):
    assert unit_exact(u) == (scale, dim)
    s, d = unit(u)
    assert s == float(scale) and d == dim


def test_dimension_algebra_and_names():
    assert TOKENS / TIME == Dim(tokens=1, time=-1)
    assert str(TOKENS / TIME) == "tokens/time"
    assert str(BYTES / TIME) == "bytes/time"
    assert str(TIME) == "time"
    assert str(Dim.NONE) == "dimensionless"
    assert (TIME / TIME) == Dim.NONE and (TIME / TIME).is_none
    assert hash(TIME / TIME) == hash(Dim.NONE)
    assert len({TIME, Dim(time=1), TIME * Dim.NONE}) == 1
    assert TIME.phrase() == "a time" and (TOKENS / TIME).phrase() == "a token rate"
    assert "Dim(time)" == repr(TIME)


@pytest.mark.parametrize("bad, suggestion", [
    ("mss", "'ms'"),
    ("mb", "'MB'"),
    ("mib", "'MiB'"),
    ("Gib", "'GiB'"),
    ("tok/sec", "'tok/s'"),
    ("TFLOPS/s", "'TFLOP/s'"),
])
def test_unknown_unit_did_you_mean(bad, suggestion):
    with pytest.raises(UnitError) as info:
        unit(bad)
    assert f"unknown unit '{bad}'" in str(info.value)
    assert "did you mean" in str(info.value) and suggestion in str(info.value)


@pytest.mark.parametrize("bad", ["furlongs", "s/", "/s", "a/b/c", "K"])
def test_unknown_units_are_errors(bad):
    with pytest.raises(UnitError):
        unit(bad)


# ---- quantities -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value, dim", [
    ("100 ms", 0.1, TIME),
    ("100ms", 0.1, TIME),
    ("0.1 ms", 1e-4, TIME),
    ("0.9 ms", 9e-4, TIME),             # exact: 0.9 * 1e-3 in floats is 0.0009000000000000001
    ("1.7 us", 1.7e-6, TIME),
    ("250 us", 2.5e-4, TIME),
    ("5K tok/s", 5000.0, TOKENS * PER_S),
    ("5k tok/s", 5000.0, TOKENS * PER_S),
    ("5 Ktok/s", 5000.0, TOKENS * PER_S),
    ("5Ktok/s", 5000.0, TOKENS * PER_S),
    ("5000 tok/s", 5000.0, TOKENS * PER_S),
    ("12K tok/s", 12000.0, TOKENS * PER_S),
    ("1.2 TFLOP/s", 1.2e12, FLOP * PER_S),
    ("3.35 TB/s", 3.35e12, BYTES * PER_S),
    ("2 GiB/s", 2.0 * 2**30, BYTES * PER_S),
    ("5%", 0.05, Dim.NONE),
    ("5 %", 0.05, Dim.NONE),
    ("3.5M", 3.5e6, Dim.NONE),
    ("2e6", 2e6, Dim.NONE),
    ("1.2x", 1.2, Dim.NONE),
    ("1.15", 1.15, Dim.NONE),
    ("-3", -3.0, Dim.NONE),
    ("1 MiB", 1048576.0, BYTES),
    ("1 MB", 1000000.0, BYTES),
    ("1.5 MiB", 1572864.0, BYTES),
    ("1.5 MB", 1500000.0, BYTES),
    ("200 MiB", 200 * 2**20, BYTES),
    ("5KB", 5000.0, BYTES),
    ("5KiB", 5120.0, BYTES),
    ("2.5 GiB", 2.5 * 2**30, BYTES),
])
def test_parse_quantity(text, value, dim):
    v, d = parse_quantity(text)
    assert v == value  # exact, not approx: conversions go through fractions
    assert d == dim


def test_mib_and_mb_are_different_and_exact():
    mib, _ = parse_quantity("1 MiB")
    mb, _ = parse_quantity("1 MB")
    assert mib == 2**20 and mb == 10**6 and mib != mb
    # one rounding from the exact decimal value, not a float product of two rounded factors
    assert 0.9 * 1e-3 != 9e-4 and parse_quantity("0.9 ms")[0] == 9e-4
    assert 0.007 * 1e-9 != 7e-12 and parse_quantity("0.007 ns")[0] == 7e-12


@pytest.mark.parametrize("bad", ["", "ms", "abc", "5 K", "5 mss", "5 m", "1,000 ms", "5 ms ms"])
def test_bad_quantities(bad):
    with pytest.raises(UnitError):
        parse_quantity(bad)


# ---- formatting -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, dim, unit_text, text", [
    (0.0123, TIME, None, "12.3 ms"),
    (1.5e-7, TIME, None, "150 ns"),
    (2.5e-5, TIME, None, "25 us"),
    (3.0, TIME, None, "3 s"),
    (0.0, TIME, None, "0 s"),
    (2.5e9, BYTES, None, "2.328 GiB"),
    (512.0, BYTES, None, "512 B"),
    (2**20, BYTES, None, "1 MiB"),
    (3.35e12, BYTES * PER_S, None, "3.35 TB/s"),
    (1.2e12, FLOP * PER_S, None, "1.2 TFLOP/s"),
    (12345.0, TOKENS * PER_S, None, "12.35K tok/s"),
    (4900.0, TOKENS * PER_S, None, "4900 tok/s"),
    (1.15, Dim.NONE, None, "1.15"),
    (3.5e6, Dim.NONE, None, "3.5M"),
    (0.0012, TIME / TOKENS, None, "0.0012 s/tok"),
    (0.123, TIME, "ms", "123 ms"),
    (0.123, TIME, "s", "0.123 s"),
    (2.5e8, BYTES, "MB", "250 MB"),
    (2.5e8, BYTES, "MiB", "238.4 MiB"),
    (0.034, Dim.NONE, "%", "3.4%"),
    (1.234, Dim.NONE, "x", "1.234x"),
    (0.123, TIME, "MB", "123 ms"),            # a unit of another dimension is ignored
    (2.811e9, BYTES * PER_S, "TB/s", "2.811 GB/s"),   # not "0.002811 TB/s": a readable unit instead
    (25.0, TIME, "ms", "25 s"),                        # not "25000 ms"
    (0.5, TIME, "ms", "500 ms"),
    (math.nan, Dim.NONE, None, "nan"),
])
def test_format_quantity(value, dim, unit_text, text):
    assert format_quantity(value, dim, unit_text) == text
