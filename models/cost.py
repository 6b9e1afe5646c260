"""The floor of a decode step and of a prefill: the bytes any implementation must move and the FLOPs
any must do, counted from the model's parameters and its decode state, for any backend.

Counted (a lower bound, so "fraction of floor" <= 1 always means something real):

- weights: every non-embedding parameter plus the LM head (V x d) is read once per call and does
  2 FLOPs per token; the token table is a lookup (B rows, not counted);
- a KV cache (``state_growth == "linear"``): read once per decode step, 2 FLOPs per key/value element
  per query (q.k and p.v); at prefill written once, and causal attention costs T^2/2 queries-by-keys
  per sequence, i.e. T^2 * (K+V elements per token) FLOPs;
- a recurrent state: read and written once per decode step (the kernels write it back), 4 FLOPs per
  state element per token (decay + outer product, readout); at prefill written once;
- logits: B x V of the head's output dtype written (last position only by default).

Time floor = max(FLOPs / matmul rate, bytes / copy bandwidth), both measured on the device
(`pytest_goni.measurements.roofline`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from .base import tree_nbytes


@dataclass(frozen=True)
class Cost:
    flops: float
    bytes: float

    def floor_s(self, flops_per_s: float, bytes_per_s: float) -> float:
        return max(self.flops / flops_per_s, self.bytes / bytes_per_s)

    def bound(self, flops_per_s: float, bytes_per_s: float) -> str:
        return "compute" if self.flops / flops_per_s >= self.bytes / bytes_per_s else "memory"

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _weights(model: torch.nn.Module) -> tuple[int, int]:
    """(elements read per call: non-embedding parameters + the LM head, bytes per element)."""
    cfg = model.config
    body = model.num_params(embedding=False)
    head = cfg.vocab_size * cfg.d_model
    p = next(model.parameters())
    return body + head, p.element_size()


def _state_elements(state: Any) -> tuple[float, int]:
    """(elements, bytes) of a decode state as state_bytes counts it (valid KV tokens only)."""
    nbytes = tree_nbytes(state)
    tensors = _tensors(state)
    size = max(tensors, key=torch.Tensor.numel).element_size() if tensors else 4  # the cache / the S matrix
    return nbytes / size, nbytes


def _tensors(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if hasattr(state, "tensors"):
        return list(state.tensors())
    if isinstance(state, dict):
        return [t for v in state.values() for t in _tensors(v)]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in _tensors(v)]
    return []


def decode_cost(model: torch.nn.Module, state: Any, batch: int = 1) -> Cost:
    """One decode step of ``batch`` sequences from ``state`` (the state after prefill)."""
    n_w, wsize = _weights(model)
    elems, nbytes = _state_elements(state)
    kv = getattr(model, "state_growth", "constant") == "linear"
    vocab = model.config.vocab_size
    flops = 2.0 * batch * n_w + (2.0 if kv else 4.0) * elems
    moved = n_w * wsize + (nbytes if kv else 2.0 * nbytes) + batch * vocab * wsize
    return Cost(flops, moved)


def prefill_cost(model: torch.nn.Module, state: Any, batch: int, length: int, logits: str = "last") -> Cost:
    """A prefill of ``batch`` x ``length`` tokens that leaves ``state`` (and the logits asked for)."""
    n_w, wsize = _weights(model)
    elems, nbytes = _state_elements(state)
    cfg = model.config
    rows = batch * (length if logits == "all" else 1)
    head = cfg.vocab_size * cfg.d_model
    flops = 2.0 * batch * length * (n_w - head) + 2.0 * rows * head
    if getattr(model, "state_growth", "constant") == "linear":
        per_token = elems / (batch * length)  # K and V elements of every layer
        flops += batch * float(length) ** 2 * per_token
    else:
        flops += 4.0 * length * elems
    moved = n_w * wsize + nbytes + rows * cfg.vocab_size * wsize + batch * length * 8
    return Cost(flops, moved)
