"""GPT-2 baselines: transformers' GPT2LMHeadModel built offline from a config, and parameter matching.

Sizes come from ../shared/seeds/v5-gpt2-gates.md ("GPT-2 Architecture Configs (All Scales)").
Two counts are reported for every config, because they differ:

- :func:`seed_formula_params` is the seed's ``gpt2_params()`` exactly as written (no biases, one
  LayerNorm per block, no final LayerNorm);
- :func:`gpt2_true_params` is what GPT2LMHeadModel really holds (tied head), in closed form and
  checked against the built module in the tests: the 124M config counts 124,439,808.

:func:`match_gpt2_config` finds the GPT-2 shape whose true count is nearest a target (total or
non-embedding), for the V5 seed's "parameter-matched comparisons".

Training runs :meth:`GPT2Backend.train_features`, a plain nanoGPT-style forward over the SAME
parameters as transformers' module (so HF weights, ``forward``, ``features``, evaluation and the
decode paths are unchanged): one qkv matmul, ``F.scaled_dot_product_attention(is_causal=True)``,
tanh GELU, the module's own LayerNorms, learned positions and dropout modules. Its values and
gradients equal transformers' forward (float64: to rounding, tested), and ``training.train`` uses it
for GPT-2 unless ``plain_forward=False``. Why: on the H200 transformers' GPT-2 compiled whole
reached 38.1% MFU where a plain GPT of the same shape (with a padded vocabulary) reached 45.8%
(benchmarks/README.md, Training); compiled, transformers' module hands SDPA a materialised causal
mask (no flash kernel), this path ``is_causal=True``. Its speed is measured by
``benchmarks/train_profile.py`` (``loop-plain``), not assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pytest_goni.kernels.kv_attention import kv_decode
from torch import nn

from pytest_goni.registry import backend

from . import fusion
from .base import ConfigError, ModelConfig, ModelContract, build, check_tokens, prefill_positions
from .kv_cache import KVCache, Position


def seed_formula_params(vocab: int = 50257, max_pos: int = 1024, n_layers: int = 6,
                        d_model: int = 384) -> int:
    """The V5 seed's ``gpt2_params`` formula, verbatim: embeddings + positions + layers * block."""
    embeddings = vocab * d_model
    positional = max_pos * d_model
    attn = 4 * d_model * d_model
    mlp = 2 * d_model * (4 * d_model)
    layer_norm = 2 * d_model
    return embeddings + positional + n_layers * (attn + mlp + layer_norm)


def gpt2_true_params(vocab: int = 50257, max_pos: int = 1024, n_layers: int = 12, d_model: int = 768,
                     d_ff: int | None = None, tied: bool = True, embedding: bool = True) -> int:
    """GPT2LMHeadModel's real count: with biases, two LayerNorms per block, the final LayerNorm."""
    d, f = d_model, d_ff or 4 * d_model
    block = (2 * d) + (d * 3 * d + 3 * d) + (d * d + d) + (2 * d) + (d * f + f) + (f * d + d)
    body = n_layers * block + 2 * d
    if not embedding:
        return body
    return body + vocab * d + max_pos * d + (0 if tied else vocab * d)


@dataclass(frozen=True)
class GPT2Shape:
    n_layers: int
    n_heads: int
    d_model: int
    d_ff: int

    def as_config(self) -> dict[str, int]:
        return {"n_layers": self.n_layers, "n_heads": self.n_heads, "d_model": self.d_model,
                "d_ff": self.d_ff}


def match_gpt2_config(target: int, vocab_size: int = 50257, *, max_seq_len: int = 1024,
                      non_embedding: bool = False, head_dim: int = 64, tolerance: float = 0.02
                      ) -> dict[str, Any]:
    """The GPT-2 shape whose true parameter count is nearest ``target``.

    Searched: width a multiple of 32 (heads of ``head_dim``, or of 32 below that width), d_ff = 4
    * width, 1..64 layers. Among shapes within ``tolerance`` (relative) of the best achievable
    count, the one whose width/depth ratio is closest to GPT-2's own family (768/12 = 64) wins, so
    a match is a plausible GPT-2, not a 1-layer giant. Returns the shape, the count it has, the
    target and the relative error.
    """
    if not isinstance(target, (int, float)) or target <= 0:
        raise ConfigError(f"match target must be a positive parameter count, got {target!r}")
    candidates = []
    for d in range(32, 4097, 32):
        for n_layers in range(1, 65):
            count = gpt2_true_params(vocab_size, max_seq_len, n_layers, d, embedding=not non_embedding)
            candidates.append((abs(count - target) / target, d, n_layers, count))
    best_err = min(c[0] for c in candidates)
    close = [c for c in candidates if c[0] <= best_err + tolerance]
    err, d, n_layers, count = min(close, key=lambda c: (abs(math.log(c[1] / c[2] / 64.0)), c[0]))
    heads = max(1, d // head_dim) if d >= head_dim else max(1, d // 32)
    while d % heads:
        heads -= 1
    shape = GPT2Shape(n_layers, heads, d, 4 * d)
    return {**shape.as_config(), "params": count, "target": int(target), "relative_error": err,
            "counted": "non-embedding" if non_embedding else "total"}


class GPT2Backend(ModelContract, nn.Module):
    """GPT2LMHeadModel behind the models/ contract.

    ``forward`` is transformers' own; ``prefill`` and ``step`` run the same weights through our
    inference path: SDPA at prefill, then a static KV cache (models/kv_cache.py) and
    `kernels.kv_decode` per token, graph-capturable. (transformers' cache concatenates on every
    token; the parity law checks both paths agree.)
    """

    state_growth = "linear"

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        hf_config = GPT2Config(
            vocab_size=cfg.vocab_size, n_positions=cfg.max_seq_len, n_embd=cfg.d_model,
            n_layer=cfg.n_layers, n_head=cfg.n_heads, n_inner=cfg.d_ff, resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=cfg.norm_eps,
            tie_word_embeddings=cfg.tie_embeddings, bos_token_id=None, eos_token_id=None,
        )
        self.hf = GPT2LMHeadModel(hf_config)
        self.vocab_size = cfg.vocab_size
        self.max_seq_len = cfg.max_seq_len

    def embedding_parameters(self) -> list[nn.Parameter]:
        t = self.hf.transformer
        return [t.wte.weight, t.wpe.weight, self.hf.lm_head.weight]

    def _check_len(self, end: int) -> None:
        if end > self.max_seq_len:
            raise ValueError(f"position {end - 1} is past max_seq_len={self.max_seq_len} (GPT-2's "
                             "n_positions); build it with a larger max_seq_len")

    @property
    def head(self) -> nn.Linear:
        """The LM head (tied to the token embedding by default): ``forward`` is ``head(features)``."""
        return self.hf.lm_head

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] -> the final LayerNorm's hidden states [B, T, d] (no logits)."""
        tokens = check_tokens(tokens, self.vocab_size)
        self._check_len(tokens.shape[1])
        return self.hf.transformer(input_ids=tokens, use_cache=False).last_hidden_state

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = check_tokens(tokens, self.vocab_size)
        self._check_len(tokens.shape[1])
        return self.hf(input_ids=tokens, use_cache=False).logits

    def train_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] -> the final LayerNorm's hidden states [B, T, d]: :meth:`features` written
        plainly (nanoGPT's block) over transformers' parameters, what ``training.train`` runs.

        Each Conv1D (weight [d_in, d_out]) is applied as ``F.linear(x, weight.t(), bias)``, which
        ATen lowers to ``addmm(bias, x2d, weight)``: one GEMM on the weight as stored, no copy, the
        bias fused, i.e. the same cuBLAS call as transformers' Conv1D. nanoGPT's [d_out, d_in] layout
        would need a transposed copy of every weight per step, and buys nothing: a linear layer's
        forward, input-gradient and weight-gradient GEMMs use all three operand layouts in either
        storage. What this path does drop is transformers' attention-mask plumbing: under
        ``torch.compile`` (transformers' masking_utils skip the mask only eager, or compiled on torch
        >= 2.14) transformers builds a [B, 1, T, T] causal mask and calls SDPA with it and
        ``is_causal=False``, which on CUDA rules out the flash kernel and its skipping of the masked
        half; here SDPA gets ``is_causal=True`` and no mask (tested on the traced graph). Dropout: the module's own
        ``nn.Dropout`` layers (embeddings, residuals) and SDPA's ``dropout_p`` = the attention's
        ``attn_dropout.p`` while training, called in transformers' order, so the random masks match
        too on the CPU (tested)."""
        tokens = check_tokens(tokens, self.vocab_size)
        b, t = tokens.shape
        self._check_len(t)
        tr, cfg = self.hf.transformer, self.hf.config
        _check_plain(cfg)
        n_head, d = cfg.n_head, cfg.n_embd
        tanh_gelu = cfg.activation_function == "gelu_new"
        h = tr.drop(tr.wte(tokens) + tr.wpe(torch.arange(t, device=tokens.device)))  # [B, T, d]
        for block in tr.h:
            attn, mlp = block.attn, block.mlp
            qkv = _conv1d(block.ln_1(h), attn.c_attn)  # [B, T, 3d]: q, k, v in one matmul
            q, k, v = qkv.view(b, t, 3, n_head, d // n_head).permute(2, 0, 3, 1, 4)  # each [B, H, T, D]
            p = attn.attn_dropout.p if attn.training else 0.0
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, scale=attn.scaling)  # [B, H, T, D]
            h = h + attn.resid_dropout(_conv1d(o.transpose(1, 2).reshape(b, t, d), attn.c_proj))  # [B, T, d]
            u = _conv1d(block.ln_2(h), mlp.c_fc)  # [B, T, d_ff]
            u = F.gelu(u, approximate="tanh") if tanh_gelu else mlp.act(u)
            h = h + mlp.dropout(_conv1d(u, mlp.c_proj))  # [B, T, d]
        return tr.ln_f(h)

    def _heads(self, attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q, k, v [B, H, T, D] from the fused c_attn projection of x [B, T, d]."""
        b, t, d = x.shape
        h = self.hf.config.n_head
        return attn.c_attn(x).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)

    def prefill(self, tokens: torch.Tensor, logits: str = "last") -> tuple[torch.Tensor, dict[str, Any]]:
        tokens = check_tokens(tokens, self.vocab_size)
        b, t = tokens.shape
        self._check_len(t)
        tr = self.hf.transformer
        h = tr.wte(tokens) + tr.wpe(torch.arange(t, device=tokens.device))
        caches = []
        for block in tr.h:
            q, k, v = self._heads(block.attn, block.ln_1(h))
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            h = h + block.attn.c_proj(o.transpose(1, 2).reshape(b, t, -1))
            h = h + block.mlp(block.ln_2(h))
            caches.append(KVCache(k, v))
        out = self.hf.lm_head(tr.ln_f(prefill_positions(h, logits)))
        return out, {"pos": t, "position": Position(t, tokens.device), "kv": caches}

    def step(self, token: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        token = check_tokens(token, self.vocab_size, ndim=1, name="token")
        if not isinstance(state, dict) or "kv" not in state:
            raise ValueError("state must be what prefill() or step() of this model returned")
        position = state["position"]
        self._check_len(position.n + 1)
        tr = self.hf.transformer
        h = tr.wte(token) + tr.wpe(position.t)  # [B, d]
        position.advance()
        if fusion.enabled():
            logits = self._step_fused(h, state["kv"])
            return logits, {"pos": state["pos"] + 1, "position": position, "kv": state["kv"]}
        for block, cache in zip(tr.h, state["kv"]):
            q, k, v = (x[:, :, 0] for x in self._heads(block.attn, block.ln_1(h)[:, None]))  # [B, H, D]
            cache.before_step()
            o = kv_decode(q, k, v, cache.k, cache.v, cache.length)
            h = h + block.attn.c_proj(o.reshape(h.shape))
            h = h + block.mlp(block.ln_2(h))
        return self.hf.lm_head(tr.ln_f(h)), {"pos": state["pos"] + 1, "position": position, "kv": state["kv"]}

    def _step_fused(self, h: torch.Tensor, caches: list[KVCache]) -> torch.Tensor:
        """The same block with fewer launches (models/fusion.py): each residual add done inside the
        next LayerNorm's kernel, GELU (tanh form, transformers' ``gelu_new``) as one op."""
        tr = self.hf.transformer
        gelu_new = self.hf.config.activation_function == "gelu_new"
        pending = None
        for block, cache in zip(tr.h, caches):
            h, x = fusion.add_norm(h, pending, block.ln_1)
            q, k, v = (t[:, :, 0] for t in self._heads(block.attn, x[:, None]))  # [B, H, D]
            cache.before_step()
            o = kv_decode(q, k, v, cache.k, cache.v, cache.length)
            h, x = fusion.add_norm(h, block.attn.c_proj(o.reshape(h.shape)), block.ln_2)
            mlp = block.mlp
            pending = (mlp.c_proj(F.gelu(mlp.c_fc(x), approximate="tanh")) if gelu_new else mlp(x))
        return self.hf.lm_head(fusion.add_norm(h, pending, tr.ln_f)[1])


def _conv1d(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """transformers' Conv1D (weight [d_in, d_out]) as a linear layer: x [..., d_in] -> [..., d_out]."""
    return F.linear(x, conv.weight.t(), conv.bias)


def _check_plain(cfg: Any) -> None:
    """The plain forward reproduces transformers' GPT-2 block as this backend builds it; refuse
    the config switches it does not (never set by ``build_gpt2``) instead of computing else."""
    if cfg.add_cross_attention or (cfg.reorder_and_upcast_attn and cfg._attn_implementation == "eager"):
        raise ValueError("gpt2: the plain training forward does not reproduce add_cross_attention or "
                         "reorder_and_upcast_attn; train with plain_forward=False")


@backend("gpt2")
def build_gpt2(**config: Any) -> nn.Module:
    """GPT-2 (transformers), no download. Keys: the common ones (``size`` = seed preset) or
    ``match_params`` (a count) with ``match`` = "total" | "non_embedding" for the nearest shape, or
    ``pretrained`` (a local transformers directory: its shape and weights, e.g. GPT-2 Small)."""
    config = dict(config)
    pretrained = config.pop("pretrained", None)
    if pretrained is not None:
        return _from_pretrained(str(pretrained), config)
    target = config.pop("match_params", None)
    match = config.pop("match", "total")
    if match not in ("total", "non_embedding"):
        raise ConfigError(f"gpt2: match must be 'total' or 'non_embedding', got {match!r}")
    if target is not None:
        for key in ("size", "d_model", "n_layers", "n_heads", "d_ff"):
            if key in config:
                raise ConfigError(f"gpt2: give either match_params or {key}, not both")
        shape = match_gpt2_config(int(float(target)), config.get("vocab_size", 50257),
                                  max_seq_len=config.get("max_seq_len", 1024),
                                  non_embedding=match == "non_embedding")
        config.update({k: shape[k] for k in ("n_layers", "n_heads", "d_model", "d_ff")})
    return build("gpt2", config, None, lambda cfg, own: GPT2Backend(cfg))


def _from_pretrained(path: str, config: dict[str, Any]) -> nn.Module:
    """A GPT2Backend holding the weights of the transformers directory ``path`` (no download)."""
    from pathlib import Path

    from transformers import GPT2LMHeadModel

    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"gpt2: pretrained={path!r} is not a transformers model directory (no config.json)")
    for key in ("size", "d_model", "n_layers", "n_heads", "d_ff", "vocab_size", "match_params", "match"):
        if key in config:
            raise ConfigError(f"gpt2: pretrained gives the shape; drop {key!r}")
    hf = GPT2LMHeadModel.from_pretrained(path, local_files_only=True)
    c = hf.config
    shape = {"vocab_size": c.vocab_size, "d_model": c.n_embd, "n_layers": c.n_layer, "n_heads": c.n_head,
             "d_ff": c.n_inner or 4 * c.n_embd, "max_seq_len": c.n_positions,
             "norm_eps": c.layer_norm_epsilon, "tie_embeddings": bool(c.tie_word_embeddings)}
    model = build("gpt2", {**config, **shape}, None, lambda cfg, own: GPT2Backend(cfg))
    model.hf.load_state_dict(hf.state_dict())
    model.pretrained = path
    return model
