"""CuPy, imported only when a kernel runs: the package imports without it on CPU-only machines.

Torch CUDA tensors cross into CuPy through DLPack (no copy), and kernels launch on torch's
current stream so they order correctly with the torch work around them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any


class CupyUnavailable(RuntimeError):
    """CuPy is not installed, or it finds no CUDA device."""


def cupy_module() -> Any:
    """The ``cupy`` module, or :class:`CupyUnavailable` saying why it cannot run here."""
    try:
        import cupy
    except ImportError as exc:
        raise CupyUnavailable(
            "CuPy is not installed: these kernels need a CUDA GPU and "
            "`pip install 'pytest-goni[gpu]'` (cupy-cuda12x or cupy-cuda13x to match the driver)"
            f" [{exc}]"
        ) from None
    if not cupy.cuda.is_available():
        raise CupyUnavailable("CuPy is installed but finds no CUDA device "
                              "(cupy.cuda.is_available() is False)")
    return cupy


def cupy_available() -> bool:
    """Whether the CuPy kernels can run here (installed and a CUDA device present)."""
    try:
        cupy_module()
    except CupyUnavailable:
        return False
    return True


def require_cuda_tensor(name: str, t: Any) -> None:
    """A clear error for an argument that is not a torch tensor on a CUDA device."""
    import torch

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cuda":
        raise ValueError(f"{name} must be on a CUDA device, got {t.device}; "
                         "use the torch reference for CPU tensors")


@contextmanager
def on_torch_stream(device_index: int):
    """Run CuPy work on ``device_index`` and on torch's current stream of that device."""
    import torch

    cp = cupy_module()
    with cp.cuda.Device(device_index):
        stream = torch.cuda.current_stream(device_index)
        if hasattr(cp.cuda.Stream, "from_external") and hasattr(stream, "__cuda_stream__"):
            external = cp.cuda.Stream.from_external(stream)  # CuPy >= 14: the stream protocol
        else:
            external = cp.cuda.ExternalStream(stream.cuda_stream, device_index)
        with external:
            yield cp
