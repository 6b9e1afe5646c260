"""What every backend shares: config parsing, the embedding/stack/norm/head LM, state sizes, counts.

A backend only writes its *layers*. A layer is a :class:`SeqModule` with two forms:

- ``forward(x[B,T,d]) -> y[B,T,d]``: the parallel (training) form;
- ``prefill(x) -> (y, state)`` and ``step(x[B,d], state) -> (y[B,d], state)``: the recurrent form.

:class:`CausalLM` stacks layers between a token embedding (plus learned positions where asked) and a
final norm + LM head, and honours the models/ contract of docs/CONTRACTS.md:
``forward(tokens) -> logits``, ``prefill(tokens, logits="last"|"all") -> (logits, state)`` (the
last position's logits [B, 1, V] by default, as serving computes them; every position's for
perplexity), ``step(token, state) -> (logits, state)``, ``state_bytes(state)``, ``num_params(embedding=...)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import fusion
from .kv_cache import Position

Tensor = torch.Tensor

#: What ``prefill(tokens, logits=...)`` returns: the last position's logits or every position's.
LOGITS = ("last", "all")


def prefill_positions(h: Tensor, logits: str) -> Tensor:
    """The hidden states a prefill turns into logits: the last position [B, 1, d] or all of them."""
    if logits not in LOGITS:
        raise ValueError(f"logits must be one of {LOGITS}, got {logits!r}")
    return h[:, -1:] if logits == "last" else h


class ConfigError(ValueError):
    """A backend was given a config it cannot build; the message names the key and what is allowed."""


#: Named sizes from ../shared/seeds/v5-gpt2-gates.md ("GPT-2 Architecture Configs (All Scales)"):
#: the shape (layers, heads, width, MLP width) the seed gives for each scale. Every backend may
#: take ``size``; the shape is the seed's, the true parameter count is whatever that shape holds
#: for the backend (see :func:`pytest_goni.models.params.param_table`). One deviation: the seed's
#: 30M config says 12 heads at d_model 512, which no multi-head layer can split (512 / 12 is not an
#: integer); we use 8 heads of 64, GPT-2's head size.
SIZES: dict[str, dict[str, int]] = {
    "3.5M": {"n_layers": 3, "n_heads": 4, "d_model": 256, "d_ff": 1024},
    "8M": {"n_layers": 6, "n_heads": 6, "d_model": 384, "d_ff": 1536},
    "30M": {"n_layers": 12, "n_heads": 8, "d_model": 512, "d_ff": 2048},
    "125M": {"n_layers": 12, "n_heads": 12, "d_model": 768, "d_ff": 3072},
}


#: What ``size`` sets. The seed's d_ff (4 d_model everywhere) is GPT-2's GELU width; a backend with
#: another MLP (SwiGLU, RWKV channel mix) keeps its own default width, so a preset means the same
#: depth and width, not a 1.5x wider MLP.
PRESET_KEYS = ("n_layers", "n_heads", "d_model")


@dataclass
class ModelConfig:
    """The keys every backend understands, so a spec can drive all backends alike."""

    vocab_size: int = 50257
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int | None = None  # MLP width where a backend has one; default per backend (often 4*d)
    max_seq_len: int = 1024  # learned-position backends only
    seed: int = 0
    dtype: str | None = None  # "float32" | "bfloat16" | "float16"
    device: str | None = None
    tie_embeddings: bool = True
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def parse_config(backend: str, config: dict[str, Any], extra: dict[str, Any] | None = None
                 ) -> tuple[ModelConfig, dict[str, Any]]:
    """Split ``config`` into the common :class:`ModelConfig` and the backend's own ``extra`` keys.

    ``size`` expands to the seed's shape, :data:`PRESET_KEYS` (explicit keys win). ``extra`` maps the backend's own
    keys to defaults; any other key is an error naming what is allowed.
    """
    config = dict(config)
    extra = dict(extra or {})
    size = config.pop("size", None)
    if size is not None:
        key = str(size)
        if key not in SIZES:
            raise ConfigError(f"{backend}: unknown size {size!r}; known sizes: {', '.join(SIZES)}")
        for k in PRESET_KEYS:  # d_ff stays each backend's own (4d GELU, 8d/3 SwiGLU, 3.5d RWKV-6...)
            config.setdefault(k, SIZES[key][k])
    common = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(config) - common - set(extra))
    if unknown:
        allowed = ", ".join(sorted(common | set(extra) | {"size"}))
        raise ConfigError(f"{backend}: unknown config key(s) {', '.join(unknown)}; allowed: {allowed}")
    cfg = ModelConfig(**{k: v for k, v in config.items() if k in common})
    own = {k: config.get(k, default) for k, default in extra.items()}
    _check(backend, cfg)
    return cfg, own


def _check(backend: str, cfg: ModelConfig) -> None:
    for key in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len"):
        value = getattr(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{backend}: {key} must be a positive integer, got {value!r}")
    if cfg.d_model % cfg.n_heads:
        raise ConfigError(f"{backend}: d_model={cfg.d_model} is not divisible by n_heads={cfg.n_heads}")
    if cfg.d_ff is not None and (not isinstance(cfg.d_ff, int) or cfg.d_ff < 1):
        raise ConfigError(f"{backend}: d_ff must be a positive integer, got {cfg.d_ff!r}")
    if cfg.dtype is not None and cfg.dtype not in _DTYPES:
        raise ConfigError(f"{backend}: dtype must be one of {', '.join(_DTYPES)}, got {cfg.dtype!r}")


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build under ``seed`` without disturbing the caller's global CPU RNG: same seed, same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build(backend: str, config: dict[str, Any], extra: dict[str, Any] | None,
          make: Callable[[ModelConfig, dict[str, Any]], nn.Module]) -> nn.Module:
    """Parse ``config``, build ``make(cfg, own)`` on CPU in fp32 under the seed, then move/cast it."""
    cfg, own = parse_config(backend, config, extra)
    with seeded(cfg.seed):
        model = make(cfg, own)
    model.config = cfg
    model.backend_name = backend
    if cfg.device is not None or cfg.dtype is not None:
        model = model.to(device=cfg.device, dtype=_DTYPES[cfg.dtype] if cfg.dtype else None)
    return model.eval()


# --------------------------------------------------------------------------- state sizes


def tree_nbytes(state: Any) -> int:
    """Bytes held by a state: tensors in nested dicts/lists/tuples, or objects with ``nbytes()``."""
    if state is None or isinstance(state, (int, float, bool, str)):
        return 0
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if hasattr(state, "state_nbytes"):
        return int(state.state_nbytes())
    if isinstance(state, dict):
        return sum(tree_nbytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(tree_nbytes(v) for v in state)
    raise TypeError(f"cannot size state of type {type(state).__name__}")


class ModelContract:
    """Mixin: the counting half of the contract, shared by CausalLM and wrapped models (GPT-2)."""

    #: How the decode state grows with context: "constant" (recurrent), "linear" (a KV cache), or
    #: "bounded" (e.g. a sliding window: grows, then stays). The state_bytes law checks it.
    state_growth: str = "constant"

    def state_bytes(self, state: Any) -> int:
        """Bytes of a KV cache or recurrent state as returned by prefill/step."""
        return tree_nbytes(state)

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The vocab- and position-sized tables that ``num_params(embedding=False)`` leaves out."""
        raise NotImplementedError

    def num_params(self, embedding: bool = True) -> int:
        """Unique parameters; ``embedding=False`` leaves out token/position tables and an untied head."""
        seen = {id(p): p for p in self.parameters()}  # type: ignore[attr-defined]
        total = sum(p.numel() for p in seen.values())
        if embedding:
            return total
        emb = {id(p): p for p in self.embedding_parameters()}
        return total - sum(p.numel() for p in emb.values())


def check_tokens(tokens: Any, vocab_size: int, ndim: int = 2, name: str = "tokens") -> Tensor:
    """Tokens must be an integer tensor of ``ndim`` dims with ids in [0, vocab_size)."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(tokens).__name__}")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.dim() != ndim:
        shape = "[B, T]" if ndim == 2 else "[B]"
        raise ValueError(f"{name} must be {shape}, got shape {tuple(tokens.shape)}")
    if tokens.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tokens.shape)})")
    # On a GPU this check would sync every call; under torch.compile it would break the graph and
    # recompile for every new (min, max) pair (dynamo specialises the ints), so it runs eager CPU only.
    if tokens.device.type == "cpu" and not torch.compiler.is_compiling():
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"{name} ids must lie in [0, {vocab_size}), got range [{lo}, {hi}]")
    return tokens.long()


# --------------------------------------------------------------------------- layers


class SeqModule(nn.Module):
    """A layer with a parallel form and a recurrent form. Stateless layers keep these defaults."""

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        return self(x), None

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        return self(x[:, None])[:, 0], state

    def step_deferred(self, x: Tensor, pending: Tensor | None, state: Any) -> tuple[Tensor, Tensor | None, Any]:
        """:meth:`step` of the hidden state ``x + pending`` (a residual add not yet done), returning
        (x', pending', state) the same way; a pre-norm block fuses the add into its norm."""
        if pending is not None:
            x = x + pending
        y, state = self.step(x, state)
        return y, None, state


class Residual(SeqModule):
    """Pre-norm residual: ``x + inner(norm(x))``, in both forms."""

    def __init__(self, norm: nn.Module, inner: SeqModule):
        super().__init__()
        self.norm = norm
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return x + self.inner(self.norm(x))

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        y, state = self.inner.prefill(self.norm(x))
        return x + y, state

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        y, state = self.inner.step(self.norm(x), state)
        return x + y, state

    def step_deferred(self, x: Tensor, pending: Tensor | None, state: Any) -> tuple[Tensor, Tensor | None, Any]:
        """The pending add and this block's norm as one kernel; this block's own add left pending."""
        if fusion.gemv_enabled() and hasattr(self.inner, "step_prenorm"):  # the norm inside its first GEMV
            return self.inner.step_prenorm(x, pending, self.norm, state)
        h, n = fusion.add_norm(x, pending, self.norm)
        y, state = self.inner.step(n, state)
        return h, y, state


class Chain(SeqModule):
    """Sub-layers in sequence (a mixer then an MLP); the state is the list of theirs."""

    def __init__(self, *parts: SeqModule):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, x: Tensor) -> Tensor:
        for part in self.parts:
            x = part(x)
        return x

    def prefill(self, x: Tensor) -> tuple[Tensor, Any]:
        states = []
        for part in self.parts:
            x, s = part.prefill(x)
            states.append(s)
        return x, states

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        new = []
        for part, s in zip(self.parts, state):
            x, s = part.step(x, s)
            new.append(s)
        return x, new

    def step_deferred(self, x: Tensor, pending: Tensor | None, state: Any) -> tuple[Tensor, Tensor | None, Any]:
        new = []
        for part, s in zip(self.parts, state):
            x, pending, s = part.step_deferred(x, pending, s)
            new.append(s)
        return x, pending, new


class MLP(SeqModule):
    """Position-wise feed-forward: GELU (GPT style) or SwiGLU (LLaMA style)."""

    def __init__(self, d_model: int, d_ff: int, kind: str = "gelu", bias: bool = True):
        super().__init__()
        self.kind = kind
        if kind == "swiglu":
            self.gate = nn.Linear(d_model, d_ff, bias=bias)
        elif kind != "gelu":
            raise ConfigError(f"unknown MLP kind {kind!r}; use 'gelu' or 'swiglu'")
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "swiglu":
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.down(F.gelu(self.up(x), approximate="tanh"))

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        """x [B, d]: SwiGLU's gate and up as one matmul and SiLU x up as one kernel when fused."""
        if self.kind == "swiglu" and fusion.enabled():
            g, u = fusion.split_linear(x, self, "gate_up", (self.gate, self.up))
            return fusion.swiglu_down(g, u, self.down), state
        return self(x), state

    def step_prenorm(self, x: Tensor, pending: Tensor | None, norm: nn.Module, state: Any
                     ) -> tuple[Tensor, Tensor, Any]:
        """(h, MLP(norm(h)), state), h = x + pending: the add and norm inside the first GEMV."""
        if self.kind == "swiglu":
            h, (g, u) = fusion.norm_split_linear(x, pending, norm, self, "gate_up", (self.gate, self.up))
            return h, fusion.swiglu_down(g, u, self.down), state
        h, (a,) = fusion.norm_split_linear(x, pending, norm, self, "up", (self.up,))
        return h, fusion.linear(F.gelu(a, approximate="tanh"), self.down), state


class CausalLM(ModelContract, nn.Module):
    """Token embedding (+ learned positions) -> layers -> final norm -> LM head (tied by default).

    The state is ``{"pos": tokens seen, "layers": [per-layer state]}``, plus ``"position"`` (a
    :class:`Position`: the count on the device too) when positions are learned, so a CUDA graph of
    :meth:`step` reads the right table row; the layers' tensors are what :meth:`state_bytes` counts.
    """

    def __init__(self, cfg: ModelConfig, layers: list[SeqModule], *, final_norm: nn.Module | None = None,
                 learned_positions: bool = False, embed_norm: nn.Module | None = None,
                 init_std: float = 0.02, state_growth: str = "constant"):
        super().__init__()
        self.state_growth = state_growth
        self.vocab_size = cfg.vocab_size
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.max_seq_len, cfg.d_model) if learned_positions else None
        self.max_seq_len = cfg.max_seq_len
        self.embed_norm = embed_norm  # RWKV's ln0 on the embeddings
        self.layers = nn.ModuleList(layers)
        self.norm = final_norm if final_norm is not None else nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        nn.init.normal_(self.embed.weight, std=init_std)
        if self.pos_embed is not None:
            nn.init.normal_(self.pos_embed.weight, std=init_std / 2)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        else:
            nn.init.normal_(self.head.weight, std=init_std)

    def embedding_parameters(self) -> list[nn.Parameter]:
        params = [self.embed.weight, self.head.weight]
        if self.pos_embed is not None:
            params.append(self.pos_embed.weight)
        return params

    def _check_positions(self, end: int) -> None:
        if self.pos_embed is not None and end > self.max_seq_len:
            raise ValueError(f"position {end - 1} is past max_seq_len={self.max_seq_len} of this "
                             "model's learned positions; build it with a larger max_seq_len")

    def _embed(self, tokens: Tensor, start: int | Tensor) -> Tensor:
        """Token (+ position) embeddings of tokens [B, T] at positions start..start+T-1; ``start``
        may be a 0-d device tensor (a graph-replayed step)."""
        h = self.embed(tokens)
        if self.pos_embed is not None:
            h = h + self.pos_embed(torch.arange(tokens.shape[1], device=tokens.device) + start)
        return h if self.embed_norm is None else self.embed_norm(h)

    def features(self, tokens: Tensor) -> Tensor:
        """tokens [B, T] -> final-norm hidden states [B, T, d]: ``forward`` is ``head(features)``,
        so a trainer can score the head in chunks without building [B, T, V] logits."""
        tokens = check_tokens(tokens, self.vocab_size)
        self._check_positions(tokens.shape[1])
        h = self._embed(tokens, 0)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.features(tokens))

    def prefill(self, tokens: Tensor, logits: str = "last") -> tuple[Tensor, dict[str, Any]]:
        tokens = check_tokens(tokens, self.vocab_size)
        t = tokens.shape[1]
        self._check_positions(t)
        h = self._embed(tokens, 0)
        states = []
        for layer in self.layers:
            h, s = layer.prefill(h)
            states.append(s)
        state: dict[str, Any] = {"pos": t, "layers": states}
        if self.pos_embed is not None:
            state["position"] = Position(t, tokens.device)
        return self.head(self.norm(prefill_positions(h, logits))), state

    def step(self, token: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        token = check_tokens(token, self.vocab_size, ndim=1, name="token")
        if not isinstance(state, dict) or "layers" not in state:
            raise ValueError("state must be what prefill() or step() of this model returned")
        pos = state["pos"]
        position = state.get("position")
        if position is not None:
            self._check_positions(position.n + 1)
            h = self._embed(token[:, None], position.t)[:, 0]
            position.advance()
        else:
            h = self._embed(token[:, None], pos)[:, 0]
        new = []
        if fusion.enabled():  # residual adds deferred into the next norm (models/fusion.py)
            pending = None
            for layer, s in zip(self.layers, state["layers"]):
                h, pending, s = layer.step_deferred(h, pending, s)
                new.append(s)
            h = fusion.add_norm(h, pending, self.norm)[1]
            logits = fusion.linear(h, self.head)  # under autocast: the head cast once, not every step
        else:
            for layer, s in zip(self.layers, state["layers"]):
                h, s = layer.step(h, s)
                new.append(s)
            logits = self.head(self.norm(h))
        out = {"pos": pos + 1, "layers": new}
        if position is not None:
            out["position"] = position
        return logits, out
