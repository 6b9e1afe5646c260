"""The GPU's tl.dot rounding inside Triton's CPU interpreter, to see tf32 / bf16 error without a GPU.

The interpreter computes every tl.dot as a float32 numpy matmul of its inputs (and reads bf16 inputs
as raw uint16 bits), so a kernel that is accurate there can still lose precision on the GPU. Inside
`gpu_dot_rounding()` each dot rounds its inputs as the tensor cores do: float32 inputs under "tf32"
keep 10 mantissa bits (the low 13 bits cut, as the hardware reads them; `tf32="rne"` rounds to
nearest instead), "tf32x3" is the big/small split of three tf32 dots, "ieee" is exact float32;
bf16 / fp16 inputs are exact (their products are exact in float32). Accumulation is float32.
Only for diagnostics (`benchmarks/grad_precision.py`, tests of the gradients' precision).
"""

from __future__ import annotations

import contextlib

import numpy as np


def _tf32(x: np.ndarray, mode: str) -> np.ndarray:
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    if mode == "rne":
        bits = bits + (((bits >> np.uint32(13)) & np.uint32(1)) + np.uint32(0x0FFF))
    return (bits & np.uint32(0xFFFFE000)).view(np.float32)


def _as_f32(data: np.ndarray, dtype) -> np.ndarray:
    import triton.language as tl

    if dtype == tl.bfloat16:  # stored as uint16 bits
        return (data.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return data.astype(np.float32)


def _rounded_matmul(a: np.ndarray, b: np.ndarray, precision: str, mode: str) -> np.ndarray:
    if precision == "TF32":
        return np.matmul(_tf32(a, mode), _tf32(b, mode))
    if precision == "TF32x3":
        a_big, b_big = _tf32(a, mode), _tf32(b, mode)
        a_small, b_small = _tf32(a - a_big, mode), _tf32(b - b_big, mode)
        return np.matmul(a_big, b_small) + np.matmul(a_small, b_big) + np.matmul(a_big, b_big)
    return np.matmul(a, b)


@contextlib.contextmanager
def gpu_dot_rounding(tf32: str = "trunc"):
    """Within the block, the interpreter's tl.dot rounds float32 inputs as the GPU does (see module)."""
    import triton.language as tl
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    original = builder.create_dot

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        if a.dtype.scalar not in (tl.float32, tl.bfloat16, tl.float16):
            return original(self, a, b, d, input_precision, max_num_imprecise_acc)
        fp32 = a.dtype.scalar == tl.float32 and b.dtype.scalar == tl.float32
        precision = getattr(input_precision, "name", str(input_precision)).split(".")[-1] if fp32 else "IEEE"
        out = _rounded_matmul(_as_f32(a.data, a.dtype.scalar), _as_f32(b.data, b.dtype.scalar),
                              precision, tf32).astype(np.float32)
        return interpreter.TensorHandle(out + d.data, d.dtype.scalar)

    builder.create_dot = create_dot
    try:
        yield
    finally:
        builder.create_dot = original
