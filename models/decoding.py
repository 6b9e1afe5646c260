"""Inference as a user deploys it, on top of the model contract: a decode step captured once in a CUDA
graph and replayed per token (gpt-fast's recipe), greedy generation as one loop of replays, and a
prefill captured for a fixed shape.

A step can be captured when its state keeps its tensors' shapes: recurrent states (new tensors each
step, copied back into the captured buffers inside the graph) and the static KV cache
(models/kv_cache.py: written in place at a device-side length). Host-side counters (a CausalLM's
``pos``, a cache's ``n``) do not advance during replays; :meth:`StepRunner.state` brings them up to
date. Without CUDA (or with ``graph=False``) the runner does the same work eagerly, which is how the
CPU tests check the static-cache path.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any

import torch

from .kv_cache import KVCache, Position, advance_host, reserve

Tensor = torch.Tensor
Context = Callable[[], contextlib.AbstractContextManager]


def state_tensors(state: Any) -> list[Tensor] | None:
    """The tensors of a decode state in a fixed order (dicts, lists, tuples, and objects with
    ``tensors()``); Python scalars are host counters and skipped. None for anything else."""
    if isinstance(state, torch.Tensor):
        return [state]
    if state is None or isinstance(state, (int, float, bool, str)):
        return []
    if hasattr(state, "tensors"):
        return list(state.tensors())
    if isinstance(state, dict):
        items: Any = state.values()
    elif isinstance(state, (list, tuple)):
        items = state
    else:
        return None
    out: list[Tensor] = []
    for value in items:
        sub = state_tensors(value)
        if sub is None:
            return None
        out.extend(sub)
    return out


def clone_state(state: Any) -> Any:
    """A deep copy of a decode state (tensors cloned, caches and counters copied)."""
    if isinstance(state, torch.Tensor):
        return state.clone()
    if isinstance(state, (KVCache, Position)):
        new = object.__new__(type(state))
        new.__dict__.update({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in state.__dict__.items()})
        return new
    if isinstance(state, dict):
        return {k: clone_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [clone_state(v) for v in state]
    if isinstance(state, tuple):
        return tuple(clone_state(v) for v in state)
    return state


def _host_snapshot(state: Any) -> list[tuple[Any, Any, int]]:
    """(container, key, value) of every host counter in a state: ``pos`` ints of dicts and the
    ``n`` of caches and positions. Restoring them undoes what running a step's Python did."""
    if isinstance(state, (KVCache, Position)):
        return [(state, "n", state.n)]
    out: list[tuple[Any, Any, int]] = []
    if isinstance(state, dict):
        for key, value in state.items():
            if isinstance(value, int) and not isinstance(value, bool):
                out.append((state, key, value))
            else:
                out.extend(_host_snapshot(value))
    elif isinstance(state, (list, tuple)):
        for value in state:
            out.extend(_host_snapshot(value))
    return out


def _restore(snapshot: list[tuple[Any, Any, int]]) -> None:
    for container, key, value in snapshot:
        if isinstance(container, dict):
            container[key] = value
        else:
            setattr(container, key, value)


def _adopt_host(old: Any, new: Any) -> None:
    """Copy the host ints of a step's returned state into the runner's state (same structure)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key, value in new.items():
            if isinstance(value, int) and not isinstance(value, bool) and key in old:
                old[key] = value
            elif key in old:
                _adopt_host(old[key], value)
    elif isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        for a, b in zip(old, new):
            _adopt_host(a, b)


class NotGraphable(ValueError):
    """The step's state does not keep its shape (or holds objects a graph cannot carry)."""


class StepRunner:
    """Decode steps that write every new state into one set of buffers, eagerly or from a CUDA graph.

    ``token`` [B] is the input buffer; ``greedy=True`` feeds each step's argmax back into it and
    records it in :attr:`tokens` (so generation needs no host round trip). ``max_steps`` bounds the
    steps after capture: KV caches get that much room before the capture, since a graph cannot grow
    them. ``context`` wraps every call that touches tensors (inference mode, autocast): the state
    tensors a prefill made under inference mode may only be written under it.
    """

    def __init__(self, model: torch.nn.Module, token: Tensor, state: Any, *, max_steps: int,
                 graph: bool | None = None, greedy: bool = False, context: Context | None = None,
                 warmup: int = 2):
        self.model, self.greedy, self.max_steps = model, greedy, max_steps
        self.context = context or contextlib.nullcontext
        self.graph_wanted = token.is_cuda if graph is None else graph
        if self.graph_wanted and not token.is_cuda:
            raise ValueError("graph=True needs CUDA tensors")
        if state_tensors(state) is None:
            raise NotGraphable(f"the state holds an object of a type a runner cannot carry "
                               f"({type(state).__name__} tree)")
        self._done = self._replays = 0
        with self.context():
            self.token = token.clone()
            self.tokens = torch.zeros(token.shape[0], max_steps + warmup, dtype=torch.long, device=token.device)
            self._index = torch.zeros((), dtype=torch.long, device=token.device)
            reserve(state, max_steps + warmup + 1)
            self._state = state
            self.logits: Tensor | None = None
            self._graph: Any = None
            if self.graph_wanted:
                self._capture(warmup)
        self.mode = "cuda graph" if self._graph is not None else "eager (static buffers)"

    # ------------------------------------------------------------------ one step, two ways
    def _body(self) -> Tensor:
        """One step: model.step on the buffers, new state copied into them, greedy feedback."""
        logits, new = self.model.step(self.token, self._state)
        old_t, new_t = state_tensors(self._state), state_tensors(new)
        if new_t is None or len(old_t) != len(new_t) or any(
                a.shape != b.shape or a.dtype != b.dtype for a, b in zip(old_t, new_t)):
            raise NotGraphable("the decode state changes shape from one step to the next")
        for dst, src in zip(old_t, new_t):
            if dst is not src:
                dst.copy_(src)
        _adopt_host(self._state, new)
        if self.greedy:
            nxt = logits.argmax(-1)
            self.tokens.index_copy_(1, self._index.view(1), nxt[:, None])
            self._index.add_(1)
            self.token.copy_(nxt)
        return logits

    def _capture(self, warmup: int) -> None:
        real = (self._state, self.token, self._index)
        # warm-up (Triton JIT, cuBLAS handles) on a copy, on a side stream: the state stays put
        self._state, self.token, self._index = clone_state(self._state), self.token.clone(), self._index.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self._body()
        torch.cuda.current_stream().wait_stream(side)
        self._state, self.token, self._index = real
        snapshot = _host_snapshot(self._state)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.logits = self._body()
        _restore(snapshot)  # capturing ran the step's Python (host counters moved) but no kernel
        self._graph = graph

    # ------------------------------------------------------------------ use
    def step(self) -> Tensor:
        """Run one decode step; returns the logits [B, V] (a buffer the next step overwrites)."""
        if self._done >= self.max_steps:
            raise RuntimeError(f"this runner was sized for {self.max_steps} steps; build a new one")
        self._done += 1
        if self._graph is not None:
            self._graph.replay()
            self._replays += 1
            return self.logits  # type: ignore[return-value]
        with self.context():
            self.logits = self._body()
        return self.logits

    def generate(self, n: int) -> Tensor:
        """n greedy tokens [B, n] as one loop of steps (replays), no host sync inside the loop."""
        if not self.greedy:
            raise ValueError("generate() needs a runner built with greedy=True")
        first = self._done
        for _ in range(n):
            self.step()
        return self.tokens[:, first:first + n]

    @property
    def state(self) -> Any:
        """The decode state after the steps run so far (host counters brought up to date)."""
        if self._replays:
            advance_host(self._state, self._replays)
            self._replays = 0
        return self._state

    def set_token(self, token: Tensor) -> None:
        """Feed ``token`` [B] to the next step (teacher forcing; greedy runners feed themselves)."""
        with self.context():
            self.token.copy_(token)


def prefill_call(model: torch.nn.Module, tokens: Tensor, logits: str = "last") -> tuple[Tensor, Any]:
    """``model.prefill(tokens, logits=...)`` where the model takes the option (every built-in
    backend); a model without it computes its own default (all positions)."""
    try:
        takes = "logits" in inspect.signature(model.prefill).parameters
    except (TypeError, ValueError):
        takes = False
    return model.prefill(tokens, logits=logits) if takes else model.prefill(tokens)


class PrefillRunner:
    """``model.prefill`` on one fixed [B, T] token buffer, replayed from a CUDA graph on CUDA (no host
    work per call: what a serving engine with fixed prompt buckets does), eagerly elsewhere.

    :meth:`__call__` returns (logits, state) in buffers the next call overwrites; clone the state
    to decode from it while prefilling again.
    """

    def __init__(self, model: torch.nn.Module, tokens: Tensor, *, logits: str = "last",
                 graph: bool | None = None, context: Context | None = None, warmup: int = 1):
        self.model, self.logits_mode = model, logits
        self.context = context or contextlib.nullcontext
        use_graph = tokens.is_cuda if graph is None else graph
        self._graph: Any = None
        with self.context():
            self.tokens = tokens.clone()
            if use_graph:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(warmup):
                        prefill_call(model, self.tokens, logits)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self.out = prefill_call(model, self.tokens, logits)
                self._graph = graph
        self.mode = "cuda graph" if self._graph is not None else "eager"

    def __call__(self) -> tuple[Tensor, Any]:
        if self._graph is not None:
            self._graph.replay()
            return self.out
        with self.context():
            return prefill_call(self.model, self.tokens, self.logits_mode)
