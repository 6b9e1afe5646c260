"""The gate policy is a pure function of its packets, in the crate's rule order (seeded random
packets for every rule, both threshold tables: the code's default and the documented one)."""

from __future__ import annotations

import dataclasses
import random

import pytest
from pytest_goni.models.gate_policy import (
    CODE_DEFAULT,
    DOCUMENTED,
    FLAG_FORCE_SAFE,
    FLAG_SKIP,
    POLICIES,
    Q15,
    GatePacket,
    SpikePacket,
    decide,
    get_policy,
)

N = 3000


def random_gate(rng: random.Random) -> GatePacket:
    return GatePacket(lam=rng.randint(0, 200), lam_prev=rng.choice([0, rng.randint(0, 200)]),
                      boundary_edges=rng.randint(0, 60), boundary_concentration_q15=rng.randint(0, Q15 - 1),
                      partition_count=rng.randint(0, 25), flags=rng.choice([0, 0, 0, FLAG_SKIP, FLAG_FORCE_SAFE, 3]))


def random_spike(rng: random.Random) -> SpikePacket | None:
    if rng.random() < 0.2:
        return None
    return SpikePacket(fired=rng.random() < 0.8, rate_q15=rng.randint(0, Q15 - 1), novelty_q15=rng.randint(0, Q15 - 1))


def expected(g: GatePacket, s: SpikePacket | None, p) -> tuple[int, str]:
    """The crate's rules written out independently, first match wins."""
    if g.flags & FLAG_SKIP:
        return 3, "skip-flag"
    if g.flags & FLAG_FORCE_SAFE:
        return 2, "force-safe"
    if s is not None and not s.fired:
        return 3, "spike-inactive"
    if s is not None and s.rate_q15 > p.spike_rate_q15_max:
        return 2, "spike-storm"
    if g.lam < p.lambda_min:
        return 2, "lambda-below-min"
    if g.lam_prev > 0 and g.lam < g.lam_prev and (g.lam_prev - g.lam) / g.lam_prev * Q15 > p.drop_ratio_q15_max + 1e-9:
        return 1, "lambda-drop"
    if (g.boundary_edges > p.boundary_edges_max or g.boundary_concentration_q15 > p.boundary_concentration_q15_max
            or g.partition_count > p.partitions_max):
        return 1, "boundary"
    return 0, "stable"


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_rule_in_order_over_random_packets(name):
    policy = get_policy(name)
    rng = random.Random(hash(name) & 0xFFFF)
    seen = set()
    for _ in range(N):
        g, s = random_gate(rng), random_spike(rng)
        d = decide(g, s, policy)
        assert (d.tier, d.reason) == expected(g, s, policy), (g, s)
        seen.add(d.reason)
    assert seen == {"skip-flag", "force-safe", "spike-inactive", "spike-storm", "lambda-below-min", "lambda-drop",
                    "boundary", "stable"}, "the random packets reach every rule"


def test_pure_same_inputs_same_decision_and_nothing_mutated():
    rng = random.Random(1)
    for _ in range(500):
        g, s = random_gate(rng), random_spike(rng)
        before = (dataclasses.astuple(g), s and dataclasses.astuple(s))
        assert decide(g, s) == decide(g, s)
        assert (dataclasses.astuple(g), s and dataclasses.astuple(s)) == before


def test_kv_writes_follow_the_policy_table():
    drop = GatePacket(lam=50, lam_prev=100)  # a 50% drop: above the code's 37.5%, at the doc's 50%
    edges = GatePacket(lam=100, lam_prev=100, boundary_edges=30)
    assert decide(edges, None, CODE_DEFAULT).kv_writes is True       # allow_kv_write_when_unstable
    assert decide(edges, None, DOCUMENTED).kv_writes is False
    assert decide(drop, None, CODE_DEFAULT).tier == 1 and decide(drop, None, CODE_DEFAULT).flush_kv
    assert decide(drop, None, DOCUMENTED).tier == 0                  # 50% is not above 50%
    for p in POLICIES.values():  # tier 2 and tier 3 never write
        assert not decide(GatePacket(100, flags=FLAG_FORCE_SAFE), None, p).kv_writes
        assert not decide(GatePacket(5), None, p).kv_writes
        assert not decide(GatePacket(100), SpikePacket(False), p).kv_writes


def test_code_and_documented_tables_differ_where_the_crate_does():
    diff = {f.name for f in dataclasses.fields(CODE_DEFAULT)
            if getattr(CODE_DEFAULT, f.name) != getattr(DOCUMENTED, f.name)}
    assert diff == {"name", "drop_ratio_q15_max", "boundary_concentration_q15_max", "partitions_max",
                    "spike_rate_q15_max", "allow_kv_write_when_unstable"}
    assert (CODE_DEFAULT.drop_ratio_q15_max, DOCUMENTED.drop_ratio_q15_max) == (12288, 16384)  # 37.5% vs 50%
    assert (CODE_DEFAULT.boundary_concentration_q15_max, DOCUMENTED.boundary_concentration_q15_max) == (20480, 24576)
    assert (CODE_DEFAULT.partitions_max, DOCUMENTED.partitions_max) == (10, 8)


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown gate policy 'strict'; known: code-default"):
        get_policy("strict")
