"""Measurement kind ``memory``: peak memory of a prefill and the state/KV size against context
length, with out-of-memory failures recorded as data points (SYS-02 memory realism: "peak
memory/KV behavior and failure modes under long-context load").

Contexts run in increasing order per model. A failure is recorded — the context and the memory
in use at that moment — the device is cleaned (``gc``, ``empty_cache``), larger contexts of that
model are skipped, and the next model runs. ``memory_cap`` simulates a smaller device: on CUDA it
caps the caching allocator (``set_per_process_memory_fraction``), so the OOM is real; on the CPU a
prefill whose measured peak exceeds the cap is recorded as the OOM point.

Keys: ``<label>.<T>.peak_mem`` (B), ``<label>.<T>.state_bytes`` (B), ``<label>.max_context_ok``
(tok: the longest context that ran), ``<label>.oom_context`` (tok: where it failed; NaN with a
note when it never did), ``<label>.oom_bytes`` (B in use at the failure).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from typing import Any

import torch

from pytest_goni.device import is_oom, release, under_cpu_threads
from pytest_goni.inference import (
    OOMRecord,
    entry_labels,
    model_vocab,
    parse_entries,
    random_tokens,
    resolve_precision,
    run_context,
    run_or_oom,
    sdpa_backends_used,
    state_nbytes,
    tensor_peak_bytes,
)
from pytest_goni.measurements.schemas import context_sweep_schema
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric

SCHEMA: dict[str, Any] = context_sweep_schema(
    run={"batch_size": {"type": "integer", "minimum": 1}},
    options={
        "memory_cap": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}],
                       "description": "bytes, or a quantity such as '512 MiB'"},
        "plot": {"type": "boolean"},
    },
)


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units: dict[str, str] = {}
    for label in entry_labels(params["models"]):
        for t in params["contexts"]:
            units[f"{label}.{t}.peak_mem"] = "B"
            units[f"{label}.{t}.state_bytes"] = "B"
        units.update({f"{label}.max_context_ok": "tok", f"{label}.oom_context": "tok",
                      f"{label}.oom_bytes": "B"})
    return units


def parse_cap(cap: int | str | None) -> int | None:
    """``memory_cap`` in bytes: an integer, or a quantity string the units module reads."""
    if cap is None:
        return None
    if isinstance(cap, int):
        return cap
    from pytest_goni.units import BYTES, parse_quantity

    value, dim = parse_quantity(cap)
    if dim != BYTES:
        raise ValueError(f"memory_cap {cap!r} is not an amount of memory (try '512 MiB')")
    return int(value)


class SimulatedOOM(torch.OutOfMemoryError):
    """The CPU stand-in for a device OOM: a prefill's measured peak exceeded ``memory_cap``
    (``bytes_at_failure``: what it needed, which ``oom_record`` reports)."""

    def __init__(self, message: str, bytes_at_failure: float):
        super().__init__(message)
        self.bytes_at_failure = bytes_at_failure


@contextlib.contextmanager
def cuda_cap(device: str, cap: int | None) -> Iterator[None]:
    """Cap the CUDA caching allocator at ``cap`` bytes for the duration (restored after)."""
    if cap is None or not device.startswith("cuda"):
        yield
        return
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)


def _vm_size_bytes() -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def cpu_guard(cap: int | None, device: str) -> Iterator[None]:
    """On the CPU, bound the address space while a capped prefill runs, so a context far past the
    cap fails its allocation (a catchable "can't allocate memory") instead of exhausting the host.
    The cap itself is judged on the measured peak; this guard (4x the cap plus 2 GiB) only keeps
    the host alive. Linux only; elsewhere it does nothing."""
    vm = _vm_size_bytes() if cap is not None and not device.startswith("cuda") else None
    if vm is None:
        yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + 4 * cap + (2 << 30)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@measurement_kind("memory", schema=SCHEMA, metrics=metric_units)
@under_cpu_threads()
def measure_memory(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Peak prefill memory and state size per context; the first OOM per model is a data point."""
    precision = resolve_precision(params.get("precision", "auto"), ctx.device)
    batch = int(params.get("batch_size", 1))
    cap = parse_cap(params.get("memory_cap"))
    contexts = sorted(params["contexts"])
    out: dict[str, Metric] = {}
    series: dict[str, tuple[list[int], list[float]]] = {}
    ooms: dict[str, tuple[float, float]] = {}
    for entry in parse_entries(params["models"]):
        release(ctx.device)
        model = ctx.build_model(entry.model, on_device=True, precision=precision,
                                vocab_size=params.get("vocab_size"))
        vocab = model_vocab(model)
        ok: list[int] = []
        peaks: list[float] = []
        failure: OOMRecord | None = None
        with cuda_cap(ctx.device, cap):
            for t in contexts:
                meta = {"precision": precision, "batch": batch, "memory_cap": cap,
                        "sdpa_forced": entry.sdpa}
                if failure is not None:
                    note = f"not run: {failure.note()}"
                    out[f"{entry.label}.{t}.peak_mem"] = Metric.scalar(math.nan, "B", note=note, **meta)
                    out[f"{entry.label}.{t}.state_bytes"] = Metric.scalar(math.nan, "B", note=note, **meta)
                    continue
                ctx.check_deadline()
                ctx.log(f"{entry.label} at {t} tokens")
                done, failure = run_or_oom(functools.partial(_one, ctx, model, entry.sdpa, precision, vocab, batch,
                                                             t, cap, detect_backends=not ok), t, ctx.device)
                if failure is not None:
                    note = failure.note()
                    out[f"{entry.label}.{t}.peak_mem"] = Metric.scalar(
                        failure.bytes_at_failure, "B", note=note, oom=True, **meta)
                    out[f"{entry.label}.{t}.state_bytes"] = Metric.scalar(math.nan, "B", note=note, **meta)
                    continue
                peak, nbytes, backends, probe = done
                ok.append(t)
                peaks.append(peak)
                meta["sdpa_backends"] = backends
                meta["probe"] = probe
                out[f"{entry.label}.{t}.peak_mem"] = Metric.scalar(peak, "B", **meta)
                out[f"{entry.label}.{t}.state_bytes"] = Metric.scalar(nbytes, "B", **meta)
        del model
        release(ctx.device)
        series[entry.label] = (ok, peaks)
        out.update(_summary(entry.label, ok, failure, contexts))
        if failure is not None:
            ooms[entry.label] = (failure.context, failure.bytes_at_failure)
    if params.get("plot", True):
        from pytest_goni.plots import plot_memory_vs_context

        plot_memory_vs_context(series, ctx.artifact("peak-memory-vs-context.png"), oom=ooms, cap_bytes=cap,
                               title=f"{ctx.spec_id}: {ctx.measurement} ({ctx.device})",
                               gate_lines=getattr(ctx, "gate_lines", ()))
    return out


def _one(ctx: Any, model: Any, sdpa: str | None, precision: str, vocab: int, batch: int, context: int,
         cap: int | None, detect_backends: bool) -> tuple[int, int, list[str], str]:
    """Peak memory and state size of one prefill; the SDPA backends run (profiled) when asked."""
    tokens = random_tokens(batch, context, vocab, ctx.device, seed=context)
    kept: dict[str, Any] = {}

    def call() -> None:
        with run_context(ctx.device, precision, sdpa):
            _, kept["state"] = model.prefill(tokens)

    with cpu_guard(cap, ctx.device):
        try:
            peak, probe = tensor_peak_bytes(call, ctx.device)
        except RuntimeError as exc:
            if cap is None or ctx.is_cuda or not is_oom(exc):
                raise
            raise SimulatedOOM(f"prefill of {context} tokens was refused memory past the cap's guard "
                               f"({str(exc).splitlines()[0][:120]})", cap) from None
    nbytes = state_nbytes(model, kept.pop("state"))
    if cap is not None and not ctx.is_cuda and peak > cap:
        raise SimulatedOOM(f"simulated OOM: prefill of {context} tokens needed {peak} B > cap {cap} B", peak)
    backends = sdpa_backends_used(call) if detect_backends else []
    kept.clear()
    return peak, nbytes, backends, probe


def _summary(label: str, ok: list[int], failure: OOMRecord | None, contexts: list[int]) -> dict[str, Metric]:
    if failure is None:
        note = f"no OOM up to {contexts[-1]} tokens"
        oom_ctx = Metric.scalar(math.nan, "tok", note=note)
        oom_bytes = Metric.scalar(math.nan, "B", note=note)
    else:
        oom_ctx = Metric.scalar(failure.context, "tok", note=failure.note(), error=failure.message)
        oom_bytes = Metric.scalar(failure.bytes_at_failure, "B", note=failure.note())
    max_ok = Metric.scalar(max(ok) if ok else 0, "tok",
                           note=failure.note() if failure else f"every context up to {contexts[-1]} ran")
    return {f"{label}.max_context_ok": max_ok, f"{label}.oom_context": oom_ctx,
            f"{label}.oom_bytes": oom_bytes}
