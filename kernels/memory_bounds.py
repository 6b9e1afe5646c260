"""Out-of-bounds checks for Triton kernels run in the interpreter (TRITON_INTERPRET=1).

On a GPU a load or store past a tensor's end is silent while the address stays inside the caching
allocator's block and "an illegal memory access" (which poisons the CUDA context) when it does not;
the interpreter reads and writes host memory without any check, so CI cannot tell. Inside
`checked_memory()` every masked-in address of every load, store and atomic of every kernel launch
is checked against the extents of the tensors that launch was given (each tensor's own elements,
first to last, not its whole storage); the first access outside all of them raises `OutOfBounds`
naming the kernel, the program, the operation and the nearest argument.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


class OutOfBounds(AssertionError):
    """A kernel touched memory outside every tensor it was given."""


@dataclass
class _Launch:
    kernel: str
    names: list[str]  # argument name of each extent
    lo: np.ndarray  # extents [lo, hi) in host addresses, one per tensor argument
    hi: np.ndarray


_current: list[_Launch] = []  # the launch being interpreted (a stack: launches do not nest, but be safe)


def _extent(t: torch.Tensor) -> tuple[int, int]:
    """[first byte, one past the last byte) of a tensor's elements (strided views: the span)."""
    if t.numel() == 0:
        return t.data_ptr(), t.data_ptr()
    lo = hi = 0
    for size, stride in zip(t.shape, t.stride()):
        span = (size - 1) * stride
        lo, hi = (lo + span, hi) if span < 0 else (lo, hi + span)
    base = t.data_ptr()
    return base + lo * t.element_size(), base + (hi + 1) * t.element_size()


def _launch(fn, arg_names: list[str], args: list, kwargs: dict) -> _Launch:
    names, extents = [], []

    def add(name, x):
        if isinstance(x, (tuple, list)):
            for i, y in enumerate(x):
                add(f"{name}[{i}]", y)
        elif hasattr(x, "data_ptr") and hasattr(x, "untyped_storage"):
            names.append(name)
            extents.append(_extent(getattr(x, "base", x) if not isinstance(x, torch.Tensor) else x))

    for name, x in zip(arg_names, args):
        add(name, x)
    for name, x in kwargs.items():
        add(name, x)
    lo = np.array([e[0] for e in extents], dtype=np.uint64)
    hi = np.array([e[1] for e in extents], dtype=np.uint64)
    return _Launch(getattr(fn, "__name__", str(fn)), names, lo, hi)


def _check(op: str, ptrs, mask) -> None:
    """Raise OutOfBounds if a masked-in address of `ptrs` (a TensorHandle of pointers) is outside the launch's
    tensors."""
    if not _current:
        return
    launch = _current[-1]
    addr = np.asarray(ptrs.data, dtype=np.uint64)
    if mask is not None:
        addr = addr[np.broadcast_to(np.asarray(mask.data, dtype=bool), addr.shape)]
    addr = addr.ravel()
    if addr.size == 0:
        return
    size = np.uint64(max(1, ptrs.get_element_ty().primitive_bitwidth // 8))
    inside = np.zeros(addr.shape, dtype=bool)
    for lo, hi in zip(launch.lo, launch.hi):
        inside |= (addr >= lo) & (addr + size <= hi)
    if inside.all():
        return
    bad = int(addr[~inside][0])
    from triton.runtime.interpreter import interpreter_builder

    pid = tuple(int(i) for i in interpreter_builder.grid_idx)
    raise OutOfBounds(f"{launch.kernel} program {pid}: {op} of {int((~inside).sum())} element(s) outside its "
                      f"tensors, the first {_nearest(launch, bad)}")


def _nearest(launch: _Launch, addr: int) -> str:
    """Where `addr` lies relative to the closest tensor argument of the launch."""
    if not launch.names:
        return "with no tensor argument"
    gaps = [(lo - addr, f"{lo - addr} bytes before '{n}'") if addr < lo else (addr - hi, f"{addr - hi} bytes past "
            f"the end of '{n}'") for n, lo, hi in zip(launch.names, launch.lo.tolist(), launch.hi.tolist())]
    return min(gaps)[1]


@contextlib.contextmanager
def checked_memory() -> Iterator[None]:
    """Inside, interpreted Triton launches check every memory access (see the module docstring).

    Needs TRITON_INTERPRET=1 (set before the kernels were decorated): compiled kernels cannot be
    checked this way, so without it this raises instead of passing silently."""
    import inspect
    import os

    if os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("checked_memory() checks Triton's interpreter: set TRITON_INTERPRET=1 before importing it")

    from triton.runtime import interpreter as it

    builder, executor = it.interpreter_builder, it.GridExecutor
    run, to_host = executor.__call__, executor._init_args_hst

    def call(self, *args, **kwargs):
        _current.append(_launch(self.fn, [], [], {}))  # replaced by the host copies' extents below
        try:
            return run(self, *args, **kwargs)
        finally:
            _current.pop()

    def init_args_hst(self, args_dev, kwargs):  # the extents of the host copies the interpreter runs on
        args_hst, kwargs_hst = to_host(self, args_dev, kwargs)
        _current[-1] = _launch(self.fn, inspect.getfullargspec(self.fn).args, list(args_hst), kwargs_hst)
        return args_hst, kwargs_hst

    load, store, rmw, cas = (builder.create_masked_load, builder.create_masked_store, builder.create_atomic_rmw,
                             builder.create_atomic_cas)

    def masked_load(ptrs, mask, other, cache_policy, is_volatile):
        _check("load", ptrs, mask)
        return load(ptrs, mask, other, cache_policy, is_volatile)

    def masked_store(ptrs, value, mask, cache_policy):
        _check("store", ptrs, mask)
        return store(ptrs, value, mask, cache_policy)

    def atomic_rmw(op, ptr, val, mask, sem, scope):
        _check("atomic", ptr, mask)
        return rmw(op, ptr, val, mask, sem, scope)

    def atomic_cas(ptr, cmp, val, sem, scope):
        _check("atomic_cas", ptr, None)
        return cas(ptr, cmp, val, sem, scope)

    executor.__call__, executor._init_args_hst = call, init_args_hst
    builder.create_masked_load, builder.create_masked_store = masked_load, masked_store
    builder.create_atomic_rmw, builder.create_atomic_cas = atomic_rmw, atomic_cas
    try:
        yield
    finally:
        executor.__call__, executor._init_args_hst = run, to_host
        for attr in ("create_masked_load", "create_masked_store", "create_atomic_rmw", "create_atomic_cas"):
            del builder.__dict__[attr]
