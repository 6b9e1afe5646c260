"""The Triton causal depthwise conv for training (kernels/triton/short_conv.py): forward and every gradient
against autograd through the float64 definition (kernels/short_conv.py), on fresh random inputs.

Without CUDA these run in Triton's interpreter (TRITON_INTERPRET=1, set by the root conftest) at small
fp32 / fp16 shapes, every memory access checked (kernels/memory_bounds.py); tiles of 16 so that T and C
are not multiples of a tile and several programs write partial weight sums. Marked `gpu`: bf16 at the
8M models' widths.
"""

import os

import pytest
import torch
from pytest_goni.kernels.short_conv import causal_conv_shifted, causal_conv_torch, causal_conv_triton
from pytest_goni.kernels.testing import compile_sm90, rel_err

from pytest_goni import kernels

pytest.importorskip("triton")
CUDA = torch.cuda.is_available()
if not CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)

DEV = "cuda" if CUDA else "cpu"
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def _checked():
    if CUDA:
        import contextlib
        return contextlib.nullcontext()
    from pytest_goni.kernels.memory_bounds import checked_memory
    return checked_memory()


def _inputs(b, t, c, k, dtype, bias, seed, x_stride_pad=0):
    """x [B, T, C] (a column slice of a wider tensor when x_stride_pad: a split projection), weight [C, K],
    bias [C]; the parameters in float32 as a model holds them."""
    g = torch.Generator().manual_seed(seed)
    # sliced after the move: .to() onto another device copies into a contiguous tensor (the H200 run caught it)
    x = torch.randn(b, t, c + x_stride_pad, generator=g).to(DEV, dtype)[..., x_stride_pad:]
    w = (torch.randn(c, k, generator=g) / k ** 0.5).to(DEV)
    bb = torch.randn(c, generator=g).to(DEV) if bias else None
    dy = torch.randn(b, t, c, generator=g).to(DEV, dtype)
    return x, w, bb, dy


def _grads(fn, x, w, b, dy, double):
    leaves = [x, w] + ([b] if b is not None else [])
    leaves = [(a.double() if double else a).detach().requires_grad_(True) for a in leaves]
    y = fn(leaves[0], leaves[1], leaves[2] if b is not None else None)
    grads = torch.autograd.grad(y, leaves, dy.to(y.dtype))
    return y, grads


def _check(x, w, b, dy, act, dtype, **blocks):
    with _checked():
        y, g = _grads(lambda x, w, b: causal_conv_triton(x, w, b, act, **blocks), x, w, b, dy, double=False)
    y_ref, g_ref = _grads(lambda x, w, b: causal_conv_torch(x, w, b, act), x, w, b, dy, double=True)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert rel_err(y, y_ref) <= TOL[dtype], "y"
    for name, a, r, p in zip(("dx", "dweight", "dbias"), g, g_ref, (x, w, b)):
        assert a.dtype == p.dtype, name
        assert rel_err(a, r) <= TOL[dtype], f"{name}: {rel_err(a, r):.2e}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("act,bias", [(True, True), (True, False), (False, True)])
def test_forward_and_grads_match_float64(dtype, act, bias):
    """B 2, T 37 and C 20 (not multiples of the 16-wide tiles: 3 x 2 tiles per row), K 4 as the models."""
    x, w, b, dy = _inputs(2, 37, 20, 4, dtype, bias, seed=hash((str(dtype), act, bias)) % 1000)
    _check(x, w, b, dy, act, dtype, block_t=16, block_c=16)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_other_kernel_widths(k):
    x, w, b, dy = _inputs(3, 21, 9, k, torch.float32, True, seed=k)
    _check(x, w, b, dy, True, torch.float32, block_t=16, block_c=16)


@pytest.mark.parametrize("t", [1, 2, 5])
def test_sequences_shorter_than_the_window_with_default_tiles(t):
    """T < K - 1 and T = 1 (a prefill of one token); the default tile sizes; a strided x (unit stride over C)."""
    x, w, b, dy = _inputs(2, t, 24, 4, torch.float32, True, seed=10 + t, x_stride_pad=8)
    assert not x.is_contiguous()
    _check(x, w, b, dy, True, torch.float32)


def test_a_strided_output_gradient():
    """dy with a non-unit stride over tokens (a slice of a longer gradient) is read in place."""
    x, w, b, dy = _inputs(2, 19, 16, 4, torch.float32, False, seed=5)
    dy_long = torch.randn(2, 38, 16, device=DEV)
    dy = dy_long[:, ::2]
    _check(x, w, b, dy, True, torch.float32, block_t=16, block_c=16)


def test_the_definition_is_the_nn_conv1d_and_gradcheck_passes():
    """causal_conv_torch is ShortConv's cuDNN form (conv then SiLU), and its gradients pass gradcheck."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    conv = torch.nn.functional.conv1d(x.transpose(1, 2), w[:, None], b, padding=3, groups=5)[..., :7]
    torch.testing.assert_close(causal_conv_torch(x, w, b, True), torch.nn.functional.silu(conv.transpose(1, 2)))
    torch.testing.assert_close(causal_conv_shifted(x, w[:, None], b), conv.transpose(1, 2))
    assert torch.autograd.gradcheck(lambda x, w, b: causal_conv_torch(x, w, b, True), (x, w, b))


def test_dispatcher_paths_and_bad_input():
    """kernels.causal_conv: "triton" runs the kernel, "torch" the definition, the same values; bad shapes
    are a one-line ValueError."""
    x, w, b, _ = _inputs(1, 9, 8, 4, torch.float32, True, seed=7)
    with _checked():
        y = kernels.causal_conv(x, w, b, backend="triton")
    torch.testing.assert_close(y, kernels.causal_conv(x, w, b, backend="torch"), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"weight must be \[C=8, K\]"):
        kernels.causal_conv(x, w[:, :0])
    with pytest.raises(ValueError, match="weight must be"):
        kernels.causal_conv(x, torch.zeros(8, 9, device=DEV))
    with pytest.raises(ValueError, match="bias must have shape"):
        kernels.causal_conv(x, w, b[:3])
    with pytest.raises(ValueError, match="x must have 3 dims"):
        kernels.causal_conv(x[0], w)


def test_compiles_into_one_graph_with_its_autograd():
    """The custom op: Dynamo traces a block through it without a graph break (fullgraph) and AOTAutograd
    gets its backward from the registered formula (aot_eager: no Inductor codegen, seconds on CPU)."""
    x, w, b, dy = _inputs(2, 11, 8, 4, torch.float32, True, seed=8)

    def block(x, w, b):  # through the dispatcher's checks, as ShortConv's "triton" form calls it
        return kernels.causal_conv(x * 2.0, w, b, True, backend="triton").square()

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    y, g = _grads(compiled, x, w, b, dy, double=False)
    y_ref, g_ref = _grads(block, x, w, b, dy, double=False)
    torch.testing.assert_close(y, y_ref)
    for a, r in zip(g, g_ref):
        torch.testing.assert_close(a, r)


def test_the_custom_ops_pass_opcheck():
    """torch.library.opcheck: schema, fake (meta) shapes, the autograd registration and AOT dispatch of both
    ops agree with what the kernels return."""
    x, w, b, dy = _inputs(2, 9, 8, 4, torch.float32, True, seed=9)
    x, w, b = (a.requires_grad_() for a in (x, w, b))
    with _checked():
        torch.library.opcheck(torch.ops.goni.short_conv_fwd.default, (x, w, b, True, 16, 16))
        torch.library.opcheck(torch.ops.goni.short_conv_bwd.default,
                              (dy, x.detach(), w.detach(), None, False, 16, 16))


_SM90 = """
fwd = ["x_ptr", "w_ptr", "b_ptr", "y_ptr", "T", "C", "sxb", "sxt", "syb", "syt"]
bwd = ["x_ptr", "w_ptr", "b_ptr", "dy_ptr", "dx_ptr", "dwp_ptr", "T", "C", "NT", "sxb", "sxt", "sdb", "sdt",
       "sdxb", "sdxt"]
for has_b in (False, True):  # constexprs in the kernels' argument order
    tiles = {"ACT": True, "BT": 64, "BC": 64}
    compile90(m._short_conv_fwd, fwd, ["*bf16", "*fp32", "*fp32", "*bf16"] + ["i32"] * 6,
              {"K": 4, "HAS_B": has_b, **tiles})
    compile90(m._short_conv_bwd, bwd, ["*bf16", "*fp32", "*fp32", "*bf16", "*bf16", "*fp32"] + ["i32"] * 9,
              {"K": 4, "KB": 4 + has_b, "HAS_B": has_b, **tiles})
"""


def test_kernels_compile_for_sm90_without_a_gpu():
    """The compiled path (not the interpreter) accepts both kernels at the models' signature (bf16 x, float32
    parameters, with and without bias)."""
    pytest.importorskip("triton.backends.nvidia")
    status, err = compile_sm90("short_conv", _SM90)
    if status == "no-ptxas":
        pytest.skip("this Triton install carries no ptxas")
    assert status == "ok", err


@pytest.mark.gpu
@pytest.mark.parametrize("c,bias", [(768, False), (896, True)])
def test_bf16_at_the_8m_model_widths(c, bias):
    """B 16, T 1024, bf16 input, float32 parameters (gated-deltanet's v conv; mamba2's conv with bias):
    against the float64 definition, and against ShortConv's cuDNN form under autocast."""
    x, w, b, dy = _inputs(16, 1024, c, 4, torch.bfloat16, bias, seed=c)
    _check(x, w, b, dy, True, torch.bfloat16)
    from pytest_goni.models import layers

    conv = layers.ShortConv(c, 4, bias=bias).to(DEV)
    with torch.no_grad():
        conv.conv.weight.copy_(w[:, None])
        if bias:
            conv.conv.bias.copy_(b)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        cudnn = conv(x)
    y = causal_conv_triton(x, w, b, True)
    assert rel_err(y, cudnn) <= TOL[torch.bfloat16]
