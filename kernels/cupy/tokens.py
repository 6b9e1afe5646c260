"""Token ids on the device: validation against a vocabulary, and embedding-row gather.

Both take torch CUDA tensors through DLPack (no copy) and run on torch's current stream.
The count is one raw-kernel pass (per-thread counts, a warp shuffle sum, one atomic per warp;
no mask tensor); the gather is a CuPy ``ElementwiseKernel`` over the output that copies rows
bit for bit, so any dtype works (bfloat16 included: rows move as same-width integers).
"""

from __future__ import annotations

from typing import Any

from ._runtime import on_torch_stream, require_cuda_tensor

_kernels: dict[str, Any] = {}

_COUNT_SRC = r"""
template <typename T>
__global__ void count_oob(const T* __restrict__ ids, long long n, long long vocab,
                          unsigned long long* __restrict__ count) {
    unsigned long long mine = 0;
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        long long x = (long long)ids[i];
        mine += (x < 0 || x >= vocab) ? 1ull : 0ull;
    }
    for (int off = 16; off > 0; off >>= 1) mine += __shfl_down_sync(0xffffffffu, mine, off);
    if ((threadIdx.x & 31) == 0 && mine) atomicAdd(count, mine);
}
"""

_ID_CTYPES = {"int64": "long long", "int32": "int", "int16": "short", "uint8": "unsigned char"}
_THREADS = 256


def _count_kernel(cp: Any, dtype_name: str) -> Any:
    key = f"count:{cp.cuda.Device().id}"
    if key not in _kernels:
        names = [f"count_oob<{c}>" for c in _ID_CTYPES.values()]
        _kernels[key] = cp.RawModule(code=_COUNT_SRC, name_expressions=names)
    return _kernels[key].get_function(f"count_oob<{_ID_CTYPES[dtype_name]}>")


def _gather_rows(cp: Any) -> Any:
    if "gather" not in _kernels:  # ElementwiseKernel compiles per device itself
        _kernels["gather"] = cp.ElementwiseKernel(
            "raw T table, raw I ids, int64 d", "T out",
            "out = table[(long long)ids[i / d] * d + i % d]",
            "goni_gather_rows")
    return _kernels["gather"]


_INT_DTYPES = ("torch.int64", "torch.int32", "torch.int16", "torch.uint8")


def _check_ids(ids: Any) -> None:
    require_cuda_tensor("ids", ids)
    if str(ids.dtype) not in _INT_DTYPES:
        raise TypeError(f"ids must be an integer tensor ({', '.join(_INT_DTYPES)}), got {ids.dtype}")


def validate_token_ids(ids: Any, vocab_size: int) -> int:
    """How many of ``ids`` lie outside ``[0, vocab_size)``, counted on the GPU."""
    _check_ids(ids)
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    if ids.numel() == 0:
        return 0
    with on_torch_stream(ids.device.index) as cp:
        x = cp.from_dlpack(ids.contiguous()).ravel()
        count = cp.zeros(1, dtype=cp.uint64)
        sms = cp.cuda.Device().attributes["MultiProcessorCount"]
        blocks = max(1, min((x.size + _THREADS - 1) // _THREADS, sms * 8))
        kernel = _count_kernel(cp, str(ids.dtype).removeprefix("torch."))
        kernel((blocks,), (_THREADS,), (x, cp.int64(x.size), cp.int64(vocab_size), count))
        return int(count.get()[0])


def gather_embeddings(ids: Any, table: Any) -> Any:
    """Rows of ``table [V, D]`` for ``ids [...]``: a ``[..., D]`` torch tensor on the same GPU.

    Out-of-range ids are an error (checked on the device first), never an out-of-bounds read.
    """
    import torch

    _check_ids(ids)
    require_cuda_tensor("table", table)
    if table.dim() != 2:
        raise ValueError(f"table must be 2-D [vocab, dim], got shape {tuple(table.shape)}")
    if ids.device != table.device:
        raise ValueError(f"ids ({ids.device}) and table ({table.device}) must be on one device")
    vocab, d = table.shape
    bad = validate_token_ids(ids, vocab)
    if bad:
        raise ValueError(f"{bad} of {ids.numel()} token ids lie outside [0, {vocab})")
    out = torch.empty((*ids.shape, d), dtype=table.dtype, device=table.device)
    if out.numel() == 0:
        return out
    as_int = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    bits = as_int[table.element_size()]
    with on_torch_stream(table.device.index) as cp:
        src = cp.from_dlpack(table.contiguous().view(bits))
        idx = cp.from_dlpack(ids.contiguous())
        dst = cp.from_dlpack(out.view(bits))
        _gather_rows(cp)(src.ravel(), idx.ravel(), cp.int64(d), dst.ravel())
    return out


def validate_token_ids_reference(ids: Any, vocab_size: int) -> int:
    """Torch reference of :func:`validate_token_ids` (any device)."""
    return int(((ids < 0) | (ids >= vocab_size)).sum().item())


def gather_embeddings_reference(ids: Any, table: Any) -> Any:
    """Torch reference of :func:`gather_embeddings` (any device)."""
    return table[ids.long()]
