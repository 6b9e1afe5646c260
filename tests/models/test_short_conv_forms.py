"""ShortConv's three parallel forms (cuDNN's depthwise nn.Conv1d, K shifted multiply-adds that
torch.compile can fuse, and the Triton kernel with its backward) compute the same function, alone and
inside a model, forward and backward."""

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


@pytest.mark.parametrize("form", ["shifted", "triton"])  # "triton" off CUDA: the torch definition
def test_under_autocast_the_other_forms_return_the_autocast_dtype(form, monkeypatch):
    conv = ShortConv(8, 4)
    x = torch.randn(2, 7, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = conv(x)
        monkeypatch.setattr(layers, "SHORT_CONV_FORM", form)
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


@pytest.mark.parametrize("name", ["gated-deltanet", "mamba2"])
def test_a_model_trains_the_same_through_the_triton_form(name, monkeypatch):
    """SHORT_CONV_FORM = "triton" (the Triton conv with its backward, SiLU fused) against cuDNN's form, the
    rest of the model on the same path (every operator dispatched as on CUDA: Triton's interpreter on CPU)."""
    import os

    from pytest_goni.kernels import ops

    cuda = torch.cuda.is_available()
    if not cuda and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1")
    dev = "cuda" if cuda else "cpu"
    cfg = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2}
    torch.manual_seed(0)
    model = resolve_backend(name)(**cfg).to(dev)
    x = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1)).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    runs = []
    for form in ("conv1d", "triton"):
        monkeypatch.setattr(layers, "SHORT_CONV_FORM", form)
        with ops.dispatch_as("cuda"):
            out = model(x)
            runs.append((out, torch.autograd.grad(out.square().mean(), params)))
    (ref, g_ref), (out, g_out) = runs
    tol = 5e-3 if cuda else 1e-5  # on the GPU the model's other kernels use tf32 dots (and cuDNN may too)
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=10 * tol, atol=tol * b.abs().max().item())


def test_the_triton_form_compiles_as_one_graph(monkeypatch):
    """ShortConv's "triton" form under torch.compile(fullgraph=True): no graph break around the kernels
    (aot_eager: Dynamo and AOTAutograd, no Inductor codegen)."""
    import os

    from pytest_goni.kernels import ops

    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1")
    monkeypatch.setattr(layers, "SHORT_CONV_FORM", "triton")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    conv = ShortConv(12, 4, bias=True).to(dev)
    x = torch.randn(2, 9, 12, device=dev, requires_grad=True)
    with ops.dispatch_as("cuda"):
        out = torch.compile(conv, backend="aot_eager", fullgraph=True)(x)
        ref = conv(x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0])


def test_an_unknown_form_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(layers, "SHORT_CONV_FORM", "cudnn")
    with pytest.raises(ValueError, match="SHORT_CONV_FORM must be one of"):
        ShortConv(4)(torch.zeros(1, 3, 4))
