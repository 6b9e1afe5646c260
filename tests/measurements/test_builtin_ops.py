"""Built-in ops: registered, numerically right against float64 references, work counts right."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_goni.bench_ops import dims, itemsize, to_dtype
from pytest_goni.registry import load_builtins

OPS = load_builtins().ops


def _attention_reference(q, k, v):
    """softmax(QK^T/sqrt(d) + causal mask) V in float64, normalised by hand (no shared code)."""
    q, k, v = (x.double() for x in (q, k, v))
    t, d = q.shape[-2], q.shape[-1]
    s = (q @ k.transpose(-2, -1)) / math.sqrt(d)
    allowed = torch.tril(torch.ones(t, t, dtype=torch.bool))
    s = torch.where(allowed, s, torch.full_like(s, -math.inf))
    p = torch.exp(s - s.amax(-1, keepdim=True))
    return (p / p.sum(-1, keepdim=True)) @ v


def test_builtin_ops_are_registered():
    assert {"sdpa_attention", "naive_attention", "matmul", "copy"} <= set(OPS)
    for o in OPS.values():
        assert o.doc, f"op {o.name} has no docstring"


@pytest.mark.parametrize("name", ["sdpa_attention", "naive_attention"])
@pytest.mark.parametrize("seed_shape", [(1, 2, 37, 16), (2, 3, 64, 32)])
def test_attention_matches_float64_reference(name, seed_shape):
    b, h, t, d = seed_shape
    shape = {"B": b, "H": h, "T": t, "D": d}
    o = OPS[name]
    inputs = o.make_inputs(shape, "cpu", torch.float32)
    q, k, v = inputs[:3]
    assert q.shape == (b, h, t, d) and not torch.equal(q, k)
    out = o.fn(*inputs)
    ref = _attention_reference(q, k, v)
    err = (out.double() - ref).norm() / ref.norm()
    assert err < 1e-5, f"{name} relative error {err:.2e}"


def test_sdpa_backend_can_be_chosen_and_is_reported():
    shape = {"B": 1, "H": 2, "T": 32, "D": 16, "backend": "math"}
    o = OPS["sdpa_attention"]
    inputs = o.make_inputs(shape, "cpu", torch.float32)
    out = o.fn(*inputs)
    torch.testing.assert_close(out.double(), _attention_reference(*inputs[:3]), rtol=1e-4, atol=1e-5)
    assert o.fn.describe(*inputs)["sdpa_backend"] == "MATH"
    auto = o.make_inputs({"B": 1, "H": 2, "T": 32, "D": 16}, "cpu", torch.float32)
    assert o.fn.describe(*auto)["sdpa_backend"] in {"MATH", "FLASH_ATTENTION",
                                                     "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"}
    with pytest.raises(ValueError, match="unknown backend"):
        o.fn(*inputs[:3], "fastest")


def test_matmul_and_copy_compute_their_function():
    mm = OPS["matmul"]
    a, b = mm.make_inputs({"M": 9, "N": 7, "K": 5}, "cpu", torch.float32)
    torch.testing.assert_close(mm.fn(a, b).double(), a.double() @ b.double())
    cp = OPS["copy"]
    dst, src = cp.make_inputs({"N": 1000}, "cpu", torch.float32)
    dst.fill_(float("nan"))
    assert torch.equal(cp.fn(dst, src), src)


def test_work_counts():
    att = {"B": 2, "H": 3, "T": 128, "D": 64}
    assert OPS["sdpa_attention"].flops(att) == 2 * 2 * 3 * 128 * 128 * 64  # causal: half of 4BHT^2D
    assert OPS["naive_attention"].flops(att) == OPS["sdpa_attention"].flops(att)
    assert OPS["sdpa_attention"].bytes({**att, "dtype": "bfloat16"}) == 4 * 2 * 3 * 128 * 64 * 2
    assert OPS["matmul"].flops({"M": 4, "N": 5, "K": 6}) == 240
    assert OPS["matmul"].bytes({"M": 4, "N": 5, "K": 6}) == (24 + 30 + 20) * 4
    assert OPS["copy"].bytes({"N": 10, "dtype": "float16"}) == 40
    assert OPS["copy"].flops({"N": 10}) == 0


def test_shape_and_dtype_errors_are_clear():
    with pytest.raises(ValueError, match="needs shape key 'D'"):
        OPS["sdpa_attention"].flops({"B": 1, "H": 1, "T": 8})
    with pytest.raises(ValueError, match="positive integer"):
        dims({"N": -3}, "N")
    with pytest.raises(ValueError, match="unknown dtype"):
        to_dtype("float8")
    assert itemsize({}) == 4 and itemsize({"dtype": "float64"}) == 8
