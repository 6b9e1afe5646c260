"""Timers and memory probes: how every latency and peak-memory number in the suite is taken.

One repetition loop serves every case. :func:`time_interleaved` runs its callables in rounds
(A, B, A, B, ... on the same inputs), so a ratio of the i-th samples of A and B pairs two runs
taken back to back under the same machine state; :func:`time_fn` is the one-callable case of it.
Each sample is one timed call (or the mean of ``inner`` calls), in seconds:

- CPU: ``time.perf_counter_ns`` around the call;
- CUDA: a pair of CUDA events around the call on the current stream, read after one
  synchronisation at the end (so the host never stalls between repetitions). ``cuda_graph=True``
  captures each callable once into a CUDA graph and times graph replays, which removes launch
  gaps from ops made of many small kernels.

``warmup`` untimed rounds run first (module load, compilation, allocator growth, cuDNN
autotuning). ``flush_l2=True`` writes a buffer larger than the last-level cache before every timed
call, outside the timed window, so an op whose inputs fit in cache is timed cold, as it would run
inside a model. The budget: at least ``reps`` rounds, then more while the wall time spent in the
timed rounds is under ``min_time_s``, never more than ``max_reps``; ``check`` (e.g.
``MeasureContext.check_deadline``) is called between rounds so a measurement stops at its timeout.
On CUDA the budget counts host time: launches are asynchronous and the host runs ahead of the
device, so ``min_time_s`` bounds the work enqueued, not the device time (the samples themselves
are device time, from the events).

Peak memory (:func:`peak_memory`): on CUDA, the caching allocator's high-water mark
(``torch.cuda.reset_peak_memory_stats`` / ``max_memory_allocated``) above what was allocated
before the call. On CPU, torch's profiler memory events (tensor allocations and frees); where
that API is missing, the fallback is the process's resident-set high-water mark (``VmHWM`` in
``/proc/self/status``, reset by writing ``5`` to ``/proc/self/clear_refs``), above the RSS before
the call. Limits of the CPU probe: it sees the whole process (other threads' allocations count);
memory the allocator already holds from earlier work (glibc's heap, freed but not returned) is
reused without raising RSS and so is not counted, so the probe can read low after a larger earlier
call; pages allocated but never touched are not resident and not counted. Where ``clear_refs``
cannot be written (not Linux, or a locked-down /proc) it falls back to ``getrusage`` ``ru_maxrss``,
which is never reset, so it only sees growth beyond the process's lifetime peak — the result then
carries that limit, and :func:`cpu_peak_probe_kind` says which probe is in use.
"""

from __future__ import annotations

import gc
import os
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from .lazy import torch  # imported when something is first timed

__all__ = [
    "Budget",
    "time_fn",
    "time_interleaved",
    "peak_memory",
    "cpu_peak_probe_kind",
    "last_level_cache_bytes",
]

#: Bytes written by the cache flush when the cache size cannot be read.
_FALLBACK_FLUSH_BYTES = 64 << 20


@dataclass(frozen=True)
class Budget:
    """How many timed rounds to run: at least ``reps``, more while under ``min_time_s`` of timed
    wall time, and never more than ``max_reps`` (``None``: no cap beyond ``reps`` when
    ``min_time_s`` is 0)."""

    reps: int = 20
    min_time_s: float = 0.0
    max_reps: int | None = None

    def __post_init__(self) -> None:
        if self.reps < 1:
            raise ValueError(f"reps must be >= 1, got {self.reps}")
        if self.min_time_s < 0:
            raise ValueError(f"min_time_s must be >= 0, got {self.min_time_s}")
        if self.max_reps is not None and self.max_reps < self.reps:
            raise ValueError(f"max_reps ({self.max_reps}) must be >= reps ({self.reps})")

    def more(self, done: int, spent_s: float) -> bool:
        """Whether another round should run after ``done`` rounds that took ``spent_s``."""
        if done < self.reps:
            return True
        if self.max_reps is not None and done >= self.max_reps:
            return False
        return spent_s < self.min_time_s


def time_fn(fn: Callable[[], Any], device: str | torch.device = "cpu", *, warmup: int = 3,
            reps: int = 20, min_time_s: float = 0.0, max_reps: int | None = None, inner: int = 1,
            flush_l2: bool = False, cuda_graph: bool = False,
            check: Callable[[], None] | None = None) -> list[float]:
    """Seconds per call of ``fn()``, one sample per timed round (see the module docstring)."""
    return time_interleaved({"fn": fn}, device, warmup=warmup, reps=reps, min_time_s=min_time_s,
                            max_reps=max_reps, inner=inner, flush_l2=flush_l2,
                            cuda_graph=cuda_graph, check=check)["fn"]


def time_interleaved(fns: Mapping[str, Callable[[], Any]], device: str | torch.device = "cpu", *,
                     warmup: int = 3, reps: int = 20, min_time_s: float = 0.0,
                     max_reps: int | None = None, inner: int = 1, flush_l2: bool = False,
                     cuda_graph: bool = False,
                     check: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each callable, timed in rounds A, B, A, B, ...

    Every list has one sample per round, so ``ratio_samples(out["b"], out["a"])`` pairs runs
    taken back to back. ``inner`` calls per sample (the sample is their mean) lift very short
    ops above the timer's resolution.
    """
    if not fns:
        raise ValueError("time_interleaved needs at least one callable")
    if inner < 1:
        raise ValueError(f"inner must be >= 1, got {inner}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    budget = Budget(reps, min_time_s, max_reps)
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        with torch.cuda.device(dev):  # events and graphs record on this device's stream
            return _time_rounds(dict(fns), dev, warmup, budget, inner, flush_l2, cuda_graph, check)
    if cuda_graph:
        raise ValueError(f"cuda_graph=True needs a CUDA device; this one is {dev.type!r}")
    return _time_rounds(dict(fns), dev, warmup, budget, inner, flush_l2, False, check)


def _time_rounds(calls: dict[str, Callable[[], Any]], dev: torch.device, warmup: int,
                 budget: Budget, inner: int, flush_l2: bool, cuda_graph: bool,
                 check: Callable[[], None] | None) -> dict[str, list[float]]:
    """The one repetition loop behind every timer: warm-up rounds, then timed rounds."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        if cuda_graph:
            calls = {name: _capture_graph(fn, inner, dev) for name, fn in calls.items()}
            inner_calls = 1
        else:
            inner_calls = inner
        clock: _Clock = _CudaClock(dev)
    else:
        inner_calls = inner
        clock = _CpuClock()
    flush = _make_flusher(dev) if flush_l2 else None

    def run(name: str) -> None:
        fn = calls[name]
        for _ in range(inner_calls):
            fn()

    done, started = 0, time.perf_counter()
    while budget.more(done, time.perf_counter() - started):
        if check is not None:
            check()
        for name in names:
            if flush is not None:
                flush()
            clock.time(name, run)
        done += 1
    raw = clock.collect()
    return {name: [t / inner for t in raw[name]] for name in names}


class _Clock:
    """Times ``run(name)`` calls and hands back per-name durations in seconds."""

    def time(self, name: str, run: Callable[[str], None]) -> None:
        raise NotImplementedError

    def collect(self) -> dict[str, list[float]]:
        raise NotImplementedError


class _CpuClock(_Clock):
    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def time(self, name: str, run: Callable[[str], None]) -> None:
        t0 = time.perf_counter_ns()
        run(name)
        t1 = time.perf_counter_ns()
        self.samples.setdefault(name, []).append((t1 - t0) * 1e-9)

    def collect(self) -> dict[str, list[float]]:
        return self.samples


class _CudaClock(_Clock):
    """CUDA events on the current stream; read once, after a single synchronisation."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.events: dict[str, list[tuple[Any, Any]]] = {}

    def time(self, name: str, run: Callable[[str], None]) -> None:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        run(name)
        end.record()
        self.events.setdefault(name, []).append((start, end))

    def collect(self) -> dict[str, list[float]]:
        torch.cuda.synchronize(self.device)
        return {name: [s.elapsed_time(e) * 1e-3 for s, e in pairs]
                for name, pairs in self.events.items()}


def _capture_graph(fn: Callable[[], Any], inner: int, device: torch.device) -> Callable[[], None]:
    """Capture ``inner`` calls of ``fn`` into one CUDA graph; returns its replay.

    ``fn`` has already run its warm-up, so lazy initialisation (cuBLAS handles, autotuning)
    happened outside the capture; torch's documented recipe warms up on a side stream too.
    """
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(inner):
            fn()
    torch.cuda.synchronize(device)
    return graph.replay


@cache
def last_level_cache_bytes(device: str = "cpu") -> int:
    """The last-level cache's size: L2 for a CUDA device, the largest CPU cache level from sysfs
    otherwise; a 64 MiB guess where neither can be read."""
    dev = torch.device(device)
    if dev.type == "cuda":
        size = int(getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 0) or 0)
        return size or _FALLBACK_FLUSH_BYTES
    best = 0
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            best = max(best, _parse_cache_size(entry.read_text().strip()))
        except (OSError, ValueError):
            continue
    return best or _FALLBACK_FLUSH_BYTES


def _parse_cache_size(text: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1].upper() in mult:
        return int(text[:-1]) * mult[text[-1].upper()]
    return int(text)


def _make_flusher(device: torch.device) -> Callable[[], None]:
    """A callable that evicts the last-level cache by writing a buffer twice its size."""
    nbytes = 2 * last_level_cache_bytes(str(device) if device.type == "cuda" else "cpu")
    buf = torch.empty(nbytes // 4, dtype=torch.int32, device=device)
    counter = [0]

    def flush() -> None:
        counter[0] += 1
        buf.fill_(counter[0])  # a new value each time, so no write can be elided

    return flush


# ---------------------------------------------------------------------------------- memory


def peak_memory(fn: Callable[[], Any], device: str | torch.device = "cpu") -> int:
    """Bytes of memory ``fn()`` needed at its peak, above what was in use before the call."""
    return peak_memory_probe(fn, device)[0]


def peak_memory_probe(fn: Callable[[], Any], device: str | torch.device = "cpu") -> tuple[int, str]:
    """Peak bytes ``fn()`` held above its start, and which probe measured it.

    CUDA: the caching allocator's high-water mark (tensors only; cuBLAS/cuDNN workspaces that
    bypass the allocator are not counted). CPU: torch's profiler memory events (every tensor
    allocation and free through the CPU allocator, in order), whose running sum peaks at the
    answer — this sees tensors the RSS probe misses when glibc reuses freed heap; where that
    profiler API is unavailable, the process RSS high-water mark (see the module docstring).
    """
    dev = torch.device(device)
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        fn()
        torch.cuda.synchronize(dev)
        return max(0, torch.cuda.max_memory_allocated(dev) - before), "cuda caching allocator high-water mark"
    peak = _profiler_peak(fn)
    if peak is not None:
        return peak, "torch CPU allocations (profiler memory events)"
    return _rss_peak(fn), f"process RSS high-water mark ({cpu_peak_probe_kind()})"


def _profiler_peak(fn: Callable[[], Any]) -> int | None:
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                        if e.name() == "[memory]")
    except (AttributeError, RuntimeError):
        return None
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def _rss_peak(fn: Callable[[], Any]) -> int:
    if cpu_peak_probe_kind() == "vmhwm":
        _reset_hwm()
        before = _status_kib("VmRSS")
        fn()
        return max(0, (_status_kib("VmHWM") - before) * 1024)
    before = _ru_maxrss_bytes()
    fn()
    return max(0, _ru_maxrss_bytes() - before)


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@lru_cache(maxsize=1)
def cpu_peak_probe_kind() -> str:
    """``"vmhwm"`` where the RSS high-water mark can be reset (Linux), else ``"ru_maxrss"``."""
    try:
        _reset_hwm()
        _status_kib("VmHWM")
        return "vmhwm"
    except (OSError, KeyError, ValueError):
        return "ru_maxrss"


def _reset_hwm() -> None:
    with open(_CLEAR_REFS, "w") as f:
        f.write("5")


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _ru_maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss if os.uname().sysname == "Darwin" else rss * 1024
