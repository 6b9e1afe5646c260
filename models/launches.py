"""Kernel launches per decode step: the number a launch-bound step's time is made of.

A decode step at batch 1 moves little data (weights + state, read once), so on a GPU its time is
mostly the count of kernels times a few microseconds each, graph-replayed or not. This module
counts them for any model of the contract, on any device:

- on CUDA: the GPU kernels (and memcpy / memset) torch.profiler records for one eager step, not
  the user-annotation ranges it also puts on the GPU timeline (before 2026-12-01 they were counted:
  one extra "launch" per ``pytest_goni.kernels`` call);
- on CPU: the aten ops that would launch a kernel, counted with torch.profiler as the leaf aten
  events (no aten op beneath them) minus ops that launch nothing (views, allocations, a no-op
  ``to`` / ``contiguous`` / eval ``dropout``), with each call of a ``pytest_goni.kernels`` operator
  counted as one launch (on CUDA each is one Triton kernel; on CPU it runs as several torch ops).

The CPU count is a prediction of the CUDA one, not a measurement of it: it can differ by an op
or two per layer (a cast autocast inserts, SDPA's helper kernels). Both say how many ops a step
dispatches, which is the host work a graph removes and the kernel count a graph keeps.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

#: Kernel operators (attributes of ``pytest_goni.kernels``) that are one Triton launch on CUDA.
ONE_LAUNCH_PREFIX = "goni.kernel::"

#: aten ops that launch no kernel (besides views, which are detected from their schema).
_NO_KERNEL = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "lift_fresh", "detach",
    "detach_", "resize_", "set_", "to", "contiguous", "dropout", "feature_dropout", "alias",
    "result_type", "is_nonzero", "size", "stride", "dim", "numel", "type_as", "_reshape_alias",
    "_has_compatible_shallow_copy_type", "record_stream", "_assert_async", "scalar_tensor",
    "_unsafe_view",
})
#: aten ops that copy a device value to the host: a sync inside a step (and a graph-capture error).
HOST_SYNC = frozenset({"_local_scalar_dense", "item"})


@dataclass
class LaunchCount:
    """Launches of one call, by op, and how they were counted."""

    launches: int
    by_op: Counter = field(default_factory=Counter)
    host_syncs: int = 0
    how: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"launches": self.launches, "host_syncs": self.host_syncs, "how": self.how,
                "top_ops": dict(self.by_op.most_common(12))}


def _overloads(name: str) -> list[Any]:
    packet = getattr(torch.ops.aten, name, None)
    out = []
    for o in packet.overloads() if packet is not None else ():
        try:
            out.append(getattr(packet, o))
        except Exception:  # noqa: BLE001 - an overload torch lists but cannot load
            continue
    return out


@functools.cache
def _is_view(name: str) -> bool:
    return any(o.is_view for o in _overloads(name))


@functools.cache
def _is_composite(name: str) -> bool:
    """An op torch decomposes into other aten ops (its children are what runs)."""
    for o in _overloads(name):
        try:
            if torch._C._dispatch_has_kernel_for_dispatch_key(o.name(), "CompositeImplicitAutograd"):
                return True
        except RuntimeError:  # a TorchScript-only overload (add.t)
            continue
    return False


@contextlib.contextmanager
def kernels_as_one_launch() -> Iterator[None]:
    """While counting: every ``pytest_goni.kernels`` operator call is one profiler range."""
    from pytest_goni import kernels

    saved = {name: getattr(kernels, name) for name in kernels.__all__}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            with torch.profiler.record_function(ONE_LAUNCH_PREFIX + name):
                return fn(*args, **kwargs)
        return counted

    for name, fn in saved.items():
        setattr(kernels, name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(kernels, name, fn)


def count_launches(fn: Callable[[], Any], device: str | torch.device = "cpu") -> LaunchCount:
    """Launches of one call of ``fn`` (see the module docstring for what is counted where)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with kernels_as_one_launch(), profile(activities=acts) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize(device)
    events = prof.events()
    syncs = sum(1 for ev in events if ev.name.split("::")[-1] in HOST_SYNC)
    by_op: Counter = Counter()
    if cuda:
        by_op = cuda_kernels(events)
        return LaunchCount(sum(by_op.values()), by_op, syncs, "cuda kernels, memcpy and memset of one eager call "
                                                              "(torch.profiler; user annotations left out)")
    for ev in events:
        if ev.cpu_parent is None:
            _count(ev, by_op)
    return LaunchCount(sum(by_op.values()), by_op, syncs,
                       "cpu: leaf aten ops that launch a kernel, a kernels operator as one (torch.profiler)")


def cuda_kernels(events: Any) -> Counter:
    """Device-side events that are work (kernels, memcpy, memset), by name. torch.profiler also
    places every ``record_function`` range on the GPU timeline (a user annotation, device type CUDA):
    the ``goni.kernel::`` ranges this module opens are such ranges, not launches (each one's Triton
    kernel is counted under its own name), so annotations are left out."""
    out: Counter = Counter()
    for ev in events:
        if ev.device_type != torch.autograd.DeviceType.CUDA:
            continue
        if getattr(ev, "is_user_annotation", False) or ev.name.startswith(ONE_LAUNCH_PREFIX):
            continue
        out[ev.name[:60]] += 1
    return out


def _count(ev: Any, by_op: Counter) -> None:
    """Launches under one profiler event: a kernels operator is one; an aten op that is its own
    kernel is one (its internal aten calls are its implementation); composites count their children."""
    if ev.name.startswith(ONE_LAUNCH_PREFIX):
        by_op[ev.name] += 1
        return
    if ev.name.startswith("aten::"):
        op = ev.name[len("aten::"):]
        if op in _NO_KERNEL or op in HOST_SYNC or _is_view(op):
            return
        if not _is_composite(op):
            by_op[ev.name] += 1
            return
    for child in ev.cpu_children:
        _count(child, by_op)


def step_launches(model: torch.nn.Module, token: torch.Tensor, state: Any,
                  context: Callable[[], contextlib.AbstractContextManager] | None = None) -> LaunchCount:
    """Launches of one ``model.step`` from a copy of ``state`` (after one warm-up step, so one-time
    work such as a JIT compile is not counted); ``context`` wraps the calls (inference mode, autocast)."""
    from .decoding import clone_state

    ctx = context or torch.inference_mode
    with ctx():
        _, warm = model.step(token, clone_state(state))
        return count_launches(lambda: model.step(token, warm), token.device)
