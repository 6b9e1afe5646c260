"""Classic recurrent baselines: `lstm` and `gru`, torch's multi-layer cuDNN modules.

The stack is the classic one (no residuals between RNN layers): embedding -> n_layers-deep
nn.LSTM / nn.GRU -> final norm -> head. The state is (h, c) for LSTM, h for GRU: O(1) in context.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pytest_goni.registry import backend

from .base import CausalLM, ModelConfig, SeqModule, build

Tensor = torch.Tensor


class RNNStack(SeqModule):
    """An n-layer nn.LSTM / nn.GRU (batch first) as one layer of the contract."""

    def __init__(self, kind: str, d_model: int, n_layers: int):
        super().__init__()
        cls = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.rnn = cls(d_model, d_model, num_layers=n_layers, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        return self.rnn(x)

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        y, state = self.rnn(x[:, None], state)
        return y[:, 0], state


def _rnn(kind: str, cfg: ModelConfig) -> CausalLM:
    return CausalLM(cfg, [RNNStack(kind, cfg.d_model, cfg.n_layers)])


@backend("lstm")
def build_lstm(**config: Any) -> nn.Module:
    """Multi-layer LSTM language model (n_heads is ignored)."""
    return build("lstm", config, None, lambda cfg, own: _rnn("lstm", cfg))


@backend("gru")
def build_gru(**config: Any) -> nn.Module:
    """Multi-layer GRU language model (n_heads is ignored)."""
    return build("gru", config, None, lambda cfg, own: _rnn("gru", cfg))
