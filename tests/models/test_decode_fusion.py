"""The fused decode step (models/fusion.py) through the kernels a GPU runs: prefill in torch, then
steps with every kernels operator dispatched as on CUDA (`kernels.ops.dispatch_as`), i.e. the Triton
mixer steps, add_norm, silu_mul and the fused GEMVs in Triton's interpreter on CPU (fp32, tiny
shapes; on a GPU the same on CUDA, where tl.dot rounds its inputs to tf32), against the parallel
forward. With and without the GEMVs (``GONI_DECODE_GEMV``).
"""

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
TINY = {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2}


@pytest.mark.parametrize("gemv", [False, True])
@pytest.mark.parametrize("name", ["gla", "gated-deltanet", "mamba2", "transformer-rope", "rwkv6", "gpt2"])
def test_fused_triton_step_reproduces_forward(name, gemv):
    model = resolve_backend(name)(**TINY).eval().to(DEV)
    x = torch.randint(0, 64, (1, 12), generator=torch.Generator().manual_seed(3)).to(DEV)
    with torch.inference_mode():
        full = model(x)
        _, state = model.prefill(x[:, :9])
        with decode_fusion(True, gemv=gemv), ops.dispatch_as("cuda"):
            for t in range(9, 12):
                logits, state = model.step(x[:, t], state)
                torch.testing.assert_close(logits, full[:, t], atol=TOL, rtol=TOL)
