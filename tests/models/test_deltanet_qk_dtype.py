"""models.deltanet.QK_PROJ_DTYPE: q and k reach the delta rule in the projections' dtype.

CUDA autocast runs ``F.normalize``'s norm in float32, so without the switch the layer hands the Triton
kernels float32 q, k beside bf16 v (their float32 path: tf32x3 dots, spills). CPU autocast has no such
rule, so the tests emulate it by making ``F.normalize`` return float32 as CUDA autocast does.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytest_goni.models import deltanet


def _normalize_as_cuda_autocast(x, *args, **kwargs):
    """F.normalize as under CUDA bf16 autocast: the norm in float32, the division promoted to it."""
    return x / x.float().norm(dim=kwargs.get("dim", -1), keepdim=True).clamp_min(1e-12)


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("on", [False, True])
def test_qk_dtype_at_the_operator(monkeypatch, gated: bool, on: bool) -> None:
    monkeypatch.setattr(deltanet, "QK_PROJ_DTYPE", on)
    monkeypatch.setattr(F, "normalize", _normalize_as_cuda_autocast)
    mixer = deltanet.DeltaNetMixer(32, 2, gated)
    seen = {}

    def capture(q, k, v, *args, **kwargs):
        seen.update(q=q, k=k, v=v)
        return torch.zeros_like(v), None

    monkeypatch.setattr(deltanet.kernels, "gated_delta_rule" if gated else "delta_rule", capture)
    # the conv outputs as nn.Conv1d gives them under autocast: bf16, strided ([B, C, T] transposed)
    q, k, v = (torch.randn(2, 32, 5, dtype=torch.bfloat16).transpose(1, 2) for _ in range(3))
    mixer._mix(*mixer._qkv(q, k, v), *mixer._gates(torch.randn(2, 5, 32)))
    want = torch.bfloat16 if on else torch.float32
    assert seen["q"].dtype == seen["k"].dtype == want
    assert seen["v"].dtype == torch.bfloat16
    if on:  # one contiguous cast: the operator's own .contiguous() copies nothing more
        assert seen["q"].is_contiguous() and seen["k"].is_contiguous()
        ref = _normalize_as_cuda_autocast(q.unflatten(-1, (2, 16)), dim=-1).to(torch.bfloat16)
        assert torch.equal(seen["q"], ref)


@pytest.mark.parametrize("backend", ["deltanet", "gated-deltanet"])
def test_float32_model_unchanged(monkeypatch, backend: str) -> None:
    """Without autocast (CPU training, the reproducibility gates) the switch changes no bit."""
    from pytest_goni.registry import load_builtins, resolve_backend

    load_builtins()
    ids = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(0))
    out = {}
    for on in (False, True):
        monkeypatch.setattr(deltanet, "QK_PROJ_DTYPE", on)
        torch.manual_seed(0)
        model = resolve_backend(backend)(vocab_size=64, d_model=32, n_layers=2, n_heads=2)
        logits = model(ids)
        logits.float().pow(2).mean().backward()
        out[on] = (logits.detach(), [p.grad.clone() for p in model.parameters()])
    assert torch.equal(out[False][0], out[True][0])
    assert all(torch.equal(a, b) for a, b in zip(out[False][1], out[True][1]))
