"""The broken candidate (state reset every token) obeys the model contract and forgets; the state
checks S0-S4 and persistence across processes on the real candidate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.v5.state_checks import persistence_diff, s_checks

CFG = dict(vocab_size=50, d_model=32, n_layers=1, n_heads=2)


@pytest.fixture(scope="module", autouse=True)
def _builtins() -> None:
    load_builtins()


def test_reset_candidate_keeps_the_contract_and_forgets() -> None:
    m = resolve_backend("groundthink-reset")(**CFG)
    x = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    full = m(x)
    logits, state = m.prefill(x[:, :6], logits="all")
    steps = [logits]
    for t in range(6, 12):
        lg, state = m.step(x[:, t], state)
        steps.append(lg[:, None])
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-4)
    y = x.clone()
    y[:, :11] = (y[:, :11] + 1) % 50                     # change every earlier token
    torch.testing.assert_close(m(y)[:, -1], full[:, -1])  # the last prediction does not move
    g = resolve_backend("groundthink")(**CFG)
    assert m.num_params() == g.num_params()


def test_s_checks_on_the_candidate() -> None:
    m = resolve_backend("groundthink")(**CFG)
    r = s_checks(m, 50, 32)
    assert r["s0_tensors"] > 0 and r["s0_shapes_fixed"] == 1.0
    assert r["s1_finite"] == 1.0 and r["s3_diff"] < 1e-5 and r["s2_diff"] > 0.1
    assert 0 < r["s4_variance_ratio"] < float("inf")
    assert r["s2_context_diff"] > 0.1 and r["context_logit_diff"] > 0
    broken = s_checks(resolve_backend("groundthink-reset")(**CFG), 50, 32)
    assert broken["s2_context_diff"] == 0.0 and broken["context_logit_diff"] == 0.0
    t = resolve_backend("transformer-vanilla")(**CFG, max_seq_len=64)
    assert s_checks(t, 50, 16)["s0_tensors"] == 0  # a KV cache is not a recurrent state


def test_state_resumes_in_a_fresh_process(tmp_path: Path) -> None:
    cfg = {"backend": "groundthink", **CFG}
    m = resolve_backend("groundthink")(**CFG)
    assert persistence_diff(m, cfg, 50, 16, 6, tmp_path) < 1e-4
