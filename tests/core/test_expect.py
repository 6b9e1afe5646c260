"""The expect: grammar: comparisons, ranges, tolerances, literals and their error messages."""

import math

import pytest

from pytest_goni.expect import ExpectError, parse_expect
from pytest_goni.units import BYTES, TIME, TOKENS, Dim, UnitError

PER_S = Dim(time=-1)


# ---- expectations -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, op, threshold, dim, described", [
    ("< 100 ms", "<", 0.1, TIME, "< 100 ms"),
    ("<100ms", "<", 0.1, TIME, "< 100ms"),
    ("<= 1.15", "<=", 1.15, None, "<= 1.15"),
    ("> 5K tok/s", ">", 5000.0, TOKENS * PER_S, "> 5K tok/s"),
    (">= 1.2x", ">=", 1.2, None, ">= 1.2x"),
    ("== 1", "==", 1.0, None, "== 1"),
    ("<= 200 MiB", "<=", 200.0 * 2**20, BYTES, "<= 200 MiB"),
    ("  >= 3.35 TB/s ", ">=", 3.35e12, BYTES * PER_S, ">= 3.35 TB/s"),
    ("< 5%", "<", 0.05, None, "< 5%"),
])
def test_comparisons(text, op, threshold, dim, described):
    e = parse_expect(text)
    assert (e.op, e.threshold, e.dim, e.text) == (op, threshold, dim, text)
    assert e.describe() == described


def test_comparison_checks_and_margins():
    lt = parse_expect("< 100 ms")
    assert lt.check(0.099) and not lt.check(0.1) and not lt.check(0.123)
    assert lt.margin(0.09) == pytest.approx(0.1)
    assert lt.margin(0.123) == pytest.approx(-0.23)
    assert lt.breach(0.123) == "> 100 ms by 23.0%"
    assert lt.breach(0.1) == ">= 100 ms by 0.0%"
    assert lt.breach(0.05) == ""
    le = parse_expect("<= 100 ms")
    assert le.check(0.1) and not le.check(0.1000001)
    gt = parse_expect("> 5K tok/s")
    assert gt.check(5001) and not gt.check(5000)
    assert gt.margin(6000) == pytest.approx(0.2) and gt.margin(4000) == pytest.approx(-0.2)
    assert gt.breach(4000) == "< 5K tok/s by 20.0%"
    ge = parse_expect(">= 1.2x")
    assert ge.check(1.2) and not ge.check(1.19)
    eq = parse_expect("== 1")
    assert eq.check(1.0) and eq.check(1.0 + 1e-12) and not eq.check(1.01)
    assert eq.margin(1.0) == 0.0 and eq.margin(1.1) == pytest.approx(-0.1)
    assert not lt.check(math.nan) and not gt.check(math.nan) and math.isnan(lt.margin(math.nan))


def test_zero_threshold_margin_is_absolute():
    e = parse_expect("<= 0")
    assert e.margin(-2.0) == 2.0 and e.margin(0.5) == -0.5


def test_between():
    e = parse_expect("between 0.3 and 0.4")
    assert (e.op, e.low, e.high, e.dim) == ("between", 0.3, 0.4, None)
    assert e.check(0.3) and e.check(0.4) and e.check(0.35)   # inclusive
    assert not e.check(0.29) and not e.check(0.41)
    assert e.margin(0.35) == pytest.approx(0.05 / 0.4)
    assert e.margin(0.45) < 0
    assert e.breach(0.45).startswith("above 0.4 by")
    assert e.breach(0.2).startswith("below 0.3 by")
    assert e.describe() == "between 0.3 and 0.4"
    ms = parse_expect("between 1 and 2 ms")   # one unit covers both ends
    assert (ms.low, ms.high, ms.dim) == (0.001, 0.002, TIME)
    mixed = parse_expect("between 500 us and 2 ms")
    assert (mixed.low, mixed.high) == (5e-4, 2e-3)


@pytest.mark.parametrize("text, fragment", [
    ("between 0.4 and 0.3", "low end 0.4 is above the high end 0.3"),
    ("between 1 ms and 2 MB", "different kinds"),
    ("between 1 ms", "not a range"),
])
def test_between_errors(text, fragment):
    with pytest.raises(ExpectError, match=fragment):
        parse_expect(text)


def test_within_relative_and_absolute():
    e = parse_expect("within 5% of train.gpt2.val_loss")
    assert (e.op, e.tolerance, e.relative) == ("within", 0.05, True)
    assert e.ref_expr is not None and e.ref_expr.paths() == {"train.gpt2.val_loss"}
    assert e.check(105.0, ref=100.0) and e.check(95.0, ref=100.0)     # |value - ref| <= 5% * |ref|
    assert not e.check(105.1, ref=100.0) and not e.check(94.9, ref=100.0)
    assert e.check(-104.0, ref=-100.0)
    assert e.margin(103.0, ref=100.0) == pytest.approx(0.4)           # 2 of the 5 points left
    assert e.margin(110.0, ref=100.0) == pytest.approx(-1.0)
    assert "10% away" in e.breach(110.0, ref=100.0) and "allowed 5%" in e.breach(110.0, ref=100.0)
    with pytest.raises(ValueError, match="needs the reference"):
        e.check(1.0)
    a = parse_expect("within 2 ms of speed.gpt2.latency * 0.5")
    assert (a.tolerance, a.relative, a.tolerance_dim) == (0.002, False, TIME)
    assert a.ref_expr.text == "speed.gpt2.latency * 0.5"
    assert a.check(0.011, ref=0.010) and not a.check(0.0121, ref=0.010)
    b = parse_expect("within 5% of baseline")
    assert b.ref_is_baseline and b.ref_expr is None
    assert b.describe() == "within 5% of baseline"


@pytest.mark.parametrize("text, col, fragment", [
    ("within 5 of x.y", 7, "ambiguous"),
    ("within 5% of x.y +", 18, "ends too soon"),
    ("within 5% of x..y", 15, "after '.'"),
    ("within 5%", 0, "not a tolerance"),
    ("within -5% of x.y", 7, "negative"),
])
def test_within_errors(text, col, fragment):
    with pytest.raises(ExpectError) as info:
        parse_expect(text)
    assert fragment in str(info.value)
    assert info.value.col == col


def test_literals():
    t = parse_expect("== true")
    assert t.literal is True and t.dim is None and t.describe() == "== true"
    assert t.check(True) and t.check(1.0) and not t.check(0.0) and not t.check(False)
    assert t.check("true") and t.margin(True) is None
    f = parse_expect("== False")
    assert f.literal is False and f.check(0.0) and not f.check(True)
    s = parse_expect('== "scale"')
    assert s.literal == "scale" and s.check("scale") and not s.check("fix first") and not s.check(1.0)
    assert s.describe() == '== "scale"'
    assert parse_expect("== 'fix first'").literal == "fix first"
    assert parse_expect("== scale").literal == "scale"
    assert parse_expect("== 1").literal is None


@pytest.mark.parametrize("text, fragment", [
    ("<== 1.2", "'<== 1.2' is not a comparison (did you mean '<= 1.2'?)"),
    ("=< 1.2", "did you mean '<= 1.2'?"),
    ("=> 5K tok/s", "did you mean '>= 5K tok/s'?"),
    ("= 1", "did you mean '== 1'?"),
    ("\u2264 1", "did you mean '<= 1'?"),
    ("!= 1", "is not a comparison (try '<= 1.2', '>= 5K tok/s'"),
    ("1.2", "has no comparison operator (write '<= 1.2', '>= 1.2' or '== 1.2')"),
    ("less than 5 ms", "write '< 5 ms'"),
    ("at least 1.2x", "write '>= 1.2x'"),
    ("<", "has no threshold after '<'"),
    ("", "expect is empty"),
    ("   ", "expect is empty"),
    ("fast", "has no comparison operator (try"),
])
def test_malformed_expect_hints(text, fragment):
    with pytest.raises(ExpectError) as info:
        parse_expect(text)
    assert fragment in str(info.value)


def test_unknown_unit_in_expect_names_it_with_column():
    with pytest.raises(UnitError) as info:
        parse_expect("< 100 mss")
    assert "unknown unit 'mss'" in str(info.value) and "did you mean 'ms'" in str(info.value)
    assert info.value.col == 2
    with pytest.raises(UnitError):
        parse_expect("between 1 ms and 2 parsecs")


def test_yaml_boolean_expect_is_an_equality():
    e = parse_expect(True)  # type: ignore[arg-type]
    assert (e.op, e.literal, e.describe()) == ("==", True, "== true")
    assert parse_expect(False).check(0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1.15, 5, None, ["<", 1]])
def test_expect_must_be_text(value):
    with pytest.raises(ExpectError, match="quote it"):
        parse_expect(value)  # type: ignore[arg-type]


def test_check_interval():
    lt = parse_expect("<= 1.15")
    assert lt.check_interval(1.0, 1.1) == "pass"
    assert lt.check_interval(1.0, 1.15) == "pass"
    assert lt.check_interval(1.16, 1.3) == "fail"
    assert lt.check_interval(0.9, 1.3) == "straddle"
    gt = parse_expect("> 5K tok/s")
    assert gt.check_interval(5100, 6000) == "pass"
    assert gt.check_interval(4000, 5000) == "fail"
    assert gt.check_interval(4000, 6000) == "straddle"
    bt = parse_expect("between 0.3 and 0.4")
    assert bt.check_interval(0.31, 0.39) == "pass"
    assert bt.check_interval(0.41, 0.5) == "fail"
    assert bt.check_interval(0.1, 0.2) == "fail"
    assert bt.check_interval(0.2, 0.5) == "straddle"   # covers the range but spills both sides
    assert bt.check_interval(0.35, 0.45) == "straddle"
    eq = parse_expect("== 1")
    assert eq.check_interval(1.0, 1.0) == "pass"
    assert eq.check_interval(1.1, 1.2) == "fail"
    assert eq.check_interval(0.9, 1.1) == "straddle"
    assert lt.check_interval(math.nan, 1.0) == "straddle"
    with pytest.raises(ValueError):
        parse_expect("within 5% of a.b").check_interval(0, 1)


def test_show_writes_values_in_the_threshold_unit():
    e = parse_expect("< 100 ms")
    assert e.show(0.123) == "123 ms"
    assert parse_expect("> 5K tok/s").show(4900.0) == "4900 tok/s"
    assert parse_expect("<= 200 MiB").show(300 * 2**20) == "300 MiB"
    assert parse_expect(">= 1.2x").show(1.5) == "1.5x"
    assert parse_expect("< 5%").show(0.034) == "3.4%"
