"""The broken candidate (state reset every token) obeys the model contract and forgets; the state
checks S0-S4 and persistence across processes on the real candidate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.v5.state_checks import branch_memory, persistence_diff, s_checks, state_tensors

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


def test_s4_reads_the_branch_memories_not_the_input_buffers() -> None:
    """S4 compares Mamba-2's SSM state with RWKV-6's wkv state. The H200 run of 2026-12-01 (commit
    bd482ed) read every tensor under each branch: the Mamba side was its convolution buffer (variance
    ~0.15 against the SSM state's ~1e-5 at the 8M shape), a copy of the last inputs."""
    big = torch.full((1, 8, 3), 50.0) + torch.arange(24.0).view(1, 8, 3)
    a, b = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(1)), torch.ones(1, 2, 4, 4)
    b[0, 0] = 3.0
    state = [{"mamba2": {"S": a, "conv": big}, "rwkv6": {"shift": big[:, :, 0], "S": b}}, big[:, 0]]
    torch.testing.assert_close(branch_memory(state, "mamba"), a.reshape(-1))
    torch.testing.assert_close(branch_memory(state, "rwkv"), b.reshape(-1))
    assert branch_memory(state, "gla").numel() == 0
    m = resolve_backend("groundthink")(**CFG)
    x = torch.randint(0, 50, (1, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, st = m.eval().prefill(x)
    paths = dict(state_tensors(st))
    want = paths["layers.0.0.mamba2.S"].float().var() / paths["layers.0.0.rwkv6.S"].float().var()
    got = s_checks(m, 50, 32)
    assert got["s4_variance_ratio"] == pytest.approx(float(want), rel=1e-5)
    largest = max(paths.values(), key=lambda t: float(t.float().norm()))
    assert got["s1_norm_max"] == pytest.approx(float(largest.float().norm()), rel=1e-5)
    assert got["s1_rms_max"] == pytest.approx(got["s1_norm_max"] / largest.numel() ** 0.5, rel=1e-5)


def test_state_resumes_in_a_fresh_process(tmp_path: Path) -> None:
    cfg = {"backend": "groundthink", **CFG}
    m = resolve_backend("groundthink")(**CFG)
    assert persistence_diff(m, cfg, 50, 16, 6, tmp_path) < 1e-4


def test_param_match_counts_gpt2_at_the_training_context_like_v5_compare() -> None:
    """params and cmp build one GPT-2 per rung: n_positions = the training context (seq_len), so the
    totals agree (they differed by 512 x d: 20.11M vs 19.95M at 3.5M); the seed-table check keeps
    its formula's 1024 positions whatever seq_len is."""
    from types import SimpleNamespace

    from pytest_goni.measurements.v5_params import measure_param_match
    from pytest_goni.registry import load_builtins
    from pytest_goni.v5.rungs import rung_pair

    load_builtins()
    models = {"candidate": {"backend": "groundthink"}, "gpt2": {"backend": "gpt2"}}
    ctx = SimpleNamespace(models=models)
    params = {"candidate": "candidate", "baseline": "gpt2", "rungs": {"r3_5M": {"size": "3.5M"}},
              "match": "non_embedding"}
    at512 = measure_param_match(ctx, {**params, "seq_len": 512})
    at1024 = measure_param_match(ctx, params)
    pair = rung_pair(models, "candidate", "gpt2", "r3_5M", {"size": "3.5M"}, 50257, 512, "non_embedding")
    assert at512["r3_5M.baseline.params"].value() == pair.counts["baseline"][0]
    d = pair.baseline["d_model"]
    assert at1024["r3_5M.baseline.params"].value() - at512["r3_5M.baseline.params"].value() == 512 * d
    assert at512["r3_5M.baseline.params_non_embedding"].value() == pair.counts["baseline"][1]
    for k in ("formula", "true_total"):
        assert at512[f"seed_table.s3_5M.{k}"].value() == at1024[f"seed_table.s3_5M.{k}"].value()


@pytest.mark.parametrize("profile", ["cpu", "cpu-broken", "gpu", "gpu-full"])
def test_v5_spec_counts_params_at_the_context_cmp_trains(profile: str) -> None:
    from pytest_goni.registry import load_builtins
    from pytest_goni.spec import load_spec

    load_builtins()
    spec = load_spec(Path(__file__).resolve().parents[2] / "specs" / "v5.yaml", "specs/v5.yaml", profile=profile,
                     cuda=profile.startswith("gpu"))
    ms = spec.measurements
    assert ms["params"].params["seq_len"] == ms["cmp"].params["seq_len"]
