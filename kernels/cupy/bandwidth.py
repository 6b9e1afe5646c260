"""Device memory bandwidth probe: a vectorised copy kernel timed with CUDA events.

Each thread moves 16 bytes per access (``int4`` loads and stores, coalesced across the warp) in a
grid-stride loop, so the copy runs at the memory system's rate rather than the launch's. Bytes
are counted read plus written (2 x ``nbytes``), the usual convention for a copy's bandwidth.
"""

from __future__ import annotations

from typing import Any

from ._runtime import cupy_module

_COPY_SRC = r"""
extern "C" __global__ void copy16(const int4* __restrict__ src, int4* __restrict__ dst,
                                  long long n) {
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dst[i] = src[i];
    }
}
"""

_THREADS = 256
_kernel_cache: dict[int, Any] = {}


def _copy_kernel(cp: Any) -> Any:
    dev = cp.cuda.Device().id
    if dev not in _kernel_cache:
        _kernel_cache[dev] = cp.RawKernel(_COPY_SRC, "copy16")
    return _kernel_cache[dev]


def _launch_copy(cp: Any, src: Any, dst: Any) -> None:
    """``src``/``dst``: int32 arrays of shape [n, 4], 16-byte aligned; one int4 per row."""
    n = src.shape[0]
    sms = cp.cuda.Device().attributes["MultiProcessorCount"]
    blocks = max(1, min((n + _THREADS - 1) // _THREADS, sms * 8))
    _copy_kernel(cp)((blocks,), (_THREADS,), (src, dst, cp.int64(n)))


def copy_device(src: Any, dst: Any) -> None:
    """Copy one CuPy/torch CUDA buffer into another of the same byte size with the probe kernel
    (exposed so tests can check it copies every byte)."""
    cp = cupy_module()
    s, d = cp.from_dlpack(src), cp.from_dlpack(dst)
    if s.nbytes != d.nbytes or s.nbytes % 16:
        raise ValueError(f"copy_device needs equal sizes that are multiples of 16 bytes; "
                         f"got {s.nbytes} and {d.nbytes}")
    if s.data.ptr % 16 or d.data.ptr % 16:
        raise ValueError("copy_device needs 16-byte aligned buffers (int4 accesses)")
    _launch_copy(cp, s.reshape(-1).view(cp.uint8).view(cp.int32).reshape(-1, 4),
                 d.reshape(-1).view(cp.uint8).view(cp.int32).reshape(-1, 4))


def copy_bandwidth(nbytes: int, reps: int = 20, warmup: int = 3, device: int = 0) -> list[float]:
    """Bytes per second (read + written) of ``reps`` timed device-to-device copies of ``nbytes``
    (rounded down to a multiple of 16) of random data on GPU ``device``."""
    if nbytes < 16:
        raise ValueError(f"nbytes must be at least 16, got {nbytes}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    cp = cupy_module()
    n16 = nbytes // 16
    with cp.cuda.Device(device):
        # random bits, never zeros (a copy of zeros can run faster than one of real data)
        src = cp.random.random(n16 * 4, dtype=cp.float32).view(cp.int32).reshape(n16, 4)
        dst = cp.empty_like(src)
        for _ in range(warmup):
            _launch_copy(cp, src, dst)
        events = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(reps)]
        for start, end in events:
            start.record()
            _launch_copy(cp, src, dst)
            end.record()
        events[-1][1].synchronize()
        moved = 2 * n16 * 16
        out = [moved / (cp.cuda.get_elapsed_time(s, e) * 1e-3) for s, e in events]
        if not bool((dst == src).all()):
            raise RuntimeError("copy16 kernel did not copy every element; bandwidth is invalid")
        return out
