"""kernels.memory_bounds: the interpreter's out-of-bounds check catches what a GPU faults on (a load or
store past the tensors a launch was given) and passes masked tails and strided views."""

import os

import pytest
import torch

pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("the check runs in Triton's interpreter (TRITON_INTERPRET=1)", allow_module_level=True)

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from pytest_goni.kernels.memory_bounds import checked_memory  # noqa: E402


@triton.jit
def _copy(x_ptr, y_ptr, sx, N, READ: tl.constexpr, WRITE: tl.constexpr, B: tl.constexpr):
    """y[row, :WRITE] = x[row, :READ] (zeros past READ); rows hold 10, so READ or WRITE > 10 step past them."""
    row = tl.program_id(0)
    o = tl.arange(0, B)
    v = tl.load(x_ptr + row * sx + o, mask=o < READ, other=0.0)
    tl.store(y_ptr + row * N + o, v, mask=o < WRITE)


def _run(read, write):
    wide = torch.arange(40.0).reshape(2, 20)
    x = wide[:, 3:13]  # a strided view: rows 10 wide, 20 apart
    y = torch.zeros(2, 10)
    _copy[(2,)](x, y, x.stride(0), 10, READ=read, WRITE=write, B=16)
    return x, y


def test_masked_tails_and_strided_views_pass():
    with checked_memory():
        x, y = _run(10, 10)
    assert torch.equal(y, x)


@pytest.mark.parametrize("read,write,what", [(11, 10, "load"), (10, 11, "store"), (16, 16, "load")])
def test_an_access_past_the_tensors_is_reported(read, write, what):
    with checked_memory(), pytest.raises(Exception, match=f"_copy program .*: {what} of .* outside its tensors"):
        _run(read, write)


def test_the_interpreter_is_restored_afterwards():
    with pytest.raises(Exception, match="outside its tensors"), checked_memory():
        _run(16, 16)
    _run(10, 10)  # no check outside the block
    from triton.runtime import interpreter

    assert "create_masked_load" not in vars(interpreter.interpreter_builder)
