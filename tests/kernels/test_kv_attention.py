"""kv_decode (one token of attention over a static KV cache) against a float64 reference.

Both paths: the torch one (masked SDPA over the capacity) and the Triton split-K kernels (the
CPU interpreter without CUDA, fp32/fp16 there; bf16 and a 128k cache only on the GPU). The cache
rows past the valid length hold random garbage, so a kernel that reads them fails.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from pytest_goni.kernels.kv_attention import kv_decode, rotary_inv_freq, rotate
from pytest_goni.kernels.testing import compile_sm90, rel_err

CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
#: (backend, attention): the torch path, and the Triton path with either attention after its append
BACKENDS = [("torch", "sdpa")] + ([("triton", "sdpa"), ("triton", "split")]
                                  if CUDA or os.environ.get("TRITON_INTERPRET") == "1" else [])


def reference(q, k, v, ck, cv, length, inv_freq, scale):
    """float64: rotate, append at `length`, softmax over keys 0..length."""
    q, k, v, ck, cv = (x.double().cpu() for x in (q, k, v, ck, cv))
    if inv_freq is not None:
        pos = torch.tensor([length], dtype=torch.float64)
        q = rotate(q[:, :, None], pos, inv_freq.double().cpu())[:, :, 0]
        k = rotate(k[:, :, None], pos, inv_freq.double().cpu())[:, :, 0]
    keys = torch.cat([ck[:, :, :length], k[:, :, None]], 2)
    vals = torch.cat([cv[:, :, :length], v[:, :, None]], 2)
    p = torch.softmax(torch.einsum("bhd,bhtd->bht", q, keys) * scale, -1)
    return torch.einsum("bht,bhtd->bhd", p, vals), k, v


def inputs(b, h, cap, d, dv, dtype, seed, device=DEV):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, h, d, generator=g) for _ in range(2))
    v = torch.randn(b, h, dv, generator=g)
    ck, cv = torch.randn(b, h, cap, d, generator=g), torch.randn(b, h, cap, dv, generator=g)  # garbage past L
    return [x.to(device, dtype) for x in (q, k, v, ck, cv)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("length", [0, 1, 63, 200])
def test_kv_decode_matches_float64(backend, rope, length):
    b, h, cap, d, dv = 2, 3, 257, 16, 32
    q, k, v, ck, cv = inputs(b, h, cap, d, dv, torch.float32, seed=length + 7 * rope)
    inv = rotary_inv_freq(d, device=DEV) if rope else None
    o_ref, k_ref, v_ref = reference(q, k, v, ck, cv, length, inv, 0.37)
    before = ck.clone()
    n = torch.tensor(length, device=DEV)
    o = kv_decode(q, k, v, ck, cv, n, inv_freq=inv, scale=0.37, backend=backend[0], attention=backend[1])
    assert o.shape == (b, h, dv) and o.dtype == q.dtype
    assert rel_err(o, o_ref) <= 1e-5
    assert int(n) == length + 1
    assert rel_err(ck[:, :, length], k_ref) <= 1e-6 and rel_err(cv[:, :, length], v_ref) <= 1e-6
    others = [i for i in range(cap) if i != length]
    assert torch.equal(ck[:, :, others], before[:, :, others])  # nothing else written


@pytest.mark.parametrize("backend", BACKENDS)
def test_kv_decode_fp16_and_strided_inputs(backend):
    """q, k, v as views of one fused qkv projection (strided heads), fp16 caches."""
    b, h, cap, d = 1, 2, 130, 32
    g = torch.Generator().manual_seed(3)
    qkv = torch.randn(b, 3, h, d, generator=g).to(DEV, torch.float16)
    q, k, v = qkv.unbind(1)
    ck, cv = (torch.randn(b, h, cap, d, generator=g).to(DEV, torch.float16) for _ in range(2))
    inv = rotary_inv_freq(d, device=DEV)
    o_ref, _, _ = reference(q, k, v, ck, cv, 129, inv, d ** -0.5)
    o = kv_decode(q, k, v, ck, cv, torch.tensor(129, device=DEV), inv_freq=inv, backend=backend[0],
                  attention=backend[1])
    assert rel_err(o, o_ref) <= 2e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_kv_decode_steps_equal_causal_attention(backend):
    """Appending tokens one by one reproduces causal attention over the whole sequence."""
    b, h, t, d = 1, 2, 40, 16
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(b, h, t, d, generator=g).to(DEV) for _ in range(3))
    ck, cv = torch.zeros(b, h, 64, d, device=DEV), torch.zeros(b, h, 64, d, device=DEV)
    n = torch.tensor(0, device=DEV)
    outs = [kv_decode(q[:, :, i], k[:, :, i], v[:, :, i], ck, cv, n, backend=backend[0], attention=backend[1])
            for i in range(t)]
    ref = torch.nn.functional.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
    assert rel_err(torch.stack(outs, 2), ref) <= 1e-5


def test_kv_decode_rejects_bad_inputs():
    q, k, v, ck, cv = inputs(1, 2, 8, 4, 4, torch.float32, seed=0, device="cpu")
    with pytest.raises(ValueError, match="length must be a 0-d int64"):
        kv_decode(q, k, v, ck, cv, 3)
    with pytest.raises(ValueError, match="cache_v must have shape"):
        kv_decode(q, k, v, ck, cv[:, :, :4], torch.tensor(3))
    with pytest.raises(ValueError, match="attention must be 'sdpa' or 'split'"):
        kv_decode(q, k, v, ck, cv, torch.tensor(3), attention="flash")
    with pytest.raises(ValueError, match="inv_freq must have shape"):
        kv_decode(q, k, v, ck, cv, torch.tensor(3), inv_freq=torch.ones(3))


@pytest.mark.gpu
@pytest.mark.parametrize("attention", ["sdpa", "split"])
@pytest.mark.parametrize("length", [8191, 131071])
def test_kv_decode_long_cache_bf16_on_cuda(length, attention):
    """A 128k cache at the 125M shape (12 heads of 64): bf16 against float64."""
    b, h, d = 1, 12, 64
    q, k, v, ck, cv = inputs(b, h, length + 64, d, d, torch.bfloat16, seed=11)
    inv = rotary_inv_freq(d, device=DEV)
    o_ref, _, _ = reference(q, k, v, ck, cv, length, inv, 1 / math.sqrt(d))
    n = torch.tensor(length, device=DEV)
    o = kv_decode(q, k, v, ck, cv, n, inv_freq=inv, attention=attention)
    assert rel_err(o, o_ref) <= 1e-2 and int(n) == length + 1


_SM90 = """
P = "*bf16"
cases = [
    (m._append, ["q_ptr", "k_ptr", "v_ptr", "inv_ptr", "len_ptr", "qr_ptr", "ck_ptr", "cv_ptr", "sqb", "sqh", "skb",
                 "skh", "svb", "svh", "H", "C", "D", "DV"],
     [P, P, P, "*fp32", "*i64", "*fp32", P, P] + ["i32"] * 10, {"ROPE": True, "HALF": 32, "BD": 64, "BDV": 64}),
    (m._append, ["q_ptr", "k_ptr", "v_ptr", "inv_ptr", "len_ptr", "qr_ptr", "ck_ptr", "cv_ptr", "sqb", "sqh", "skb",
                 "skh", "svb", "svh", "H", "C", "D", "DV"],  # the SDPA path: q written in the cache's dtype
     [P, P, P, "*fp32", "*i64", P, P, P] + ["i32"] * 10, {"ROPE": True, "HALF": 32, "BD": 64, "BDV": 64}),
    (m._split, ["qr_ptr", "ck_ptr", "cv_ptr", "len_ptr", "m_ptr", "l_ptr", "acc_ptr", "scale", "C", "D", "DV",
                "SPLIT", "NSPLIT"],
     ["*fp32", P, P, "*i64", "*fp32", "*fp32", "*fp32", "fp32"] + ["i32"] * 5, {"BLOCK_N": 64, "BD": 64, "BDV": 64}),
    (m._combine, ["m_ptr", "l_ptr", "acc_ptr", "o_ptr", "len_ptr", "NSPLIT", "DV"],
     ["*fp32", "*fp32", "*fp32", P, "*i64", "i32", "i32"], {"BS": 64, "BDV": 64}),
]
for fn, names, types, const in cases:
    compile90(fn, names, types, const)
"""


def test_kv_kernels_compile_for_sm90_without_a_gpu():
    """The compiled path (not the interpreter) accepts the kernels: Triton's frontend rejects what the
    interpreter lets through (a plain Python global inside a kernel), so compile them for sm_90 here."""
    pytest.importorskip("triton.backends.nvidia")
    status, err = compile_sm90("kv_attention", _SM90, {'TRITON_DEFAULT_FP_FUSION': '1'})
    if status == "no-ptxas":
        pytest.skip("this Triton install carries no ptxas")
    assert status == "ok", err


def test_rotary_scores_depend_only_on_relative_position():
    """RoPE's point (and what a previous-token head relies on): q_i . k_j after rotation is a function
    of i - j, and rotation keeps norms; checked in float64 on random vectors at shifted positions."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 64, dtype=torch.float64, generator=g).unbind(0)
    inv = rotary_inv_freq(64).double()
    for i, j in ((5, 4), (9, 2), (30, 30)):
        scores = [float((rotate(q, torch.tensor([i + s]), inv) * rotate(k, torch.tensor([j + s]), inv)).sum())
                  for s in (0, 7, 100)]
        assert max(scores) - min(scores) < 1e-10
    assert torch.allclose(rotate(q, torch.tensor([13]), inv).norm(), q.norm())
    assert abs(float((rotate(q, torch.tensor([1]), inv) * rotate(q, torch.tensor([0]), inv)).sum())
               - float((q * q).sum())) > 1e-3  # positions do move the score
