"""Where measurements run and how they leave the device: the worker's device, CUDA present or
not, the CPU's name, intra-op threads on the CPU, out-of-memory errors and cleaning up after."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import platform
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Measure = Callable[[Any, dict[str, Any]], Any]


def no_gpu_driver() -> bool:
    """True when this Linux host certainly has no GPU torch could use (no NVIDIA driver, no ROCm
    device): then CUDA is not usable and torch need not be imported to ask. False when unsure."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return True
    if not sys.platform.startswith("linux"):
        return False
    return not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()
                or Path("/dev/kfd").exists())


def cuda_usable() -> bool:
    if no_gpu_driver():  # loading a spec picks its profile here: no torch import on a CPU host
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def worker_device() -> str:
    """``cuda:i`` for xdist worker ``gw<i>`` (i % device count) when CUDA is usable, else ``cpu``."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "cpu"
        n = torch.cuda.device_count()
    except Exception:
        return "cpu"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return f"cuda:{index % n}"


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def cpu_threads(n: int | None, device: str) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads on the CPU, restoring the previous count after.

    On a small shared host, OpenMP threads that spin at barriers while a core is taken by another
    process turn millisecond ops into tenths of a second; one thread per measurement keeps CPU
    timings about the work measured. No effect on CUDA or when ``n`` is None.
    """
    if n is None or device.startswith("cuda"):
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def release(device: str) -> None:
    """Leave the device clean for the next measurement: collect garbage, empty the CUDA cache."""
    gc.collect()
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def warm_up(device: str) -> None:
    """Create the CUDA context on ``device`` and make a first cuBLAS call, then :func:`release`: the
    one-off start-up a process's first measurement would otherwise pay inside its own seconds."""
    if not device.startswith("cuda"):
        return
    import torch

    torch.cuda.set_device(device)
    x = torch.ones(64, 64, device=device)
    (x @ x).sum().item()
    del x
    release(device)


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error (CUDA, CPU allocator, or a simulated cap)."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    msg = str(exc).lower()
    return "out of memory" in msg or "cudnn_status_alloc_failed" in msg or "can't allocate memory" in msg


def under_cpu_threads(default: int | None = None) -> Callable[[Measure], Measure]:
    """Decorator for a measurement kind's function: run it with ``params["cpu_threads"]`` (else
    ``default``) torch intra-op threads on the CPU (see :func:`cpu_threads`)."""

    def wrap(measure: Measure) -> Measure:
        @functools.wraps(measure)
        def run(ctx: Any, params: dict[str, Any]) -> Any:
            with cpu_threads(params.get("cpu_threads", default), ctx.device):
                return measure(ctx, params)

        return run

    return wrap
