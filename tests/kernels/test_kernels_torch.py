"""Chunked torch forms and torch decode steps against the float64 step-by-step references."""

import pytest
import torch
from pytest_goni.kernels import reference
from pytest_goni.kernels.testing import (
    DISPATCH,
    OPS,
    REFERENCE,
    STEP,
    at_time,
    make_inputs,
    random_state,
    rel_err,
    slice_time,
)

from pytest_goni import kernels

B, T, H, DK, DV = 2, 41, 2, 16, 8  # T is not a multiple of either chunk size (16, 64)


@pytest.mark.parametrize("op", OPS)
def test_chunked_fp32_matches_reference(op):
    args = make_inputs(op, B, T, H, DK, DV, seed=11)
    s0 = random_state(B, H, DK, DV)
    o, s = DISPATCH[op](**args, scale=0.3, initial_state=s0, output_final_state=True, backend="torch")
    o_ref, s_ref = REFERENCE[op](**args, scale=0.3, initial_state=s0)
    assert o.dtype == torch.float32 and s.dtype == torch.float32
    assert rel_err(o, o_ref) <= 1e-4
    assert rel_err(s, s_ref) <= 1e-4


@pytest.mark.parametrize("op", OPS)
def test_chunked_bf16_matches_reference(op):
    args = make_inputs(op, B, T, H, DK, DV, dtype=torch.bfloat16, seed=12)
    o, s = DISPATCH[op](**args, output_final_state=True)
    o_ref, s_ref = REFERENCE[op](**args)  # the reference sees the same bf16-rounded inputs
    assert o.dtype == torch.bfloat16
    assert rel_err(o, o_ref) <= 2e-2
    assert rel_err(s, s_ref) <= 2e-2


@pytest.mark.parametrize("op", OPS)
def test_default_scale_and_no_state(op):
    args = make_inputs(op, 1, 9, 1, DK, DV, seed=13)
    o, s = DISPATCH[op](**args)
    assert s is None
    assert rel_err(o, REFERENCE[op](**args)[0]) <= 1e-4


@pytest.mark.parametrize("op", OPS)
def test_state_carried_across_calls_equals_one_call(op):
    args = make_inputs(op, B, T, H, DK, DV, seed=14)
    o_full, s_full = DISPATCH[op](**args, output_final_state=True)
    o1, s1 = DISPATCH[op](**slice_time(op, args, 0, 23), output_final_state=True)
    o2, s2 = DISPATCH[op](**slice_time(op, args, 23, T), initial_state=s1, output_final_state=True)
    assert rel_err(torch.cat([o1, o2], 1), o_full) <= 1e-5
    assert rel_err(s2, s_full) <= 1e-5


@pytest.mark.parametrize("op", OPS)
def test_decode_steps_reproduce_prefill(op):
    args = make_inputs(op, B, 12, H, DK, DV, seed=15)
    o_pre, s_pre = DISPATCH[op](**slice_time(op, args, 0, 8), output_final_state=True)
    o_all = DISPATCH[op](**args)[0]
    s = s_pre
    for i in range(8, 12):
        o_i, s = STEP[op](**at_time(op, args, i), state=s)
        assert o_i.shape == (B, H, DV)
        assert rel_err(o_i, o_all[:, i]) <= 1e-5
    s_ref = REFERENCE[op](**args)[1]
    assert rel_err(s, s_ref) <= 1e-4


@pytest.mark.parametrize("op", OPS)
def test_step_does_not_modify_input_state(op):
    args = make_inputs(op, 1, 1, H, DK, DV, seed=16)
    s0 = random_state(1, H, DK, DV)
    keep = s0.clone()
    STEP[op](**at_time(op, args, 0), state=s0)
    assert torch.equal(s0, keep)


@pytest.mark.parametrize("op", OPS)
def test_gradients_match_reference(op):
    args = make_inputs(op, 1, 21, 1, 8, 4, seed=17)
    leaves = {n: x.clone().requires_grad_(True) for n, x in args.items()}
    o, s = DISPATCH[op](**leaves, output_final_state=True)
    (o.square().sum() + s.sum()).backward()
    ref_leaves = {n: x.double().requires_grad_(True) for n, x in args.items()}
    o_r, s_r = REFERENCE[op](**ref_leaves)
    (o_r.square().sum() + s_r.sum()).backward()
    for n in args:
        assert rel_err(leaves[n].grad, ref_leaves[n].grad) <= 1e-4, n


@pytest.mark.parametrize("op", OPS)
def test_nan_input_is_not_hidden(op):
    args = make_inputs(op, 1, 20, 1, DK, DV, seed=18)
    first = next(iter(args))
    args[first][0, 5, 0, 0] = float("nan")
    o, _ = DISPATCH[op](**args)
    assert torch.isnan(o[0, 5:]).any()
    assert rel_err(o, REFERENCE[op](**make_inputs(op, 1, 20, 1, DK, DV, seed=18))[0]) == float("inf")


@pytest.mark.parametrize("window", [1, 7, 64, 200])
def test_sliding_window_matches_reference(window):
    q, k, v = (torch.randn(2, 150, 2, 16) for _ in range(3))
    o = kernels.sliding_window_attention(q, k, v, window)
    assert rel_err(o, reference.sliding_window_attention_ref(q, k, v, window)) <= 1e-5


def test_sliding_window_bf16_and_grad():
    q, k, v = (torch.randn(1, 70, 2, 16, requires_grad=True) for _ in range(3))
    o = kernels.sliding_window_attention(q, k, v, 9, scale=0.2)
    o.sum().backward()
    assert torch.isfinite(q.grad).all()
    qb, kb, vb = (x.detach().bfloat16() for x in (q, k, v))
    ob = kernels.sliding_window_attention(qb, kb, vb, 9, scale=0.2)
    assert ob.dtype == torch.bfloat16
    assert rel_err(ob, reference.sliding_window_attention_ref(qb, kb, vb, 9, scale=0.2)) <= 2e-2


def test_bad_inputs_raise_clear_errors():
    q = torch.randn(1, 4, 2, 8)
    with pytest.raises(ValueError, match=r"k must have shape"):
        kernels.gla(q, torch.randn(1, 4, 2, 7), q, q)
    with pytest.raises(ValueError, match=r"g must have shape"):
        kernels.simple_gla(q, q, q, torch.randn(1, 4, 3))
    with pytest.raises(ValueError, match=r"initial_state must have shape"):
        kernels.delta_rule(q, q, q, torch.rand(1, 4, 2), initial_state=torch.zeros(1, 2, 8, 9))
    with pytest.raises(ValueError, match=r"u must have shape"):
        kernels.rwkv6(q, q, q, q, torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"window must be a positive int"):
        kernels.sliding_window_attention(q, q, q, 0)
    with pytest.raises(ValueError, match=r"state is required"):
        kernels.gla_step(q[:, 0], q[:, 0], q[:, 0], q[:, 0], None)
    with pytest.raises(TypeError, match=r"q must be a torch.Tensor"):
        kernels.gla([1], q, q, q)
    with pytest.raises(ValueError, match=r"backend must be one of"):
        kernels.gla(q, q, q, q, backend="cuda")


@pytest.mark.parametrize("op", ("gla", "rwkv6", "rwkv7"))
@pytest.mark.parametrize("decay_scale", [1.0, 12.0, 40.0])  # factorized, near the limit, explicit
def test_vector_decay_paths_match_reference(op, decay_scale):
    args = make_inputs(op, 1, 45, 2, DK, DV, seed=19, decay_scale=decay_scale)
    leaves = {n: x.clone().requires_grad_(True) for n, x in args.items()}
    o, s = DISPATCH[op](**leaves, output_final_state=True)
    o_ref, s_ref = REFERENCE[op](**args)
    assert rel_err(o, o_ref) <= 1e-4
    assert rel_err(s, s_ref) <= 1e-4
    o.square().sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in leaves.values())


@pytest.mark.parametrize("op", OPS)
def test_reference_gradients_pass_gradcheck(op):
    """The float64 references' autograd gradients (what the Triton backwards are tested against)
    against finite differences. The chunked forms compute in float32 by design, so they are checked
    against these gradients above instead of by gradcheck."""
    args = {n: x.double().requires_grad_(True) for n, x in make_inputs(op, 1, 5, 1, 3, 2, seed=20).items()}
    s0 = random_state(1, 1, 3, 2).double().requires_grad_(True)
    names = list(args)

    def fn(*xs):
        o, s = REFERENCE[op](**dict(zip(names, xs[:-1])), scale=0.7, initial_state=xs[-1])
        return o, s
    assert torch.autograd.gradcheck(fn, (*args.values(), s0))
