"""The fused decode step (models/fusion.py) through the kernels a GPU runs: the parallel forward and the
prefill, then steps with every kernels operator dispatched as on CUDA (`kernels.ops.dispatch_as`), i.e.
the chunked Triton forwards, the Triton mixer steps, add_norm, silu_mul and the fused GEMVs in Triton's
interpreter on CPU (fp32; on a GPU the same on CUDA, where tl.dot rounds its inputs to tf32), steps
against the forward. With and without the GEMVs (``GONI_DECODE_GEMV``), at TINY and at an odd shape
(head size 20, widths and vocabulary no powers of two: every kernel's tail blocks and masks).

In the interpreter every load and store is checked against the tensors its launch was given
(`kernels.memory_bounds`): an access past a tensor is silent there and an "illegal memory access" on
a GPU once it leaves the allocator's block. (The H200's illegal access at TINY on 2026-12-01 was no such
access but a tf32 wgmma of the WY kernel: tests/kernels/test_triton_delta_segments.py.)
"""

import contextlib
import os

import pytest
import torch
from pytest_goni.kernels import ops
from pytest_goni.models.fusion import decode_fusion

from pytest_goni.registry import load_builtins, resolve_backend

pytest.importorskip("triton")
CUDA = torch.cuda.is_available()
if not CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton needs CUDA or TRITON_INTERPRET=1", allow_module_level=True)
DEV = "cuda" if CUDA else "cpu"
TOL = 2e-3 if CUDA else 1e-4  # tf32 dots on the GPU, as tests/kernels/test_decode_fusion.py

load_builtins()
SHAPES = {"tiny": {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2},
          "odd": {"vocab_size": 61, "d_model": 40, "n_layers": 2, "n_heads": 2}}


def _checked():
    """Memory checks in the interpreter; on a GPU the device faults by itself."""
    if CUDA:
        return contextlib.nullcontext()
    from pytest_goni.kernels.memory_bounds import checked_memory

    return checked_memory()


@pytest.mark.parametrize("gemv", [False, True])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name", ["gla", "gated-deltanet", "mamba2", "transformer-rope", "rwkv6", "groundthink",
                                  "gpt2"])
def test_fused_triton_step_reproduces_forward(name, shape, gemv):
    cfg = SHAPES[shape]
    model = resolve_backend(name)(**cfg).eval().to(DEV)
    x = torch.randint(0, cfg["vocab_size"], (1, 12), generator=torch.Generator().manual_seed(3)).to(DEV)
    with torch.inference_mode(), ops.dispatch_as("cuda"), _checked():
        full = model(x)
        _, state = model.prefill(x[:, :9])
        with decode_fusion(True, gemv=gemv):
            for t in range(9, 12):
                logits, state = model.step(x[:, t], state)
                torch.testing.assert_close(logits, full[:, t], atol=TOL, rtol=TOL)
