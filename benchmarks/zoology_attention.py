"""A hand-written reference of the attention model in Zoology's figure 2 (Arora et al. 2023,
arXiv:2312.04927), to tell a bug in our transformer backends from a budget problem on MQAR.

The shape, read from HazyResearch/zoology (facts cited in benchmarks/README.md, "MQAR: is our
attention faithful?"):

- ``zoology/experiments/paper/figure2.py`` (2024-01-11, the sweep behind the figure): attention is
  ``zoology.mixers.attention.MHA`` with ``num_heads=1, dropout=0.1``, ``n_layers=2`` (the other
  mixers 4), ``max_position_embeddings=input_seq_len`` (learned absolute positions; 0 for every
  other mixer), ``state_mixer=torch.nn.Identity`` (no MLP);
- ``zoology/mixers/attention.py``: one fused ``Wqkv`` with bias, scale 1/sqrt(head_dim), additive
  causal mask of -10000, softmax, dropout on the attention weights, ``out_proj`` with bias; no rotary;
- ``zoology/model.py``: GPT-2 token + position embeddings, pre-LayerNorm blocks whose residual is
  carried between blocks (``TransformerBlock.forward`` returns ``norm2(residual)`` as the next
  block's input, so with an Identity state mixer each block adds ``LN2(r)`` to the residual),
  ``embed_dropout`` 0.1 on the first block's input, final LayerNorm, LM head tied to the token
  embedding, N(0, 0.02) init with ``out_proj`` at 0.02 / sqrt(2 n_layers), zero biases.

Written from that description (no code copied). It offers ``features`` and a bias-free ``head``
as the models/ backends do, so the same training loop, chunked loss and scorer run it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


class OneHeadAttention(nn.Module):
    """Causal softmax attention, ``n_heads`` heads (Zoology fig. 2: 1), biases on, dropout on weights."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.h, self.dropout = n_heads, dropout
        self.Wqkv = nn.Linear(d, 3 * d, bias=True)
        self.out_proj = nn.Linear(d, d, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.Wqkv(x).view(b, t, 3, self.h, d // self.h).unbind(2)  # [B, T, H, Dh] each
        scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(d // self.h)  # [B, H, T, T]
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        weights = F.dropout(scores.softmax(-1), self.dropout if self.training else 0.0)
        return self.out_proj(torch.einsum("bhts,bshd->bthd", weights, v).reshape(b, t, d))


class Block(nn.Module):
    """Zoology's TransformerBlock with an Identity state mixer: (x, r) -> (LN2(r'), r'),
    r' = r + x + attn(LN1(r + x))."""

    def __init__(self, d: int, n_heads: int, dropout: float, embed_dropout: float | None):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.mixer = OneHeadAttention(d, n_heads, dropout)
        self.drop_in = nn.Dropout(embed_dropout if embed_dropout is not None else 0.0)

    def forward(self, x: Tensor, residual: Tensor | None) -> tuple[Tensor, Tensor]:
        x = self.drop_in(x)
        residual = x if residual is None else residual + x
        residual = residual + self.mixer(self.norm1(residual))
        return self.norm2(residual), residual


class ZoologyAttentionLM(nn.Module):
    """tokens [B, T] -> logits [B, T, V]: the fig. 2 attention model (see the module docstring)."""

    def __init__(self, vocab_size: int, d_model: int, n_layers: int = 2, n_heads: int = 1, max_seq_len: int = 64,
                 dropout: float = 0.1, embed_dropout: float = 0.1, seed: int = 0, positions: bool = True):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab_size, d_model)
            self.pos_embed = nn.Embedding(max_seq_len, d_model) if positions else None
            self.layers = nn.ModuleList(Block(d_model, n_heads, dropout, embed_dropout if i == 0 else None)
                                        for i in range(n_layers))
            self.norm = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, vocab_size, bias=False)
            self.head.weight = self.embed.weight
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                elif p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * n_layers) if name.endswith("out_proj.weight") else 0.02
                    nn.init.normal_(p, std=std)

    def features(self, tokens: Tensor) -> Tensor:
        """Final-LayerNorm hidden states [B, T, d] (``forward`` is ``head(features)``)."""
        h = self.embed(tokens)
        if self.pos_embed is not None:
            h = h + self.pos_embed(torch.arange(tokens.shape[1], device=tokens.device))
        residual = None
        for layer in self.layers:
            h, residual = layer(h, residual)
        return self.norm(residual + h)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.features(tokens))
