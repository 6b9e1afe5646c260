"""Generated request streams reach their tiers through the gate, with the seed's shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytest_goni.models.gate_policy import CODE_DEFAULT, DOCUMENTED, decide

from pytest_goni.tier_workload import SEED_MIXES, generate, parse_mix


@pytest.mark.parametrize("policy", [CODE_DEFAULT, DOCUMENTED], ids=lambda p: p.name)
@pytest.mark.parametrize("mix", sorted(SEED_MIXES))
def test_every_request_lands_at_its_class_tier(mix, policy):
    windows = torch.arange(40 * 8).view(40, 8)
    reqs = list(generate(windows, SEED_MIXES[mix], 2000, seed=3, lambda_min=policy.lambda_min))
    tiers = np.array([decide(r.gate, r.spike, policy).tier for r in reqs])
    assert (tiers == np.array([r.intended for r in reqs])).all()
    for tier, share in SEED_MIXES[mix].items():
        assert abs((tiers == tier).mean() - share) < 0.04
    for prev, cur in zip(reqs, reqs[1:]):  # lambda is a stream
        assert cur.gate.lam_prev == prev.gate.lam


def test_skips_repeat_the_last_computed_request():
    windows = torch.arange(20 * 4).view(20, 4)
    reqs = list(generate(windows, {3: 0.5, 0: 0.5}, 200, seed=0))
    last = None
    for r in reqs:
        if r.intended == 3 and last is not None:
            assert torch.equal(r.tokens, last)
        elif r.intended != 3:
            last = r.tokens


def test_mix_keys_and_sums_are_checked():
    assert parse_mix({"skip": 0.4, "reduced": 0.4, "normal": 0.2}) == {3: 0.4, 1: 0.4, 0: 0.2}
    with pytest.raises(ValueError, match="sum to 1"):
        parse_mix({"skip": 0.5})
    with pytest.raises(ValueError, match="not a tier"):
        parse_mix({"fast": 1.0})
