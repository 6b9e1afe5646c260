"""`groundthink-reset`: a deliberately broken candidate whose state is reset before every token.

It is GroundThink with its memory cut: every position is predicted from its own token alone (the
parallel form runs each token as a sequence of length one, and ``step`` starts from a fresh state).
The V5 statefulness gates must fail it and should_scale must say no — the acceptance check that
the gates can tell a stateful model from one that only looks like one (same parameters, same
shapes, same state tensors).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pytest_goni.models.base import ModelContract, check_tokens, prefill_positions
from pytest_goni.models.groundthink import build_groundthink
from pytest_goni.registry import backend


class ResetEveryToken(ModelContract, nn.Module):
    """Wraps a recurrent LM so that no information passes from one token to the next."""

    state_growth = "constant"

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.vocab_size = inner.vocab_size
        self.config = getattr(inner, "config", None)

    def embedding_parameters(self) -> list[nn.Parameter]:
        return self.inner.embedding_parameters()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = check_tokens(tokens, self.vocab_size)
        ids, where = torch.unique(tokens, return_inverse=True)  # each distinct token once: [U]
        table = self.inner(ids[:, None])[:, 0]                   # [U, V]: a sequence of one token each
        return table[where]                                      # [B, T, V]

    def prefill(self, tokens: torch.Tensor, logits: str = "last") -> tuple[torch.Tensor, Any]:
        out = prefill_positions(self(tokens), logits)  # [B, 1, V] (last) or [B, T, V] (all)
        _, state = self.inner.prefill(tokens[:, -1:])  # the state after the last token only
        return out, state

    def step(self, token: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        token = check_tokens(token, self.vocab_size, ndim=1, name="token")
        logits, state = self.inner.prefill(token[:, None])  # the incoming state is dropped
        return logits[:, -1], state


@backend("groundthink-reset")
def build_groundthink_reset(**config: Any) -> nn.Module:
    """GroundThink with its state reset every token (a broken candidate for the V5 acceptance
    test); takes groundthink's keys."""
    model = ResetEveryToken(build_groundthink(**config))
    model.backend_name = "groundthink-reset"
    return model.eval()
