"""Measurement kind ``roofline``: this device's two ceilings, memory bandwidth and matmul rate.

Every "% of roofline" number in the suite is measured against these, not against a datasheet.

Params (all optional): ``copy_bytes``, ``matmul_n``, ``matmul_dtypes``, ``reps``, ``warmup``.

Metrics:

- ``copy.bandwidth`` (B/s): a device-to-device copy of ``copy_bytes`` of random data, bytes
  counted read plus written. On CUDA the copy is the CuPy vectorised raw kernel
  (``pytest_goni.kernels.cupy.copy_bandwidth``); on CPU, or on CUDA without CuPy, it is
  ``torch.Tensor.copy_``; ``meta["probe"]`` says which ran.
- ``matmul.<dtype>.flops`` (FLOP/s) for each of ``matmul_dtypes``: ``2 n^3`` over the time of an
  ``n x n x n`` product of random matrices through torch. ``tf32`` is float32 inputs with
  TensorFloat-32 matrix units allowed (CUDA only); ``float32`` forbids them.

Every metric's ``meta`` names the device (``device``, ``device_name``) and the size measured.
:func:`default_roofline` measures the same two ceilings once per process at default sizes for
``op_bench``'s "% of roofline", taking each ceiling as the best rate observed.
"""

from __future__ import annotations

import platform
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..lazy import torch  # imported when it first measures
from ..registry import measurement_kind
from ..stats import Metric, summarize
from ..timing import last_level_cache_bytes, time_fn

MATMUL_DTYPES = ("float32", "tf32", "bfloat16", "float16", "float64")

_DEFAULTS_CPU = {"copy_bytes": 64 << 20, "matmul_n": 1024}
_DEFAULTS_CUDA = {"copy_bytes": 1 << 30, "matmul_n": 8192}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "roofline measurement params",
    "description": "Measures this device's memory-copy bandwidth and matmul FLOP/s.",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "copy_bytes": {
            "type": "integer", "minimum": 1048576,
            "description": "Bytes copied per timed repetition (at least 1 MiB; use several times "
                           "the last-level cache so the copy measures memory, not cache). "
                           "Default 64 MiB on CPU, 1 GiB on CUDA.",
        },
        "matmul_n": {
            "type": "integer", "minimum": 64, "maximum": 32768,
            "description": "Size n of the n x n x n matrix product timed for FLOP/s. "
                           "Default 1024 on CPU, 8192 on CUDA.",
        },
        "matmul_dtypes": {
            "type": "array", "minItems": 1, "uniqueItems": True,
            "items": {"enum": list(MATMUL_DTYPES)},
            "description": "Dtypes whose matmul rate is measured; each gives the metric "
                           "matmul.<dtype>.flops. 'tf32' is CUDA only. Default [float32].",
        },
        "reps": {
            "type": "integer", "minimum": 3, "maximum": 10000,
            "description": "Timed repetitions of each probe (default 10).",
        },
        "warmup": {
            "type": "integer", "minimum": 0, "maximum": 1000,
            "description": "Untimed repetitions before timing (default 2).",
        },
    },
}


def roofline_metrics(params: dict[str, Any]) -> dict[str, str]:
    """``{key: unit}`` the roofline kind returns for ``params``."""
    out = {"copy.bandwidth": "B/s"}
    for dt in params.get("matmul_dtypes", ["float32"]):
        out[f"matmul.{dt}.flops"] = "FLOP/s"
    return out


def device_name(device: str | torch.device) -> str:
    """A human name for the device: the GPU's model, or the CPU's model and thread count."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model} ({torch.get_num_threads()} threads)"


def copy_probe(device: str | torch.device) -> str:
    """Which copy measures bandwidth here: the CuPy kernel on CUDA when CuPy can run, else
    torch's ``copy_`` (a CUDA machine without CuPy still gets a roofline, and says so)."""
    from ..kernels.cupy import cupy_available

    return "cupy copy16" if torch.device(device).type == "cuda" and cupy_available() else "torch copy_"


def measure_copy_bandwidth(device: str | torch.device, nbytes: int, reps: int = 10,
                           warmup: int = 2) -> list[float]:
    """B/s samples (read + written) of copying ``nbytes`` of random data on ``device``."""
    dev = torch.device(device)
    if copy_probe(dev) == "cupy copy16":
        from ..kernels.cupy import copy_bandwidth

        return copy_bandwidth(nbytes, reps=reps, warmup=warmup, device=dev.index or 0)
    n = nbytes // 4
    src = torch.randn(n, device=dev)
    dst = torch.empty_like(src)
    secs = time_fn(lambda: dst.copy_(src), dev, warmup=warmup, reps=reps)
    if not torch.equal(dst, src):
        raise RuntimeError("copy probe: destination differs from source; bandwidth is invalid")
    return [2.0 * n * 4 / s for s in secs]


@contextmanager
def _matmul_mode(dtype: str):
    """Allow TF32 matrix units exactly when ``dtype == 'tf32'``; restore the setting after.

    Uses torch's ``fp32_precision`` where it exists (torch >= 2.9 raises when the legacy
    ``allow_tf32`` flag is read after the new API was used), else ``allow_tf32``.
    """
    mm = torch.backends.cuda.matmul
    if hasattr(mm, "fp32_precision"):
        before, name, value = mm.fp32_precision, "fp32_precision", "tf32" if dtype == "tf32" else "ieee"
    else:
        before, name, value = mm.allow_tf32, "allow_tf32", dtype == "tf32"
    setattr(mm, name, value)
    try:
        yield
    finally:
        setattr(mm, name, before)


def measure_matmul_flops(device: str | torch.device, n: int, dtype: str = "float32",
                         reps: int = 10, warmup: int = 2) -> list[float]:
    """FLOP/s samples of an ``n x n x n`` product of random ``dtype`` matrices on ``device``."""
    dev = torch.device(device)
    if dtype not in MATMUL_DTYPES:
        raise ValueError(f"unknown matmul dtype {dtype!r}; known: {', '.join(MATMUL_DTYPES)}")
    if dtype == "tf32" and dev.type != "cuda":
        raise ValueError("matmul dtype 'tf32' is a CUDA matrix-unit mode; on CPU use float32")
    tdtype = torch.float32 if dtype == "tf32" else getattr(torch, dtype)
    gen = torch.Generator(device=dev)
    gen.manual_seed(0)
    a = torch.randn(n, n, device=dev, generator=gen).to(tdtype)
    b = torch.randn(n, n, device=dev, generator=gen).to(tdtype)
    c = torch.empty(n, n, device=dev, dtype=tdtype)
    with _matmul_mode(dtype):
        secs = time_fn(lambda: torch.matmul(a, b, out=c), dev, warmup=warmup, reps=reps)
    if not torch.isfinite(c).all():
        raise RuntimeError(f"matmul probe ({dtype}, n={n}) produced non-finite values")
    return [2.0 * n**3 / s for s in secs]


def _defaults(device: str | torch.device) -> dict[str, int]:
    dev = torch.device(device)
    if dev.type == "cuda":
        return dict(_DEFAULTS_CUDA)
    out = dict(_DEFAULTS_CPU)
    out["copy_bytes"] = max(out["copy_bytes"], 4 * last_level_cache_bytes("cpu"))
    return out


@measurement_kind("roofline", schema=SCHEMA, metrics=roofline_metrics, default_timeout_s=300.0)
def measure_roofline(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Memory-copy bandwidth and matmul FLOP/s of the context's device."""
    defaults = _defaults(ctx.device)
    nbytes = int(params.get("copy_bytes", defaults["copy_bytes"]))
    n = int(params.get("matmul_n", defaults["matmul_n"]))
    reps, warmup = int(params.get("reps", 10)), int(params.get("warmup", 2))
    meta = {"device": ctx.device, "device_name": device_name(ctx.device)}
    out = {"copy.bandwidth": Metric.of(measure_copy_bandwidth(ctx.device, nbytes, reps, warmup),
                                       "B/s", copy_bytes=nbytes,
                                       probe=copy_probe(ctx.device),
                                       **meta)}
    for dt in params.get("matmul_dtypes", ["float32"]):
        ctx.check_deadline()
        out[f"matmul.{dt}.flops"] = Metric.of(measure_matmul_flops(ctx.device, n, dt, reps, warmup),
                                              "FLOP/s", matmul_n=n, **meta)
    return out


@dataclass(frozen=True)
class Roofline:
    """The two ceilings, bytes per second and FLOP per second, each the best rate observed.

    A ceiling is what the device can reach, and interference (other processes, clock ramps)
    only ever slows a probe down, so the fastest repetition estimates it better than the median
    (STREAM reports its best time for the same reason).
    """

    bandwidth: float
    flops: float
    device_name: str
    matmul_dtype: str

    def percent(self, flop_rate: float, byte_rate: float) -> float:
        """Percent of the roofline reached: the larger of the compute and bandwidth fractions."""
        return 100.0 * max(flop_rate / self.flops, byte_rate / self.bandwidth)


@cache
def _default_bandwidth(device: str) -> float:
    return summarize(measure_copy_bandwidth(device, _defaults(device)["copy_bytes"]), "max")


@cache
def _default_flops(device: str, dtype: str) -> float:
    return summarize(measure_matmul_flops(device, _defaults(device)["matmul_n"], dtype), "max")


def default_roofline(device: str | torch.device, op_dtype: str = "float32") -> Roofline:
    """This device's roofline at default sizes, measured once per process per (device, dtype).

    The compute ceiling is the matmul rate of the op's own dtype (float32 ops against float32,
    TF32 units not allowed, as torch's default is).
    """
    dev = str(torch.device(device))
    if dev == "cuda":
        dev = f"cuda:{torch.cuda.current_device()}"
    return Roofline(_default_bandwidth(dev), _default_flops(dev, op_dtype), device_name(dev),
                    op_dtype)
