"""The one-sided tolerance: 'no more than 5% slower than baseline' counts only a regression."""

from __future__ import annotations

import pytest

from pytest_goni.expect import ExpectError, parse_expect
from pytest_goni.units import TIME, Dim

RATE = Dim(tokens=1, time=-1)


@pytest.mark.parametrize("text, dim, ok, bad", [
    ("no more than 5% slower than baseline", TIME, [50, 100, 104.9], [105.1, 200]),
    ("no more than 5% slower than baseline", RATE, [200, 100, 95.1], [94.9, 10]),
    ("no more than 5% faster than baseline", TIME, [95.1, 300], [94.9]),
    ("no more than 10% above other.x", Dim.NONE, [0, 109.9], [110.1]),
    ("no more than 10% below other.x", Dim.NONE, [90.1, 1e9], [89.9]),
    ("no more than 2 ms above other.x", TIME, [100.0019], [100.0021]),
])
def test_only_the_named_direction_counts(text: str, dim: Dim, ok: list[float], bad: list[float]) -> None:
    exp = parse_expect(text)
    exp.resolve_side(dim)
    ref = 100.0
    assert all(exp.check(v, ref) for v in ok)
    assert not any(exp.check(v, ref) for v in bad)
    assert exp.describe().startswith("no more than")


def test_slower_needs_a_time_or_a_rate() -> None:
    exp = parse_expect("no more than 5% slower than baseline")
    assert exp.ref_is_baseline
    with pytest.raises(ExpectError, match="needs a time or a rate"):
        exp.resolve_side(Dim(bytes=1))


def test_breach_names_the_direction() -> None:
    exp = parse_expect("no more than 5% slower than baseline")
    exp.resolve_side(TIME)
    assert exp.breach(0.12, 0.1).startswith("20% above the reference")
    with pytest.raises(ExpectError, match="one-sided"):
        parse_expect("no more than 5% sideways of baseline")
