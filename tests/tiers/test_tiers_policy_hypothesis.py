"""The gate policy's rules as hypothesis properties (a dev dependency; skipped without it): each
rule fires exactly when it should, in the crate's order, for every policy table."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from pytest_goni.models.gate_policy import (  # noqa: E402
    FLAG_FORCE_SAFE,
    FLAG_SKIP,
    POLICIES,
    Q15,
    GatePacket,
    SpikePacket,
    decide,
)

policies = st.sampled_from(sorted(POLICIES.values(), key=lambda p: p.name))
gates = st.builds(GatePacket, lam=st.integers(0, 400), lam_prev=st.integers(0, 400),
                  boundary_edges=st.integers(0, 100), boundary_concentration_q15=st.integers(0, Q15 - 1),
                  partition_count=st.integers(0, 40), flags=st.integers(0, 3))
spikes = st.none() | st.builds(SpikePacket, fired=st.booleans(), rate_q15=st.integers(0, Q15 - 1),
                               novelty_q15=st.integers(0, Q15 - 1))
FAST = settings(max_examples=150, deadline=None)


@FAST
@given(gates, spikes, policies)
def test_skip_flag_wins_over_everything(g, s, p):
    if g.flags & FLAG_SKIP:
        assert decide(g, s, p).tier == 3 and decide(g, s, p).reason == "skip-flag"


@FAST
@given(gates, spikes, policies)
def test_force_safe_is_next(g, s, p):
    if g.flags == FLAG_FORCE_SAFE:
        assert (decide(g, s, p).tier, decide(g, s, p).reason) == (2, "force-safe")


@FAST
@given(gates.filter(lambda g: g.flags == 0), policies)
def test_an_inactive_spike_skips_whatever_lambda_says(g, p):
    assert decide(g, SpikePacket(False), p).tier == 3


@FAST
@given(gates.filter(lambda g: g.flags == 0), st.integers(0, Q15 - 1), policies)
def test_a_spike_storm_is_tier_2(g, rate, p):
    d = decide(g, SpikePacket(True, rate_q15=rate), p)
    if rate > p.spike_rate_q15_max:
        assert (d.tier, d.reason) == (2, "spike-storm")
    else:
        assert d.reason != "spike-storm"


@FAST
@given(gates.filter(lambda g: g.flags == 0), policies)
def test_low_lambda_quarantines(g, p):
    d = decide(g, None, p)
    assert (d.reason == "lambda-below-min") == (g.lam < p.lambda_min)
    if g.lam < p.lambda_min:
        assert d.tier == 2 and not d.kv_writes


@FAST
@given(st.integers(1, 400), st.integers(1, 400), policies)
def test_a_fast_lambda_drop_flushes_to_tier_1(lam_prev, lam, p):
    g = GatePacket(lam=lam, lam_prev=lam_prev, partition_count=1)
    d = decide(g, None, p)
    dropped = lam < lam_prev and (lam_prev - lam) * Q15 // lam_prev > p.drop_ratio_q15_max
    if lam >= p.lambda_min:
        assert (d.reason == "lambda-drop") == dropped
        if dropped:
            assert d.tier == 1 and d.flush_kv and d.kv_writes == p.allow_kv_write_when_unstable


@FAST
@given(st.integers(0, 100), st.integers(0, Q15 - 1), st.integers(0, 40), policies)
def test_a_busy_boundary_reduces_scope(edges, conc, parts, p):
    g = GatePacket(lam=100, lam_prev=100, boundary_edges=edges, boundary_concentration_q15=conc,
                   partition_count=parts)
    busy = edges > p.boundary_edges_max or conc > p.boundary_concentration_q15_max or parts > p.partitions_max
    d = decide(g, None, p)
    assert d.tier == (1 if busy else 0)
    assert d.reason == ("boundary" if busy else "stable")
