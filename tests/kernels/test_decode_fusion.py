"""The decode-step elementwise fusions (kernels/decode_fusion.py): Triton against the plain-torch
definition computed in float64, on strided rows as a merged projection's split gives them.

Without CUDA these run in Triton's interpreter (TRITON_INTERPRET=1, set by the root conftest) at
small fp32 shapes; odd widths exercise the masks.
"""

import os

import pytest
import torch
import torch.nn.functional as F
from pytest_goni.kernels import decode_fusion as df
from pytest_goni.kernels.testing import compile_sm90

from pytest_goni import kernels

pytest.importorskip("triton")
CUDA = torch.cuda.is_available()
if not CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)

DEV = "cuda" if CUDA else "cpu"
TOL = 2e-3 if CUDA else 1e-5


def rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(DEV)


def _f64(t):
    return None if t is None else t.double()


@pytest.mark.parametrize("layer", [False, True])
@pytest.mark.parametrize("with_r,with_w,with_b", [(True, True, True), (True, True, False), (False, True, False),
                                                  (True, False, False)])
def test_add_norm_matches_the_definition_on_strided_rows(layer, with_r, with_w, with_b):
    d = 37
    wide = rand(3, 2 * d + 5, seed=1)
    x, r = wide[:, 3:3 + d], (rand(3, d, seed=2) if with_r else None)  # x: a strided view
    w, b = (rand(d, seed=3) if with_w else None), (rand(d, seed=4) if with_b else None)
    h, y = df.add_norm(x, r, w, b, 1e-5, layer, backend="triton")
    h_ref, y_ref = df.add_norm_torch(x.double(), _f64(r), _f64(w), _f64(b), 1e-5, layer)
    torch.testing.assert_close(h.double(), h_ref, atol=TOL, rtol=TOL)
    torch.testing.assert_close(y.double(), y_ref, atol=TOL, rtol=TOL)
    assert h.dtype == y.dtype == x.dtype


def test_add_norm_is_the_modules_it_replaces():
    d = 24
    x, r = rand(2, d, seed=5), rand(2, d, seed=6)
    rms, ln = torch.nn.RMSNorm(d, eps=1e-5).to(DEV), torch.nn.LayerNorm(d).to(DEV)
    with torch.no_grad():
        for m in (rms, ln):
            m.weight.normal_()
        ln.bias.normal_()
        torch.testing.assert_close(kernels.add_norm(x, r, rms.weight, None, 1e-5)[1], rms(x + r), atol=TOL, rtol=TOL)
        torch.testing.assert_close(kernels.add_norm(x, r, ln.weight, ln.bias, ln.eps, layer=True)[1], ln(x + r),
                                   atol=TOL, rtol=TOL)


def test_silu_mul_matches_the_definition_on_strided_rows():
    f = 1500  # more than one block of the kernel
    gu = rand(2, 2 * f, seed=7)
    a, b = gu.split(f, dim=-1)
    y = df.silu_mul(a, b, backend="triton")
    torch.testing.assert_close(y.double(), F.silu(a.double()) * b.double(), atol=TOL, rtol=TOL)


@pytest.mark.parametrize("layer,with_r,with_bias", [(False, True, False), (True, True, True), (False, False, True)])
def test_norm_linear_is_add_norm_then_the_matmul(layer, with_r, with_bias):
    d, n = 40, 23  # odd widths: the row and the weight tiles are masked
    wide = rand(2, d + 9, seed=11)
    x, r = wide[:, 9:], (rand(2, d, seed=12) if with_r else None)
    nw, nb = rand(d, seed=13), (rand(d, seed=14) if layer else None)
    w, b = rand(n, d, seed=15), (rand(n, seed=16) if with_bias else None)
    h, y = df.norm_linear(x, r, nw, nb, 1e-5, layer, w, b, backend="triton")
    h_ref, z = df.add_norm_torch(x.double(), _f64(r), nw.double(), _f64(nb), 1e-5, layer)
    torch.testing.assert_close(h.double(), h_ref, atol=TOL, rtol=TOL)
    torch.testing.assert_close(y.double(), F.linear(z, w.double(), _f64(b)), atol=TOL, rtol=TOL)


def test_silu_mul_linear_is_silu_mul_then_the_matmul():
    f, n = 70, 33
    gu = rand(2, 2 * f, seed=17)
    a, b = gu.split(f, dim=-1)
    w = rand(n, f, seed=18)
    y = df.silu_mul_linear(a, b, w, backend="triton")
    ref = F.linear(F.silu(a.double()) * b.double(), w.double())
    torch.testing.assert_close(y.double(), ref, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("act", ["sigmoid", "relu2"])
def test_the_other_activations_match_their_definitions(act):
    f = 1100
    gu = rand(2, 2 * f, seed=19)
    a, b = gu.split(f, dim=-1)
    b = None if act == "relu2" else b
    y = df.silu_mul(a, b, backend="triton", act=act)
    ad = a.double()
    ref = torch.relu(ad).square() if act == "relu2" else torch.sigmoid(ad) * b.double()
    torch.testing.assert_close(y.double(), ref, atol=TOL, rtol=TOL)


def test_silu_mul_linear_relu2_with_the_receptance_gate():
    """RWKV's channel mix after its key: sigmoid(r) * (relu(k)^2 W^T), one kernel, on strided rows."""
    f, n = 70, 33
    wide = rand(2, f + n + 3, seed=20)
    k, r = wide[:, 3:3 + f], wide[:, 3 + f:]
    w = rand(n, f, seed=21)
    for gate in (r, None):
        y = df.silu_mul_linear(k, None, w, act="relu2", gate=gate, backend="triton")
        ref = F.linear(torch.relu(k.double()).square(), w.double())
        ref = ref if gate is None else torch.sigmoid(gate.double()) * ref
        torch.testing.assert_close(y.double(), ref, atol=TOL, rtol=TOL)


def test_norm_linear_blend_epilogue():
    """groundthink's mix of its two mixers inside the out projection: lerp(other, y, sigmoid(logit))."""
    d, n = 40, 23
    x, other = rand(2, d, seed=22), rand(2, n + 5, seed=23)[:, 5:]
    nw, w, logit = rand(d, seed=24), rand(n, d, seed=25), rand(n, seed=26)
    _, y = df.norm_linear(x, None, nw, None, 1e-5, False, w, None, backend="triton", blend=(other, logit))
    _, z = df.add_norm_torch(x.double(), None, nw.double(), None, 1e-5, False)
    s = torch.sigmoid(logit.double())
    ref = other.double() + s * (F.linear(z, w.double()) - other.double())
    torch.testing.assert_close(y.double(), ref, atol=TOL, rtol=TOL)
    torch.testing.assert_close(df.norm_linear(x, None, nw, None, 1e-5, False, w, None, backend="torch",
                                              blend=(other, logit))[1].double(), ref, atol=TOL, rtol=TOL)


def test_norm_linear_blend_with_the_other_linear_in_the_kernel():
    """groundthink: Mamba-2's norm + out_proj, RWKV's out projection (x2 W2^T) and their blend, one kernel."""
    d, d2, n = 40, 27, 23
    x, x2 = rand(2, d, seed=27), rand(2, d2 + 4, seed=28)[:, 4:]
    nw, w, w2, logit = rand(d, seed=29), rand(n, d, seed=30), rand(n, d2, seed=31), rand(n, seed=32)
    _, y = df.norm_linear(x, None, nw, None, 1e-5, False, w, None, backend="triton", blend=((x2, w2), logit))
    _, z = df.add_norm_torch(x.double(), None, nw.double(), None, 1e-5, False)
    other = F.linear(x2.double(), w2.double())
    ref = other + torch.sigmoid(logit.double()) * (F.linear(z, w.double()) - other)
    torch.testing.assert_close(y.double(), ref, atol=TOL, rtol=TOL)
    with pytest.raises(ValueError, match="other linear must be"):
        df.norm_linear(x, None, nw, None, 1e-5, False, w, None, blend=((x2, w2[1:]), logit))


def _conv(seed, c, offset, bias=True):
    state = rand(2, c, 3, seed=seed)
    return [state, rand(c, 4, seed=seed + 1), rand(c, seed=seed + 2) if bias else None, True, offset]


def _conv64(conv):
    return (conv[0].double().clone(), conv[1].double(), _f64(conv[2]), conv[3], conv[4])


@pytest.mark.parametrize("bias", [True, False])
def test_conv_step_in_the_gemv_epilogue(bias):
    """Mamba-2's in_proj + conv: the short conv step of output columns offset..offset+C-1 (straddling the
    programs' row blocks) in norm_linear's and shift_linear's epilogues, state shifted in place, two
    steps against the float64 definition."""
    d, n, c, off = 40, 37, 13, 9
    nw, w = rand(d, seed=50), rand(n, d, seed=51)
    conv = _conv(52, c, off, bias)
    ref_conv = _conv64(conv)
    for step in range(2):
        x = rand(2, d, seed=53 + step)
        _, y = df.norm_linear(x, None, nw, None, 1e-5, False, w, None, backend="triton", conv=conv)
        _, y_ref = df.norm_linear(x.double(), None, nw.double(), None, 1e-5, False, w.double(), None,
                                  backend="torch", conv=ref_conv)
        torch.testing.assert_close(y.double(), y_ref, atol=TOL, rtol=TOL)
        torch.testing.assert_close(conv[0].double(), ref_conv[0], atol=TOL, rtol=TOL)
    case = _shift_case(60, True, False, sizes=(8, 16))
    conv = _conv(61, c, off, bias)
    ref_conv = _conv64(conv)
    for _ in range(2):  # the second step reads the state the first shifted
        *_, y = df.shift_linear(*case, tanh_groups=(0,), backend="triton", conv=conv)
        *_, y_ref = df.shift_linear_torch(*_double(case), tanh_groups=(0,), conv=ref_conv)
        torch.testing.assert_close(y.double(), y_ref, atol=TOL, rtol=TOL)
        torch.testing.assert_close(conv[0].double(), ref_conv[0], atol=TOL, rtol=TOL)
    with pytest.raises(ValueError, match="not inside the output"):
        df.norm_linear(x, None, nw, None, 1e-5, False, w, None, conv=_conv(62, c, n - c + 1))


def _shift_case(seed, norm, lora, sizes=(8, 12, 4)):
    d = 40
    wide = rand(2, d + 3, seed=seed)
    x, prev = wide[:, 3:], rand(2, d, seed=seed + 1)  # x: a strided view
    r = rand(2, d, seed=seed + 2) if norm else None
    args = (rand(d, seed=seed + 3), rand(d, seed=seed + 4), 1e-5, True) if norm else None
    mix = torch.rand(len(sizes), d, generator=torch.Generator().manual_seed(seed + 5)).to(DEV)
    w = rand(sum(sizes), d, seed=seed + 6)
    low = (rand(2, 5 * len(sizes) + 2, seed=seed + 7)[:, 2:], rand(len(sizes), 5, d, seed=seed + 8) * 0.3) \
        if lora else (None, None)
    return x, r, args, prev, mix, w, list(sizes), *low


def _double(args):
    return tuple(_f64(a) if isinstance(a, torch.Tensor) else
                 (tuple(_f64(t) if isinstance(t, torch.Tensor) else t for t in a) if isinstance(a, tuple) else a)
                 for a in args)


@pytest.mark.parametrize("norm,lora", [(True, False), (False, True), (True, True), (False, False)])
def test_shift_linear_matches_the_definition(norm, lora):
    """RWKV's token shift + grouped projections: the optional add + LayerNorm, the per-group lerp (and its
    low-rank mix term), tanh on chosen groups; widths no powers of two (masked rows and groups)."""
    case = _shift_case(30, norm, lora)
    h, xn, y = df.shift_linear(*case, tanh_groups=(0, 2), backend="triton")
    h_ref, xn_ref, y_ref = df.shift_linear_torch(*_double(case), tanh_groups=(0, 2))
    for got, ref in ((h, h_ref), (xn, xn_ref), (y, y_ref)):
        torch.testing.assert_close(got.double(), ref, atol=TOL, rtol=TOL)


def test_shift_linear_is_the_ddlerp_it_replaces():
    """The definition spelled as RWKV-6 does it (x + (prev - x) * (maa + lora), then each projection)."""
    x, _, _, prev, mix, w, sizes, low, lw = _shift_case(40, False, True, sizes=(6, 10))
    _, _, y = df.shift_linear(x, None, None, prev, mix, w, sizes, low, lw, tanh_groups=(1,), backend="triton")
    xd, pd = x.double(), prev.double()
    m = mix.double()[:, None] + torch.einsum("bfr,frd->fbd", low.double().unflatten(-1, (2, 5)), lw.double())
    z = xd + (pd - xd) * m  # [2 groups, B, d]
    w0, w1 = w.double().split(sizes)
    ref = torch.cat([z[0] @ w0.t(), torch.tanh(z[1] @ w1.t())], -1)
    torch.testing.assert_close(y.double(), ref, atol=TOL, rtol=TOL)


def test_bad_shapes_get_a_clear_error():
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match="r must have shape"):
        kernels.add_norm(x, torch.randn(2, 7), None)
    with pytest.raises(ValueError, match="weight must have shape"):
        kernels.add_norm(x, None, torch.randn(7))
    with pytest.raises(ValueError, match="b must have shape"):
        kernels.silu_mul(x, torch.randn(3, 8))
    with pytest.raises(ValueError, match="b is required"):
        kernels.silu_mul(x, None)
    with pytest.raises(ValueError, match="act must be one of"):
        kernels.silu_mul(x, x, act="gelu")
    with pytest.raises(ValueError, match=r"weight must be \[N, 8\]"):
        kernels.norm_linear(x, None, None, None, 1e-5, False, torch.randn(4, 7))
    w = torch.randn(6, 8)
    with pytest.raises(ValueError, match="sizes must be"):
        kernels.shift_linear(x, None, None, x, torch.rand(2, 8), w, [2, 3])
    with pytest.raises(ValueError, match="mix must have shape"):
        kernels.shift_linear(x, None, None, x, torch.rand(3, 8), w, [2, 4])
    with pytest.raises(ValueError, match="needs a norm"):
        kernels.shift_linear(x, x, None, x, torch.rand(2, 8), w, [2, 4])
    with pytest.raises(ValueError, match="lora_weight must be"):
        kernels.shift_linear(x, None, None, x, torch.rand(2, 8), w, [2, 4], torch.randn(2, 6), torch.randn(2, 3, 7))
    with pytest.raises(ValueError, match="gate must have shape"):
        kernels.silu_mul_linear(x, None, w, act="relu2", gate=torch.randn(2, 5))


_SM90 = """
P = "*bf16"
cases = [
    (m._add_norm_kernel, ["x_ptr", "r_ptr", "w_ptr", "b_ptr", "h_ptr", "y_ptr", "sx", "sr", "D", "eps"],
     [P] * 6 + ["i32"] * 3 + ["fp32"],
     {"HAS_R": True, "HAS_W": True, "HAS_B": True, "LAYER": layer, "BD": 1024}) for layer in (False, True)
] + [(m._silu_mul_kernel, ["a_ptr", "b_ptr", "y_ptr", "sa", "sb", "F"], [P] * 3 + ["i32"] * 3,
      {"BF": 1024, "ACT": act}) for act in (0, 1, 2)] + [
    (m._gemv_kernel, ["x_ptr", "r_ptr", "nw_ptr", "nb_ptr", "w_ptr", "wb_ptr", "h_ptr", "y_ptr", "e_ptr", "l_ptr",
                      "w2_ptr", "cs_ptr", "cw_ptr", "cb_ptr", "sx", "sr", "se", "N", "K", "K2", "eps", "c0", "CC",
                      "KM1"],
     [P] * 8 + [P, "*fp32", P] + [P, "*fp32", "*fp32"] + ["i32"] * 6 + ["fp32"] + ["i32"] * 3,
     {"PRO": pro, "HAS_R": True, "HAS_NW": True, "HAS_NB": layer, "LAYER": layer, "HAS_WB": True, "BN": bn,
      "BD": bd, "EPI": epi, "BD2": bd2, "CONV": conv, "CONV_B": conv, "CONV_ACT": conv, "BJ": 4 if conv else 1})
    for pro, layer, bn, bd, epi, bd2, conv in (
        (1, False, 4, 1024, 0, 0, False), (1, True, 4, 1024, 0, 0, False), (2, False, 2, 2048, 0, 0, False),
        (1, False, 4, 1024, 2, 0, False), (1, False, 4, 1024, 2, 1024, False), (3, False, 1, 4096, 1, 0, False),
        (1, False, 4, 1024, 0, 0, True))
] + [(m._shift_gemv_kernel, ["x_ptr", "r_ptr", "nw_ptr", "nb_ptr", "p_ptr", "mix_ptr", "a_ptr", "lw_ptr", "w_ptr",
                             "h_ptr", "xn_ptr", "y_ptr", "cs_ptr", "cw_ptr", "cb_ptr", "sx", "sr", "sp", "sa", "N", "K",
                             "R", "eps", "b1", "b2", "b3", "b4", "tanh_mask", "c0", "CC", "KM1"],
      [P] * 5 + ["*fp32", P, P] + [P] * 4 + [P, "*fp32", "*fp32"] + ["i32"] * 7 + ["fp32"] + ["i32"] * 8,
      {"NORM": norm, "HAS_R": norm, "HAS_NW": norm, "HAS_NB": norm, "LAYER": True, "LORA": lora,
       "BN": bn, "BD": 1024, "BR": 8, "CONV": conv, "CONV_B": conv, "CONV_ACT": conv, "BJ": 4 if conv else 1},
      {"num_warps": nw})
     for norm, lora, bn, nw, conv in ((True, False, 4, 4, False), (False, True, 16, 8, False),
                                      (True, False, 16, 8, False), (True, False, 4, 4, True))]
for fn, names, types, const, *options in cases:
    compile90(fn, names, types, const, **(options[0] if options else {}))
    compile90(fn, names, types, const)
"""


def test_kernels_compile_for_sm90_without_a_gpu():
    """The compiled path (not the interpreter) accepts the kernels, in bf16 as a model runs them (the
    GEMVs at the 125M shape's row widths: d 768 -> BD 1024, RWKV's d_ff 2688 -> 4096)."""
    pytest.importorskip("triton.backends.nvidia")
    status, err = compile_sm90("decode_fusion", _SM90)
    if status == "no-ptxas":
        pytest.skip("this Triton install carries no ptxas")
    assert status == "ok", err
