"""The strong attention baseline written out plainly (issue 14's recipe, gpt-fast style): a 12 x 768
pre-norm GPT-style transformer (GPT-2 vocabulary, tied head), a static KV cache, SDPA of one query
against the whole cache under a validity mask, the whole step captured in one CUDA graph. Random
weights and a random cache: it measures speed only. benchmarks/models.py runs it side by side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, d: int, heads: int, capacity: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.register_buffer("k", torch.randn(1, heads, capacity, d // heads))  # the static cache
        self.register_buffer("v", torch.randn(1, heads, capacity, d // heads))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.ln1(x)).view(1, 1, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # [1, H, 1, D]
        self.k.index_copy_(2, pos, k)
        self.v.index_copy_(2, pos, v)
        o = F.scaled_dot_product_attention(q, self.k, self.v, attn_mask=mask)  # one query, whole cache
        x = x + self.proj(o.transpose(1, 2).reshape(1, 1, -1))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Reference(nn.Module):
    def __init__(self, capacity: int, vocab: int = 50257, d: int = 768, layers: int = 12, heads: int = 12):
        super().__init__()
        self.capacity = capacity
        self.emb, self.pos = nn.Embedding(vocab, d), nn.Embedding(capacity, d)
        self.blocks = nn.ModuleList(Block(d, heads, capacity) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def step(self, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """token [1, 1], pos [1] (the position this token takes) -> logits [1, 1, V]."""
        mask = (torch.arange(self.capacity, device=pos.device) <= pos).view(1, 1, 1, -1)
        x = self.emb(token) + self.pos(pos)
        for block in self.blocks:
            x = block(x, pos, mask)
        return F.linear(self.ln(x), self.emb.weight)


def graphed_step(context: int, room: int = 1024, device: str = "cuda", dtype=torch.bfloat16):
    """(replay, eager step, model) at ``context`` cached tokens; each call advances one token."""
    with torch.device(device):  # random weights and cache made on the device (GBs at 128k)
        model = Reference(context + room).to(dtype).eval()
    token = torch.zeros(1, 1, dtype=torch.long, device=device)
    pos = torch.full((1,), context, dtype=torch.long, device=device)

    def eager() -> torch.Tensor:
        logits = model.step(token, pos)
        pos.add_(1)
        return logits

    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                eager()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            eager()
    return graph.replay, torch.inference_mode()(eager), model
