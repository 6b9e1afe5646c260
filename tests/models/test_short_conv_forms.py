"""ShortConv's two parallel forms (cuDNN's depthwise nn.Conv1d, and K shifted multiply-adds that
torch.compile can fuse) compute the same function, alone and inside a model, forward and backward."""

from __future__ import annotations

import pytest
import torch
from pytest_goni.models import layers
from pytest_goni.models.layers import ShortConv, causal_conv_shifted

from pytest_goni.registry import load_builtins, resolve_backend

load_builtins()


@pytest.mark.parametrize("t", [2, 3, 9])  # shorter than, equal to (K-1), longer than the window
@pytest.mark.parametrize("bias", [False, True])
def test_shifted_form_is_the_conv1d_form(t, bias):
    torch.manual_seed(t)
    conv = ShortConv(6, 4, bias=bias, activation=False).double()
    x = torch.randn(2, t, 6, dtype=torch.float64)
    torch.testing.assert_close(causal_conv_shifted(x, conv.conv.weight, conv.conv.bias), conv(x))


def test_the_switch_changes_the_form_not_the_function(monkeypatch):
    conv = ShortConv(5, 4, bias=True).double()
    x = torch.randn(3, 11, 5, dtype=torch.float64, requires_grad=True)
    ref = conv(x)
    g_ref = torch.autograd.grad(ref.square().sum(), (x, conv.conv.weight, conv.conv.bias))
    monkeypatch.setattr(layers, "SHORT_CONV_FORM", "shifted")
    out = conv(x)
    g_out = torch.autograd.grad(out.square().sum(), (x, conv.conv.weight, conv.conv.bias))
    torch.testing.assert_close(out, ref)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b)


def test_under_autocast_the_shifted_form_returns_the_autocast_dtype(monkeypatch):
    conv = ShortConv(8, 4)
    x = torch.randn(2, 7, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = conv(x)
        monkeypatch.setattr(layers, "SHORT_CONV_FORM", "shifted")
        out = conv(x)
    assert out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("name", ["gated-deltanet", "mamba2"])
def test_a_model_trains_the_same_through_either_form(name, monkeypatch):
    cfg = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2}
    torch.manual_seed(0)
    model = resolve_backend(name)(**cfg).double()
    x = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
    params = [p for p in model.parameters() if p.requires_grad]
    ref = model(x)
    g_ref = torch.autograd.grad(ref.square().mean(), params)
    monkeypatch.setattr(layers, "SHORT_CONV_FORM", "shifted")
    out = model(x)
    g_out = torch.autograd.grad(out.square().mean(), params)
    torch.testing.assert_close(out, ref)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b)
