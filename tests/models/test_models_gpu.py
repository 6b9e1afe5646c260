"""The parity law on a GPU, where the linear layers run the Triton kernels (skipped without CUDA).

Triton's tl.dot may use TF32 for float32 inputs, so the tolerance is TF32's, not the CPU test's.
"""

from __future__ import annotations

import pytest
import torch
from pytest_goni.models import builtin_backends

from pytest_goni.registry import load_builtins, resolve_backend

load_builtins()
TINY = {"vocab_size": 64, "d_model": 64, "n_layers": 2, "n_heads": 2, "max_seq_len": 256}


@pytest.mark.gpu
@pytest.mark.parametrize("name", builtin_backends())
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 5e-3), (torch.bfloat16, 1e-1)])
def test_prefill_then_steps_reproduce_forward_on_cuda(name, dtype, tol):
    model = resolve_backend(name)(**TINY).to("cuda", dtype)
    x = torch.randint(0, TINY["vocab_size"], (2, 83), generator=torch.Generator().manual_seed(0)).cuda()
    with torch.inference_mode():
        full = model(x).float()
        logits, state = model.prefill(x[:, :67], logits="all")
        torch.testing.assert_close(logits.float(), full[:, :67], atol=tol, rtol=tol)
        for t in range(67, 83):
            step_logits, state = model.step(x[:, t], state)
            torch.testing.assert_close(step_logits.float(), full[:, t], atol=tol, rtol=tol)
