"""Request streams for the mincut-gated tiers: token windows with generated spike and lambda packets.

The tiers seed (../shared/seeds/mincut-gated-tiers.md, "Workload Models", lines 148-243) describes
four workloads by the share of requests at each tier: streaming 70/20/10, interactive 40/40/20,
continuous 10/50/40, safety-critical 5/30/65 (tier 3 / tier 1 / tier 0). A generator here draws
each request's class with those shares and emits packets that send it there *through the gate*
(:func:`pytest_goni.models.gate_policy.decide`), never by setting the tier:

- skip (tier 3): the spike packet did not fire; the tokens repeat an earlier request, so the
  cached logits answer (``repeat``: the share of skips that repeat; the rest are new inputs that
  the cheap scorer answers);
- reduced (tier 1): lambda falls by 55-62% from the previous request (above both the code's 37.5%
  and the documented 50% drop limits) when it is high enough to stay above ``lambda_min``; else the
  cut has 25-40 boundary edges (above 20);
- safe (tier 2): a force-safe flag, a spike storm (rate 85-99%) or lambda below ``lambda_min``;
- normal (tier 0): a stable lambda (at most a 20% drop), a quiet boundary, a firing spike at 5-45%.

Lambda is a stream: each packet's ``lam_prev`` is the previous request's lambda.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from pytest_goni.models.gate_policy import (
    FLAG_FORCE_SAFE,
    Q15,
    TIER_NORMAL,
    TIER_REDUCED,
    TIER_SAFE,
    TIER_SKIP,
    GatePacket,
    SpikePacket,
)

#: The seed's workload mixes as shares per tier (lines 150-154, 175-179, 199-203, 223-227).
SEED_MIXES: dict[str, dict[int, float]] = {
    "streaming": {TIER_SKIP: 0.70, TIER_REDUCED: 0.20, TIER_NORMAL: 0.10},
    "interactive": {TIER_SKIP: 0.40, TIER_REDUCED: 0.40, TIER_NORMAL: 0.20},
    "continuous": {TIER_SKIP: 0.10, TIER_REDUCED: 0.50, TIER_NORMAL: 0.40},
    "safety_critical": {TIER_SKIP: 0.05, TIER_REDUCED: 0.30, TIER_NORMAL: 0.65},
}


@dataclass(frozen=True)
class Request:
    """One request: its tokens [T], its packets, and the tier its class aims at (for checking)."""

    tokens: torch.Tensor
    gate: GatePacket
    spike: SpikePacket
    intended: int


def parse_mix(mix: dict[str | int, float]) -> dict[int, float]:
    """Shares keyed by tier (0-3) from a mapping keyed by tier number or name; they must sum to 1."""
    names = {"normal": TIER_NORMAL, "reduced": TIER_REDUCED, "safe": TIER_SAFE, "skip": TIER_SKIP}
    out: dict[int, float] = {}
    for key, share in mix.items():
        tier = names.get(str(key), None) if not isinstance(key, int) else key
        if tier is None and str(key).isdigit():
            tier = int(key)
        if tier not in (0, 1, 2, 3):
            raise ValueError(f"mix key {key!r} is not a tier (0-3 or normal/reduced/safe/skip)")
        out[tier] = out.get(tier, 0.0) + float(share)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6 or any(s < 0 for s in out.values()):
        raise ValueError(f"mix shares must be >= 0 and sum to 1, got {dict(mix)} (sum {total:g})")
    return out


def _spike(rng: np.random.Generator, lo: float, hi: float, fired: bool = True, top_k: int = 4) -> SpikePacket:
    idx = tuple(int(i) for i in np.sort(rng.choice(64, size=top_k, replace=False)))
    w = rng.random(top_k)
    return SpikePacket(fired=fired, rate_q15=int(rng.uniform(lo, hi) * Q15),
                       novelty_q15=int(rng.uniform(0.1, 0.9) * Q15),
                       top_idx=idx, top_w_q15=tuple(int(x * (Q15 - 1) / w.sum()) for x in w))


def generate(windows: torch.Tensor, mix: dict[int, float], n: int, seed: int = 0, lambda_min: int = 30,
             repeat: float = 1.0) -> Iterator[Request]:
    """``n`` requests over token ``windows`` [N, T] with the class shares of ``mix``.

    Computing requests take fresh windows in order (wrapping around); a skip repeats the latest
    computed request's tokens with probability ``repeat``, else takes a fresh window.
    """
    rng = np.random.default_rng(seed)
    tiers = sorted(mix)
    probs = np.array([mix[t] for t in tiers])
    classes = rng.choice(tiers, size=n, p=probs / probs.sum())
    lam_prev = 100
    nxt = 0
    last: torch.Tensor | None = None
    for cls in classes:
        cls = int(cls)
        fresh = windows[nxt % len(windows)]
        if cls == TIER_SKIP:
            if last is not None and rng.random() < repeat:
                tokens = last
            else:
                tokens, nxt = fresh, nxt + 1
            gate = GatePacket(lam=lam_prev, lam_prev=lam_prev)
            yield Request(tokens, gate, _spike(rng, 0.0, 0.03, fired=False), cls)
            continue
        tokens, nxt = fresh, nxt + 1
        last = tokens
        if cls == TIER_NORMAL:
            if lam_prev < 80:
                lam = int(rng.uniform(80, 120))
            else:
                lam = int(np.clip(lam_prev * rng.uniform(0.8, 1.2), 60, 200))
            gate = GatePacket(lam, lam_prev, boundary_edges=int(rng.integers(0, 13)),
                              boundary_concentration_q15=int(rng.uniform(0, 0.5) * Q15),
                              partition_count=int(rng.integers(1, 5)))
            spike = _spike(rng, 0.05, 0.45)
        elif cls == TIER_REDUCED:
            if lam_prev >= 90:
                lam = max(lambda_min + 1, int(lam_prev * rng.uniform(0.38, 0.45)))
                gate = GatePacket(lam, lam_prev, boundary_edges=int(rng.integers(0, 13)),
                                  partition_count=int(rng.integers(1, 5)))
            else:
                lam = int(rng.uniform(80, 120))
                gate = GatePacket(lam, lam_prev, boundary_edges=int(rng.integers(25, 41)),
                                  partition_count=int(rng.integers(1, 5)))
            spike = _spike(rng, 0.05, 0.45)
        else:  # safe
            route = int(rng.integers(0, 3))
            lam = int(rng.uniform(2, lambda_min - 1)) if route == 2 else lam_prev
            gate = GatePacket(lam, lam_prev, flags=FLAG_FORCE_SAFE if route == 0 else 0)
            spike = _spike(rng, 0.85, 0.99) if route == 1 else _spike(rng, 0.05, 0.45)
        lam_prev = lam
        yield Request(tokens, gate, spike, cls)
