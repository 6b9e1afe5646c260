import triton, triton.language as tl
@triton.jit
def neumann(a, C: tl.constexpr, PRECISION: tl.constexpr):
    oc = tl.arange(0, C)
    x = tl.where(oc[:, None] == oc[None, :], 1.0, 0.0) - a
    p = a
    for _ in tl.static_range(C.bit_length() - 2 if False else 5):  # C=64: LOG2C-1 = 5
        p = tl.dot(p, p, input_precision=PRECISION)
        x = x + tl.dot(x, p, input_precision=PRECISION)
    return x
