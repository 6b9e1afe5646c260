"""One token from a zero state (simple_gla, rwkv6): the dispatcher's closed form against the float64
step-by-step reference, forward, final state and gradients, on fresh random inputs; the chunked form
(forced) agrees with it. A model whose state is reset every token runs every token this way."""

import pytest
import torch
from pytest_goni.kernels.testing import DISPATCH, REFERENCE, make_inputs, rel_err

CLOSED = ("simple_gla", "rwkv6")


@pytest.mark.parametrize("op", CLOSED)
@pytest.mark.parametrize("seed", [31, 32])
def test_first_token_matches_reference_with_gradients(op, seed):
    args = make_inputs(op, 3, 1, 2, 16, 8, seed=seed)
    leaves = {n: x.clone().requires_grad_(True) for n, x in args.items()}
    o, s = DISPATCH[op](**leaves, scale=0.7, output_final_state=True)
    (o.square().sum() + s.sum()).backward()
    ref = {n: x.double().requires_grad_(True) for n, x in args.items()}
    o_r, s_r = REFERENCE[op](**ref, scale=0.7)
    (o_r.square().sum() + s_r.sum()).backward()
    assert o.dtype == torch.float32 and s.dtype == torch.float32 and o.shape == (3, 1, 2, 8)
    assert rel_err(o, o_r) <= 1e-5 and rel_err(s, s_r) <= 1e-5
    for n in args:
        if ref[n].grad is None or not ref[n].grad.abs().any():  # the decay never meets a nonzero state
            assert leaves[n].grad is None or not leaves[n].grad.abs().any(), n
        else:
            assert rel_err(leaves[n].grad, ref[n].grad) <= 1e-5, n
    chunked, _ = DISPATCH[op](**args, scale=0.7, backend="torch")
    assert rel_err(chunked, o) <= 1e-5


@pytest.mark.parametrize("op", CLOSED)
def test_first_token_keeps_the_input_dtype(op):
    args = make_inputs(op, 2, 1, 2, 16, 8, dtype=torch.bfloat16, seed=33)
    o, s = DISPATCH[op](**args)
    assert o.dtype == torch.bfloat16 and s is None
