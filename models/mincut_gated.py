"""`mincut-gated`: a small sliding-window Transformer that runs each request at the tier its gate picks.

The shape and the tiers are those of the Rust crate the tiers seed (../shared/seeds/
mincut-gated-tiers.md) documents, whose own inference path only counts operations; this one computes:

- tier 0: every layer, the request's full sequence, window W (the plain windowed Transformer;
  :meth:`MincutGatedLM.forward` is this at every position);
- tier 1: the first ``layers_degraded`` layers (early exit), the last ``seq_len_degraded`` tokens,
  window ``window_degraded``;
- tier 2: one layer, the last ``seq_len_safe`` tokens, window ``window_safe``, no KV writes (freeze);
- tier 3: skip - the stored logits of an earlier request with the same input signature, else a
  cheap scorer (the last token's embedding through the final norm and the head: a bigram model that
  shares the LM's weights).

Presets (``preset: micro | baseline``) are the crate's ``TransformerConfig::micro()`` and
``baseline()``: seq 32 / 64, hidden 128 / 256, 4 heads, 2 / 4 layers, window 8 / 16, degraded window
4 / 8, degraded layers 1 / 2, degraded seq 16 / 32, safe seq 4 / 8, FFN x4, logits 256 / 1024 (the
vocabulary). Blocks: pre-LayerNorm, rotary positions (so a shorter tier-1/2 sequence is in
distribution), windowed softmax attention through ``pytest_goni.kernels.sliding_window_attention``,
GELU MLP. ``tier_dropout`` > 0 trains early exit (LayerSkip-style): each training forward runs, with
that probability, a random shallower depth and a narrower window, so the early-exit head is trained.

The gate (:mod:`.gate_policy`) and lambda (:mod:`.mincut`) sit beside this module;
:class:`GatedSession` runs requests through them and counts KV-cache bytes read and written.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_goni import kernels
from pytest_goni.registry import backend

from .base import MLP, CausalLM, ConfigError, ModelConfig, SeqModule, build
from .gate_policy import TIER_NORMAL, TIER_REDUCED, TIER_SAFE, TIER_SKIP, Decision
from .layers import heads, rotary_bthd

Tensor = torch.Tensor

#: The crate's presets (src/config.rs): the common keys and this backend's own.
PRESETS: dict[str, dict[str, int]] = {
    "micro": {"d_model": 128, "n_heads": 4, "n_layers": 2, "vocab_size": 256, "seq_len": 32, "window": 8,
              "window_degraded": 4, "layers_degraded": 1, "seq_len_degraded": 16, "seq_len_safe": 4},
    "baseline": {"d_model": 256, "n_heads": 4, "n_layers": 4, "vocab_size": 1024, "seq_len": 64, "window": 16,
                 "window_degraded": 8, "layers_degraded": 2, "seq_len_degraded": 32, "seq_len_safe": 8},
}

#: Own keys and their defaults (None: derived from the others, see :func:`_tier_shapes`).
OWN_KEYS: dict[str, Any] = {
    "preset": None, "seq_len": 32, "window": 8, "window_degraded": None, "layers_degraded": None,
    "seq_len_degraded": None, "seq_len_safe": 4, "window_safe": 4, "ffn_mult": 4, "tier_dropout": 0.0,
    "cache_entries": 4096,
}


@dataclass(frozen=True)
class TierShape:
    """What one tier runs: layers, the last ``seq_len`` tokens of the request, the window."""

    layers: int
    seq_len: int
    window: int


class WindowAttention(SeqModule):
    """Causal softmax attention over the last ``window`` tokens, rotary q/k; the decode state keeps
    only the keys and values a future query can still see (``window - 1`` tokens)."""

    def __init__(self, d_model: int, n_heads: int, window: int):
        super().__init__()
        self.n_heads, self.window = n_heads, window
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def qkv_heads(self, x: Tensor, start: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """x [B, T, d] -> q, k, v [B, T, H, D] (rotary on q and k at positions start..)."""
        q, k, v = heads(self.qkv(x), 3 * self.n_heads).chunk(3, dim=2)
        return rotary_bthd(q, start), rotary_bthd(k, start), v

    def attend(self, x: Tensor, window: int) -> tuple[Tensor, Tensor, Tensor]:
        """(output [B, T, d], k, v [B, T, H, D]) with the given window."""
        q, k, v = self.qkv_heads(x)
        o = kernels.sliding_window_attention(q, k, v, window)
        return self.out(o.flatten(2)), k, v

    def probs(self, x: Tensor, window: int) -> Tensor:
        """Attention probabilities [B, H, T, T] with the window's band mask (the lambda probe)."""
        q, k, _ = self.qkv_heads(x)
        t = x.shape[1]
        scores = torch.einsum("bthd,bshd->bhts", q.float(), k.float()) * q.shape[-1] ** -0.5
        i = torch.arange(t, device=x.device)
        band = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)
        return torch.softmax(scores.masked_fill(~band, float("-inf")), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.attend(x, self.window)[0]

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        y, k, v = self.attend(x, self.window)
        return y, {"k": self._keep(k), "v": self._keep(v), "pos": x.shape[1]}

    def _keep(self, x: Tensor) -> Tensor:
        """The last ``window - 1`` positions of x [B, T, H, D]: all a later query can still see."""
        keep = self.window - 1
        return x[:, -keep:] if keep else x[:, :0]

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        q, k, v = self.qkv_heads(x[:, None], state["pos"])
        k_all = torch.cat([state["k"], k], dim=1)  # [B, <=W, H, D]
        v_all = torch.cat([state["v"], v], dim=1)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k_all.transpose(1, 2), v_all.transpose(1, 2))
        new = {"k": self._keep(k_all), "v": self._keep(v_all), "pos": state["pos"] + 1}
        return self.out(o.transpose(1, 2).flatten(1)), new


class Block(SeqModule):
    """Pre-LayerNorm block: x + attn(ln1(x)), then + mlp(ln2(x))."""

    def __init__(self, cfg: ModelConfig, window: int, ffn_mult: int):
        super().__init__()
        d = cfg.d_model
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=cfg.norm_eps), nn.LayerNorm(d, eps=cfg.norm_eps)
        self.attn = WindowAttention(d, cfg.n_heads, window)
        self.mlp = MLP(d, cfg.d_ff or ffn_mult * d, "gelu", bias=True)

    def run(self, x: Tensor, window: int) -> tuple[Tensor, Tensor, Tensor]:
        """(x' [B, T, d], k, v [B, T, H, D]) at the given window: the tiered path."""
        a, k, v = self.attn.attend(self.ln1(x), window)
        x = x + a
        return x + self.mlp(self.ln2(x)), k, v

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x, self.attn.window)[0]

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        a, s = self.attn.prefill(self.ln1(x))
        x = x + a
        return x + self.mlp(self.ln2(x)), s

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        a, s = self.attn.step(self.ln1(x), state)
        x = x + a
        return x + self.mlp(self.ln2(x)), s


class MincutGatedLM(CausalLM):
    """The windowed LM with tiered execution (:meth:`run_tier`) besides the model contract."""

    def __init__(self, cfg: ModelConfig, own: dict[str, Any]):
        tiers = _tier_shapes(cfg, own)
        layers = [Block(cfg, own["window"], own["ffn_mult"]) for _ in range(cfg.n_layers)]
        super().__init__(cfg, layers, final_norm=nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps), state_growth="bounded")
        self.tiers = tiers
        self.own = dict(own)
        self.window = own["window"]
        self.tier_dropout = float(own["tier_dropout"])
        for name, p in self.named_parameters():  # GPT-2 init, residual projections scaled by 1/sqrt(2L)
            if p.dim() == 2 and "embed" not in name and "head" not in name:
                scale = (2 * cfg.n_layers) ** -0.5 if name.endswith(("out.weight", "down.weight")) else 1.0
                nn.init.normal_(p, std=0.02 * scale)

    def hidden(self, tokens: Tensor, n_layers: int, window: int) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Final-norm input [B, T, d] after the first ``n_layers`` blocks at ``window``, and each
        block's keys and values."""
        h = self.embed(tokens)
        kv = []
        for block in self.layers[:n_layers]:
            h, k, v = block.run(h, window)
            kv.append((k, v))
        return h, kv

    def features(self, tokens: Tensor) -> Tensor:
        """Final-norm hidden states [B, T, d] (``forward`` is ``head(features)``); in training, with
        probability ``tier_dropout``, those of a tier-1 or tier-2 exit (early-exit training)."""
        if self.training and self.tier_dropout > 0 and float(torch.rand(())) < self.tier_dropout:
            shallow = self.tiers[TIER_REDUCED] if float(torch.rand(())) < 0.5 else self.tiers[TIER_SAFE]
            h, _ = self.hidden(_checked(self, tokens), shallow.layers, shallow.window)
            return self.norm(h)
        return super().features(tokens)

    def run_tier(self, tokens: Tensor, tier: int, dense: bool = False
                 ) -> tuple[Tensor, list[tuple[Tensor, Tensor]], TierShape]:
        """Next-token logits [B, V] of a request ``tokens`` [B, T] at a computing tier (0-2), the
        keys/values of the blocks it ran, and the shape it ran. ``dense``: the window spans the
        whole (cropped) sequence (plain causal attention, the seed's 'without sparse attention')."""
        shape = self.tiers[tier]
        x = tokens[:, -shape.seq_len:]
        window = x.shape[1] if dense else shape.window
        h, kv = self.hidden(x, shape.layers, window)
        return self.head(self.norm(h[:, -1])), kv, TierShape(shape.layers, x.shape[1], window)

    def cheap_scores(self, tokens: Tensor) -> Tensor:
        """Tier 3 on a cache miss: the last token's embedding through the final norm and head [B, V]."""
        return self.head(self.norm(self.embed(tokens[:, -1])))

    @torch.no_grad()
    def attention_probs(self, tokens: Tensor) -> Tensor:
        """Layer 0's attention probabilities [B, H, T, T] at the tier-0 window (the lambda probe)."""
        block = self.layers[0]
        return block.attn.probs(block.ln1(self.embed(tokens)), self.window)


def _checked(model: CausalLM, tokens: Tensor) -> Tensor:
    from .base import check_tokens

    return check_tokens(tokens, model.vocab_size)


def _tier_shapes(cfg: ModelConfig, own: dict[str, Any]) -> dict[int, TierShape]:
    w = own["window"]
    for key in ("seq_len", "window", "seq_len_safe", "window_safe", "ffn_mult"):
        if not isinstance(own[key], int) or own[key] < 1:
            raise ConfigError(f"mincut-gated: {key} must be a positive integer, got {own[key]!r}")
    if not 0 <= float(own["tier_dropout"]) < 1:
        raise ConfigError(f"mincut-gated: tier_dropout must be in [0, 1), got {own['tier_dropout']!r}")
    seq = own["seq_len"]
    t1 = TierShape(own["layers_degraded"] or max(1, cfg.n_layers // 2), own["seq_len_degraded"] or max(1, seq // 2),
                   own["window_degraded"] or max(1, w // 2))
    t2 = TierShape(1, own["seq_len_safe"], min(own["window_safe"], t1.window))
    if t1.layers > cfg.n_layers or t1.window > w or t1.seq_len > seq or t2.seq_len > t1.seq_len:
        raise ConfigError(f"mincut-gated: degraded tiers must not exceed tier 0 (layers {cfg.n_layers}, seq {seq}, "
                          f"window {w}); got tier 1 {t1}, tier 2 {t2}")
    return {TIER_NORMAL: TierShape(cfg.n_layers, seq, w), TIER_REDUCED: t1, TIER_SAFE: t2}


def _make(cfg: ModelConfig, own: dict[str, Any]) -> MincutGatedLM:
    return MincutGatedLM(cfg, own)


@backend("mincut-gated")
def build_mincut_gated(**config: Any) -> nn.Module:
    """Windowed Transformer with gated tiers 0-3 (keys: common + preset micro|baseline, seq_len, window,
    window_degraded, layers_degraded, seq_len_degraded, seq_len_safe, window_safe, ffn_mult,
    tier_dropout, cache_entries)."""
    preset = config.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"mincut-gated: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        config = {**PRESETS[preset], **config}
    return build("mincut-gated", config, OWN_KEYS, _make)


# --------------------------------------------------------------------------- serving requests


@dataclass
class TierResult:
    """One served request: next-token logits [V], the tier run, KV bytes read and written, and
    whether tier 3 found the input's signature in the cache."""

    logits: Tensor
    tier: int
    kv_read: int
    kv_written: int
    cache_hit: bool = False


def window_reads(n: int, window: int) -> int:
    """Keys (and as many values) a causal window reads over ``n`` queries: sum of min(t+1, window)."""
    full = min(n, window)
    return full * (full + 1) // 2 + (n - full) * window


class GatedSession:
    """Serves requests on one model: runs the tier of a :class:`Decision`, keeps the logits cache
    (input signature -> logits) and a per-layer KV cache of the session, and counts the KV bytes
    each request reads (keys and values its windowed attention sees) and writes (what it stores)."""

    def __init__(self, model: MincutGatedLM, cache_entries: int | None = None, dense: bool = False):
        self.model = model
        self.dense = dense  # computing tiers attend over their whole sequence (no window)
        self.cache: OrderedDict[bytes, Tensor] = OrderedDict()
        self.cache_entries = cache_entries or model.own["cache_entries"]
        cfg = model.config
        p = next(model.parameters())
        self.seq_len = model.tiers[TIER_NORMAL].seq_len
        self.kv = torch.zeros(cfg.n_layers, 2, self.seq_len, cfg.d_model, dtype=p.dtype, device=p.device)
        self.kv_len = [0] * cfg.n_layers
        self.itemsize = p.element_size()

    @staticmethod
    def signature(tokens: Tensor) -> bytes:
        """The input signature a cache hit must match: a digest of the token ids."""
        return hashlib.blake2b(tokens.cpu().numpy().tobytes(), digest_size=16).digest()

    @torch.inference_mode()
    def infer(self, tokens: Tensor, decision: Decision) -> TierResult:
        """Serve one request ``tokens`` [T] (int64) at the tier ``decision`` chose."""
        if decision.tier == TIER_SKIP:
            sig = self.signature(tokens)
            hit = self.cache.get(sig)
            if hit is not None:
                self.cache.move_to_end(sig)
                return TierResult(hit, TIER_SKIP, 0, 0, cache_hit=True)
            return TierResult(self.model.cheap_scores(tokens[None])[0], TIER_SKIP, 0, 0)
        if decision.flush_kv:
            self.kv_len = [0] * len(self.kv_len)
        logits, kv, shape = self.model.run_tier(tokens[None], decision.tier, dense=self.dense)
        logits = logits[0]
        d = self.kv.shape[-1]
        read = len(kv) * 2 * window_reads(shape.seq_len, shape.window) * d * self.itemsize
        written = 0
        if decision.kv_writes and decision.tier != TIER_SAFE:  # tier 2 freezes the cache
            n = shape.seq_len
            for layer, (k, v) in enumerate(kv):
                self.kv[layer, 0, :n] = k[0].flatten(1)
                self.kv[layer, 1, :n] = v[0].flatten(1)
                self.kv_len[layer] = n
            written = len(kv) * 2 * n * d * self.itemsize
        self._store(tokens, logits)
        return TierResult(logits, decision.tier, read, written)

    def _store(self, tokens: Tensor, logits: Tensor) -> None:
        self.cache[self.signature(tokens)] = logits
        if len(self.cache) > self.cache_entries:
            self.cache.popitem(last=False)
