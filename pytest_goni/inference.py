"""Driving models for inference measurements: model entries, precision, prefill/decode callables,
SDPA backend selection and detection, and OOM-as-data-point bookkeeping.

Shared by the ``prefill``, ``decode``, ``memory`` and ``context_scaling`` kinds so that all of
them build, run and time a model the same way.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from pytest_goni.device import is_oom, release

#: SDPA backends a spec may force, by the names the report uses.
SDPA_BACKENDS = ("flash", "cudnn", "efficient", "math")

#: aten op name fragments -> the SDPA backend that ran (what the profiler sees).
_SDPA_OPS = {
    "_scaled_dot_product_flash_attention_for_cpu": "flash_cpu",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_attention_math": "math",
    "_scaled_dot_product_fused_attention_overrideable": "overrideable",
}

@dataclass(frozen=True)
class ModelEntry:
    """One model as a measurement runs it: the spec model, an optional forced SDPA backend, and
    the label its metrics are keyed by (``baseline_cudnn`` for ``{model: baseline, sdpa: cudnn}``)."""

    model: str
    label: str
    sdpa: str | None = None


def parse_entry(item: str | dict[str, Any]) -> ModelEntry:
    if isinstance(item, str):
        return ModelEntry(item, item)
    sdpa = item.get("sdpa")
    label = item.get("label") or (f"{item['model']}_{sdpa}" if sdpa else item["model"])
    return ModelEntry(item["model"], label, sdpa)


def parse_entries(items: list[Any]) -> list[ModelEntry]:
    entries = [parse_entry(i) for i in items]
    labels = [e.label for e in entries]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"model labels must be unique; repeated: {', '.join(dup)} (give a 'label')")
    return entries


def entry_labels(items: list[Any]) -> list[str]:
    """Labels of the model entries, for ``metrics(params)`` (no model is built)."""
    return [parse_entry(i).label for i in items]


@contextlib.contextmanager
def sdpa_backend(name: str | None) -> Iterator[None]:
    """Restrict torch SDPA to one backend (``None``: PyTorch chooses)."""
    if name is None:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
              "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]
    with sdpa_kernel([chosen]):
        yield


def resolve_precision(precision: str, device: str) -> str:
    if precision == "auto":
        return "bf16-autocast" if device.startswith("cuda") else "fp32"
    return precision


@contextlib.contextmanager
def run_context(device: str, precision: str, sdpa: str | None) -> Iterator[None]:
    """Inference mode, the precision's autocast, and the forced SDPA backend, together."""
    # cache_enabled=False: autocast's weight-cast cache must be off for CUDA-graph capture (torch's
    # CUDA-graphs notes), and each call opens a fresh autocast region, so the cache saves nothing.
    autocast = (torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                               cache_enabled=False)
                if precision == "bf16-autocast" else contextlib.nullcontext())
    with torch.inference_mode(), autocast, sdpa_backend(sdpa):
        yield


def build_models(ctx: Any, entries: list[ModelEntry], precision: str, vocab_size: int | None
                 ) -> dict[str, torch.nn.Module]:
    """Each spec model of ``entries`` once (however many labels, SDPA variants, run it), on the
    context's device, ready for inference in ``precision``."""
    models: dict[str, torch.nn.Module] = {}
    for e in entries:
        if e.model not in models:
            models[e.model] = ctx.build_model(e.model, on_device=True, precision=precision, vocab_size=vocab_size)
    return models


def point_key(label: str, context: int, batch: int) -> str:
    """The metric-key prefix of one (model label, context, batch) point of prefill and decode."""
    return f"{label}.{context}" if batch == 1 else f"{label}.{context}.b{batch}"


def model_vocab(model: torch.nn.Module) -> int:
    """The vocab size a model's tokens must lie in (contract models carry ``vocab_size``)."""
    for attr in ("vocab_size",):
        v = getattr(model, attr, None)
        if isinstance(v, int):
            return v
    cfg = getattr(model, "config", None)
    v = getattr(cfg, "vocab_size", None)
    if isinstance(v, int):
        return v
    raise ValueError(f"cannot tell the vocab size of {type(model).__name__}; give the measurement a "
                     "'vocab_size'")


def random_tokens(batch: int, length: int, vocab: int, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=g).to(device)


def sdpa_backends_used(fn: Callable[[], Any]) -> list[str]:
    """The SDPA backends torch dispatched to while running ``fn()`` (from the profiler's aten ops)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    seen: list[str] = []
    for ev in prof.events():
        for frag, name in _SDPA_OPS.items():
            if frag in ev.name:
                if name not in seen:
                    seen.append(name)
                break
    return seen


# --------------------------------------------------------------------------- CPU memory


def tensor_peak_bytes(fn: Callable[[], Any], device: str) -> tuple[int, str]:
    """Peak bytes ``fn()`` held above its start, and which probe said so (timing.peak_memory_probe)."""
    from pytest_goni.timing import peak_memory_probe

    return peak_memory_probe(fn, device)


# --------------------------------------------------------------------------- decode state


def fixed_shape_state(before: Any, after: Any) -> bool:
    """True when a step maps a state to one of identical tensor structure (recurrent state, static
    KV cache), so it can be replayed from a CUDA graph."""
    from pytest_goni.models.decoding import state_tensors

    a, b = state_tensors(before), state_tensors(after)
    if a is None or b is None or len(a) != len(b):
        return False
    return all(x.shape == y.shape and x.dtype == y.dtype and x.device == y.device for x, y in zip(a, b))


@dataclass
class Decoder:
    """A steady-state decoder: ``advance()`` runs one real decode step and keeps the state.

    Eager by default; :meth:`try_cuda_graph` captures the step into a CUDA graph on fixed buffers
    (`pytest_goni.models.decoding.StepRunner`: recurrent states and the static KV cache alike) after
    checking that a replay gives the eager step's logits; on any obstacle it stays eager and says why.
    """

    model: torch.nn.Module
    token: torch.Tensor
    state: Any
    graph: Any = None
    note: str = ""

    def advance(self) -> None:
        if self.graph is not None:
            self.graph.step()
            return
        _, self.state = self.model.step(self.token, self.state)

    def try_cuda_graph(self, run_ctx: Callable[[], contextlib.AbstractContextManager], max_steps: int = 256
                       ) -> bool:
        from pytest_goni.models.decoding import NotGraphable, StepRunner, clone_state

        try:
            with run_ctx():
                ref_logits, _ = self.model.step(self.token, clone_state(self.state))
            runner = StepRunner(self.model, self.token, self.state, max_steps=max_steps + 1, graph=True,
                                context=run_ctx)
            logits = runner.step()
            torch.cuda.synchronize()
            if not torch.allclose(logits.float(), ref_logits.float(), rtol=2e-2, atol=2e-2):
                self.note = "eager: CUDA-graph replay disagreed with the eager step"
                return False
            self.graph = runner
            self.note = "cuda graph (static state)"
            return True
        except NotGraphable as exc:
            self.note = f"eager: {exc}"
            return False
        except Exception as exc:  # noqa: BLE001 - any capture failure means: time it eagerly
            if is_oom(exc):
                raise
            self.graph = None
            self.note = f"eager: CUDA-graph capture failed ({type(exc).__name__}: {str(exc)[:120]})"
            return False


def state_nbytes(model: torch.nn.Module, state: Any) -> int:
    return int(model.state_bytes(state))


# --------------------------------------------------------------------------- OOM bookkeeping


@dataclass
class OOMRecord:
    """Where a model ran out of memory: the context, and the memory in use at that moment."""

    context: int
    bytes_at_failure: float
    message: str
    unavailable: bool = False  # a forced SDPA backend that cannot run these inputs, not an OOM

    @property
    def is_oom(self) -> bool:
        return not self.unavailable

    def note(self) -> str:
        if self.unavailable:
            return f"SDPA backend unavailable at {self.context} tokens: {self.message}"
        used = self.bytes_at_failure
        mem = f", {used / 2**20:,.0f} MiB in use" if math.isfinite(used) else ""
        return f"OOM at {self.context} tokens{mem}"


def oom_record(exc: BaseException, context: int, device: str) -> OOMRecord:
    """Record an OOM: where, and the allocator's high-water mark at that moment.

    It does not free anything: inside the ``except`` block the exception's traceback still holds
    the failed call's frames and their tensors. Call :func:`release` after the block ends.
    """
    used = math.nan
    if device.startswith("cuda") and torch.cuda.is_available():
        used = float(torch.cuda.max_memory_allocated(device))
    used = float(getattr(exc, "bytes_at_failure", used))  # an OOM that knows its size says so
    return OOMRecord(context, used, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)


def run_or_oom(fn: Callable[[], Any], context: int, device: str) -> tuple[Any, OOMRecord | None]:
    """``(fn(), None)``, or ``(None, record)`` when ``fn`` ran out of memory at ``context`` tokens:
    the record is taken inside the ``except`` block, the device released after it (when the
    traceback no longer holds the failed call's tensors). Any other error propagates."""
    try:
        return fn(), None
    except Exception as exc:
        if not is_oom(exc):
            raise
        rec = oom_record(exc, context, device)
    release(device)
    return None, rec


def time_side_by_side(ctx: Any, calls: dict[str, Callable[[], Any]], context: int, *, warmup: int, reps: int,
                      inner: int = 1) -> tuple[dict[str, list[float]], dict[str, OOMRecord]]:
    """Time several callables interleaved (rounds A, B, C, A, B, C, ... on the same inputs), so
    machine noise hits them alike (DESIGN principle 3). When the interleaved run runs out of
    memory, each is timed alone, so the one that failed is known: it is returned as an OOM record.
    """
    from pytest_goni.timing import time_interleaved

    def run(fns: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
        return time_interleaved(fns, ctx.device, warmup=warmup, reps=reps, inner=inner,
                                check=ctx.check_deadline)

    failed: dict[str, OOMRecord] = {}
    together_failed = False
    try:
        return run(calls), failed
    except Exception as exc:
        if not is_oom(exc):
            raise
        together_failed = True
    if together_failed:
        release(ctx.device)  # outside the except block: its traceback no longer pins memory
    samples: dict[str, list[float]] = {}
    for label, fn in calls.items():
        rec: OOMRecord | None = None
        try:
            samples[label] = run({label: fn})[label]
        except Exception as exc:
            if not is_oom(exc):
                raise
            rec = oom_record(exc, context, ctx.device)
        if rec is not None:
            failed[label] = rec
            release(ctx.device)
    return samples, failed


def backend_unavailable(exc: BaseException) -> bool:
    """True when a forced SDPA backend refused the inputs (torch: "No available kernel", "No viable
    backend for scaled_dot_product_attention")."""
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("no available kernel" in msg or "no viable backend" in msg)


def probe_each(ctx: Any, calls: dict[str, Callable[[], Any]], context: int
               ) -> tuple[dict[str, list[str]], dict[str, OOMRecord]]:
    """Run each callable once under the profiler: the SDPA backends it used, or its failure (an
    OOM, or a forced SDPA backend that cannot run here - a recorded result, not a crash)."""
    backends: dict[str, list[str]] = {}
    failed: dict[str, OOMRecord] = {}
    for label, fn in calls.items():
        rec: OOMRecord | None = None
        try:
            backends[label] = sdpa_backends_used(fn)
        except Exception as exc:
            if backend_unavailable(exc):
                rec = OOMRecord(context, math.nan, str(exc).splitlines()[0][:160], unavailable=True)
            elif not is_oom(exc):
                raise
            else:
                rec = oom_record(exc, context, ctx.device)
        if rec is not None:
            failed[label] = rec
            release(ctx.device)
    return backends, failed
