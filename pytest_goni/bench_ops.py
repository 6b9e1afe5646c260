"""Built-in benchmarkable ops (registered for ``op_bench``).

An op is one small function plus its work counts::

    @op("name", make_inputs=..., flops=..., bytes=...)
    def name(*inputs): ...

- ``make_inputs(shape, device, dtype) -> tuple``: fresh random inputs (never zeros: they can run
  faster than real data and hide unwritten outputs); ``dtype`` is a ``torch.dtype``;
- ``flops(shape)`` / ``bytes(shape)``: the useful floating-point operations and the fewest bytes
  the op must move through memory (each input read once, each output written once), so a bench
  can report FLOP/s, B/s and the fraction of the measured roofline. ``op_bench`` passes the shape
  with a ``dtype`` entry added (``"float32"``, ``"bfloat16"``, ...): use :func:`itemsize`.

A shape is a plain dict from the spec (``{B: 1, H: 4, T: 512, D: 64}``); read it with
:func:`dims`, which names the op and the missing key in its error. An op may attach
``fn.describe = lambda *inputs: {...}`` to report what ran (the SDPA backend chosen); the bench
puts it in the latency metric's ``meta``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .lazy import F, torch  # imported when an op first runs: a spec naming ops loads without torch
from .registry import op

#: Spec spellings of dtypes (each is the name of a ``torch`` attribute).
DTYPES: tuple[str, ...] = ("float32", "float64", "bfloat16", "float16")


def to_dtype(name: str | torch.dtype) -> torch.dtype:
    """A ``torch.dtype`` from its spec name; a clear error for an unknown one."""
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; known: {', '.join(DTYPES)}")
    return getattr(torch, name)


def itemsize(shape: Mapping[str, Any]) -> int:
    """Bytes per element of the shape's ``dtype`` entry (float32 when absent)."""
    return torch.empty((), dtype=to_dtype(shape.get("dtype", "float32"))).element_size()


def dims(shape: Mapping[str, Any], *keys: str, op_name: str = "op") -> list[int]:
    """The integer dimensions ``keys`` of ``shape``, each checked to be a positive int."""
    out = []
    for key in keys:
        if key not in shape:
            raise ValueError(f"{op_name} needs shape key {key!r} (shape keys: {', '.join(keys)}); "
                             f"got {dict(shape)}")
        val = shape[key]
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{op_name}: shape key {key!r} must be a positive integer, got {val!r}")
        out.append(val)
    return out


def randn(shape: tuple[int, ...], device: str | torch.device, dtype: torch.dtype,
          generator_seed: int = 0) -> torch.Tensor:
    """Standard-normal random tensor, reproducible per seed, drawn on the target device."""
    dev = torch.device(device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(generator_seed)
    return torch.randn(shape, generator=gen, device=dev, dtype=torch.float32).to(dtype)


# ------------------------------------------------------------------------------- attention
# Layout [B, H, T, D] (torch SDPA's). Causal: FLOPs count the useful half of QK^T and PV,
# 2 * (2 * B*H*T*T*D) / 2; bytes are q, k, v read and o written once.


def _attention_inputs(shape: Mapping[str, Any], device: str | torch.device,
                      dtype: torch.dtype) -> tuple:
    b, h, t, d = dims(shape, "B", "H", "T", "D", op_name="attention")
    q, k, v = (randn((b, h, t, d), device, dtype, seed) for seed in (1, 2, 3))
    return q, k, v, str(shape.get("backend", "auto"))


def _attention_flops(shape: Mapping[str, Any]) -> float:
    b, h, t, d = dims(shape, "B", "H", "T", "D", op_name="attention")
    return 2.0 * b * h * t * t * d


def _attention_bytes(shape: Mapping[str, Any]) -> float:
    b, h, t, d = dims(shape, "B", "H", "T", "D", op_name="attention")
    return 4.0 * b * h * t * d * itemsize(shape)


#: ``backend`` shape key -> torch SDPA backend (``auto`` lets torch choose).
SDPA_BACKENDS = {
    "math": "MATH",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
}


def _sdpa_backend(name: str) -> Any:
    from torch.nn.attention import SDPBackend

    if name not in SDPA_BACKENDS:
        raise ValueError(f"sdpa_attention: unknown backend {name!r}; "
                         f"known: auto, {', '.join(SDPA_BACKENDS)}")
    return getattr(SDPBackend, SDPA_BACKENDS[name])


@op("sdpa_attention", make_inputs=_attention_inputs, flops=_attention_flops, bytes=_attention_bytes)
def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   backend: str = "auto") -> torch.Tensor:
    """Causal attention through ``torch.nn.functional.scaled_dot_product_attention``.

    Shape keys ``B, H, T, D`` and optionally ``backend``: ``auto`` (torch chooses), ``cudnn``,
    ``flash``, ``efficient`` or ``math`` (only that backend may run; unavailable is an error).
    """
    if backend == "auto":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel([_sdpa_backend(backend)]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _describe_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   backend: str = "auto") -> dict[str, Any]:
    """Which SDPA backend runs for these inputs (torch's dispatcher choice when ``auto``)."""
    if backend != "auto":
        return {"sdpa_backend": SDPA_BACKENDS[backend], "requested": backend}
    from torch.nn.attention import SDPBackend

    try:
        chosen = SDPBackend(torch._fused_sdp_choice(q, k, v, is_causal=True)).name
    except Exception as exc:  # a private API: report that it could not be read, not crash
        chosen = f"unknown ({type(exc).__name__})"
    return {"sdpa_backend": chosen, "requested": "auto"}


sdpa_attention.describe = _describe_sdpa  # type: ignore[attr-defined]


@op("naive_attention", make_inputs=_attention_inputs, flops=_attention_flops,
    bytes=_attention_bytes)
def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    backend: str = "auto") -> torch.Tensor:
    """Explicit causal attention: softmax(Q K^T / sqrt(d) + causal mask) V, the T x T matrix
    materialised. ``backend`` is accepted (and ignored) so it shares inputs with sdpa_attention."""
    t, d = q.shape[-2], q.shape[-1]
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).triu_(1)
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


# ---------------------------------------------------------------------------------- matmul


def _matmul_inputs(shape: Mapping[str, Any], device: str | torch.device,
                   dtype: torch.dtype) -> tuple:
    m, n, k = dims(shape, "M", "N", "K", op_name="matmul")
    return randn((m, k), device, dtype, 1), randn((k, n), device, dtype, 2)


def _matmul_flops(shape: Mapping[str, Any]) -> float:
    m, n, k = dims(shape, "M", "N", "K", op_name="matmul")
    return 2.0 * m * n * k


def _matmul_bytes(shape: Mapping[str, Any]) -> float:
    m, n, k = dims(shape, "M", "N", "K", op_name="matmul")
    return float(m * k + k * n + m * n) * itemsize(shape)


@op("matmul", make_inputs=_matmul_inputs, flops=_matmul_flops, bytes=_matmul_bytes)
def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dense matrix product ``[M, K] @ [K, N]`` (shape keys ``M, N, K``)."""
    return torch.matmul(a, b)


# ------------------------------------------------------------------------------------ copy


def _copy_inputs(shape: Mapping[str, Any], device: str | torch.device, dtype: torch.dtype) -> tuple:
    (n,) = dims(shape, "N", op_name="copy")
    return torch.empty(n, device=device, dtype=dtype), randn((n,), device, dtype, 1)


def _copy_bytes(shape: Mapping[str, Any]) -> float:
    (n,) = dims(shape, "N", op_name="copy")
    return 2.0 * n * itemsize(shape)


@op("copy", make_inputs=_copy_inputs, flops=lambda shape: 0.0, bytes=_copy_bytes)
def copy(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Memory copy of ``N`` elements (bytes counted read + written)."""
    return dst.copy_(src)
