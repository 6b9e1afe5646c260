"""Fixtures for the SYS-02 measurement tests: toy contract models and a measurement context.

The toy models honour the models/ contract (forward, prefill, step, state_bytes, num_params) and
are registered as backends under ``sys02-test-*`` names, so measurements build them through
``ctx.build_model`` exactly as they build real backends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from pytest_goni.context import MeasureContext
from pytest_goni.registry import REGISTRIES, load_builtins


class ToyRecurrentLM(nn.Module):
    """Embedding -> exponential moving average over time -> head: a fixed-size recurrent state."""

    def __init__(self, vocab_size: int = 32, d_model: int = 16, decay: float = 0.9, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab_size = vocab_size
        self.decay = decay
        self.embed = nn.Embedding(vocab_size, d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.head = nn.Linear(d_model, vocab_size)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)

    def _scan(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = []
        for t in range(x.shape[1]):
            h = self.decay * h + (1 - self.decay) * x[:, t]
            outs.append(h)
        return torch.stack(outs, 1), h

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        y, _ = self._scan(x, torch.zeros_like(x[:, 0]))
        return self.head(torch.tanh(self.proj(y)))

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        x = self.embed(tokens)
        y, h = self._scan(x, torch.zeros_like(x[:, 0]))
        return self.head(torch.tanh(self.proj(y))), {"h": h}

    def step(self, token: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        h = self.decay * state["h"] + (1 - self.decay) * self.embed(token)
        return self.head(torch.tanh(self.proj(h))), {"h": h}

    def state_bytes(self, state: dict[str, Any]) -> int:
        return state["h"].numel() * state["h"].element_size()

    def num_params(self, embedding: bool = True) -> int:
        total = sum(p.numel() for p in self.parameters())
        return total if embedding else total - self.embed.weight.numel()


class SleepLM(ToyRecurrentLM):
    """A model whose prefill takes a known time: ``linear * T + quadratic * T**2`` seconds, so
    crossover tests do not depend on this machine's speed or load."""

    def __init__(self, linear: float = 0.0, quadratic: float = 0.0, **kw: Any):
        super().__init__(**kw)
        self.linear, self.quadratic = linear, quadratic

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        t = tokens.shape[1]
        time.sleep(self.linear * t + self.quadratic * t * t)
        x = self.embed(tokens[:, -1:])
        return self.head(x), {"h": x[:, 0]}


class Allocating(ToyRecurrentLM):
    """Prefill allocates ``bytes_per_token2 * T**2`` bytes, like materialised attention scores."""

    def __init__(self, bytes_per_token2: float = 4.0, **kw: Any):
        super().__init__(**kw)
        self.bpt2 = bytes_per_token2

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        t = tokens.shape[1]
        scores = torch.ones(int(self.bpt2 * t * t) // 4, dtype=torch.float32)
        x = self.embed(tokens[:, -1:]) * scores[:1].sum()
        del scores
        return self.head(x), {"h": x[:, 0]}


class FailsAbove(ToyRecurrentLM):
    """Prefill raises an out-of-memory error past ``limit`` tokens, as a device would."""

    def __init__(self, limit: int = 64, **kw: Any):
        super().__init__(**kw)
        self.limit = limit

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        if tokens.shape[1] > self.limit:
            raise torch.OutOfMemoryError(f"out of memory: {tokens.shape[1]} tokens > {self.limit}")
        return super().prefill(tokens)


REGISTRIES.backend("sys02-test-fails-above")(lambda **cfg: FailsAbove(**cfg))
REGISTRIES.backend("sys02-test-recurrent")(lambda **cfg: ToyRecurrentLM(**cfg))
REGISTRIES.backend("sys02-test-sleep")(lambda **cfg: SleepLM(**cfg))
REGISTRIES.backend("sys02-test-alloc")(lambda **cfg: Allocating(**cfg))


@pytest.fixture(scope="session")
def registries():
    return load_builtins()


@pytest.fixture
def make_ctx(tmp_path: Path):
    """``make_ctx(models, name="m")`` -> a CPU MeasureContext writing artifacts under tmp_path."""

    def make(models: dict[str, dict[str, Any]], name: str = "m") -> MeasureContext:
        return MeasureContext("sys02test", name, "cpu", "cpu", {}, models, tmp_path / "spec.yaml",
                              tmp_path / "artifacts")

    return make


@pytest.fixture
def run_kind(registries):
    """``run_kind(kind, ctx, params)``: run a kind and check it produced exactly its declared
    metrics, each with its declared unit."""

    def run(kind: str, ctx: MeasureContext, params: dict[str, Any]) -> dict[str, Any]:
        entry = registries.kinds[kind]
        import jsonschema

        jsonschema.validate(params, entry.schema)
        out = entry.func(ctx, params)
        declared = entry.metrics(params)
        assert set(out) == set(declared), f"missing {set(declared) - set(out)}, extra {set(out) - set(declared)}"
        for key, metric in out.items():
            assert metric.unit == declared[key], (key, metric.unit, declared[key])
            assert metric.samples, key
        return out

    return run
