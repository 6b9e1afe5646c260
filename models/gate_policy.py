"""The gate of the mincut-gated transformer: packets in, a compute tier out, as a pure function.

The rule order and the thresholds are those of the Rust crate the tiers seed documents
(``ruvector-mincut-gated-transformer``: ``GateController::evaluate`` in src/gate.rs, presets in
src/config.rs; see ../shared/REFERENCES.md section 1). Checked in this order, the first match wins:

1. ``gate.flags & FLAG_SKIP``                        -> tier 3 (skip)
2. ``gate.flags & FLAG_FORCE_SAFE``                  -> tier 2 (freeze writes)
3. a spike packet is present and did not fire       -> tier 3 (skip)
4. a spike packet's rate is above ``spike_rate_q15_max``   -> tier 2 (spike storm)
5. ``lambda < lambda_min``                           -> tier 2 (quarantine updates)
6. lambda dropped faster than ``drop_ratio_q15_max`` -> tier 1 (flush KV)
7. boundary edges, concentration or partitions above their limits -> tier 1 (reduce scope)
8. otherwise                                         -> tier 0

Two threshold tables disagree in the crate: ``GatePolicy::default()`` in the code (drop ratio 37.5%,
concentration 62.5%, 10 partitions, spike rate 50%, KV writes allowed when unstable) and the
README's "Gate Policy" block (50%, 75%, 8, 80%, no KV writes when unstable). :data:`CODE_DEFAULT` is
the default here (it is what runs); :data:`DOCUMENTED` is the README's table, under that name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Q15 = 32768  # fixed point: 1.0 == 32768

FLAG_SKIP = 1 << 0
FLAG_FORCE_SAFE = 1 << 1

TIER_NORMAL, TIER_REDUCED, TIER_SAFE, TIER_SKIP = 0, 1, 2, 3


@dataclass(frozen=True)
class GatePacket:
    """Coherence signals of one request: lambda (the min cut, see :mod:`.mincut`), the previous
    request's lambda, and the cut's boundary edges, concentration (Q15) and partition count."""

    lam: int
    lam_prev: int = 0
    boundary_edges: int = 0
    boundary_concentration_q15: int = 0
    partition_count: int = 1
    flags: int = 0

    def drop_ratio_q15(self) -> int:
        """How far lambda fell since the previous request, as a Q15 fraction of the previous one
        (0 when it rose or there is no previous value)."""
        if self.lam_prev <= 0 or self.lam >= self.lam_prev:
            return 0
        return (self.lam_prev - self.lam) * Q15 // self.lam_prev


@dataclass(frozen=True)
class SpikePacket:
    """Event signals of one request: whether anything fired, the firing rate and novelty (Q15) and
    the top-k positions with their weights (the crate's ``SpikePacket``, up to 16 entries)."""

    fired: bool
    rate_q15: int = 0
    novelty_q15: int = 0
    top_idx: tuple[int, ...] = field(default_factory=tuple)
    top_w_q15: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds of the rule-based gate (names and units as in the crate's ``GatePolicy``)."""

    name: str
    lambda_min: int
    drop_ratio_q15_max: int
    boundary_edges_max: int
    boundary_concentration_q15_max: int
    partitions_max: int
    spike_rate_q15_max: int
    spike_novelty_q15_min: int
    allow_kv_write_when_unstable: bool


#: ``GatePolicy::default()`` in the crate's src/config.rs: what its code runs.
CODE_DEFAULT = GatePolicy("code-default", lambda_min=30, drop_ratio_q15_max=12288, boundary_edges_max=20,
                          boundary_concentration_q15_max=20480, partitions_max=10, spike_rate_q15_max=16384,
                          spike_novelty_q15_min=2048, allow_kv_write_when_unstable=True)
#: The crate README's "Gate Policy" block (and THEORY.md): what its documentation says.
DOCUMENTED = GatePolicy("documented", lambda_min=30, drop_ratio_q15_max=16384, boundary_edges_max=20,
                        boundary_concentration_q15_max=24576, partitions_max=8, spike_rate_q15_max=26214,
                        spike_novelty_q15_min=2048, allow_kv_write_when_unstable=False)
#: ``GatePolicy::conservative()`` and ``permissive()`` of src/config.rs.
CONSERVATIVE = GatePolicy("conservative", lambda_min=50, drop_ratio_q15_max=8192, boundary_edges_max=10,
                          boundary_concentration_q15_max=16384, partitions_max=5, spike_rate_q15_max=8192,
                          spike_novelty_q15_min=4096, allow_kv_write_when_unstable=False)
PERMISSIVE = GatePolicy("permissive", lambda_min=20, drop_ratio_q15_max=16384, boundary_edges_max=50,
                        boundary_concentration_q15_max=24576, partitions_max=20, spike_rate_q15_max=24576,
                        spike_novelty_q15_min=1024, allow_kv_write_when_unstable=True)

POLICIES = {p.name: p for p in (CODE_DEFAULT, DOCUMENTED, CONSERVATIVE, PERMISSIVE)}


def get_policy(name: str) -> GatePolicy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown gate policy {name!r}; known: {', '.join(POLICIES)}") from None


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: the tier, the rule that chose it (1-8 above, by name) and whether the
    request may write its keys and values to the session's KV cache."""

    tier: int
    reason: str
    kv_writes: bool
    flush_kv: bool = False


def decide(gate: GatePacket, spike: SpikePacket | None, policy: GatePolicy = CODE_DEFAULT) -> Decision:
    """The tier for one request, by the crate's rules in the crate's order (module docstring)."""
    unstable_writes = policy.allow_kv_write_when_unstable
    if gate.flags & FLAG_SKIP:
        return Decision(TIER_SKIP, "skip-flag", kv_writes=False)
    if gate.flags & FLAG_FORCE_SAFE:
        return Decision(TIER_SAFE, "force-safe", kv_writes=False)
    if spike is not None and not spike.fired:
        return Decision(TIER_SKIP, "spike-inactive", kv_writes=False)
    if spike is not None and spike.rate_q15 > policy.spike_rate_q15_max:
        return Decision(TIER_SAFE, "spike-storm", kv_writes=False)
    if gate.lam < policy.lambda_min:
        return Decision(TIER_SAFE, "lambda-below-min", kv_writes=False)
    if gate.drop_ratio_q15() > policy.drop_ratio_q15_max:
        return Decision(TIER_REDUCED, "lambda-drop", kv_writes=unstable_writes, flush_kv=True)
    if (gate.boundary_edges > policy.boundary_edges_max
            or gate.boundary_concentration_q15 > policy.boundary_concentration_q15_max
            or gate.partition_count > policy.partitions_max):
        return Decision(TIER_REDUCED, "boundary", kv_writes=unstable_writes)
    return Decision(TIER_NORMAL, "stable", kv_writes=True)
