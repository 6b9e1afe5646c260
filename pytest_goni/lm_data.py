"""Language-model data for training measurements: text, tokenizer, split, and a fixed batch order.

The text comes from ``pytest_goni.corpora`` (Shakespeare, the KJV) or a named file; the
tokenizer is a built-in byte/char one or a subword tokenizer found by ``pytest_goni.tokenizers``.
The split is made on the text, before tokenizing, so models trained with different tokenizers
are validated on the same characters and bits per character compare across tokenizers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Tokenizer names handled here without discovery.
BUILTIN_TOKENIZERS = ("byte", "char")


@dataclass
class TextTokenizer:
    """A tokenizer reduced to what training needs: a name, a vocab size and ``encode``."""

    name: str
    vocab_size: int
    encode: Callable[[str], list[int]]


@dataclass
class TokenizedCorpus:
    """Train/validation token streams of one corpus under one tokenizer."""

    corpus: str
    tokenizer: str
    vocab_size: int
    train_ids: torch.Tensor
    val_ids: torch.Tensor
    train_chars: int
    val_chars: int

    @property
    def val_tokens_per_char(self) -> float:
        return len(self.val_ids) / self.val_chars

    def describe(self) -> dict[str, Any]:
        return {"corpus": self.corpus, "tokenizer": self.tokenizer, "vocab_size": self.vocab_size,
                "train_tokens": len(self.train_ids), "val_tokens": len(self.val_ids),
                "train_chars": self.train_chars, "val_chars": self.val_chars}


def load_text(corpus: str, max_chars: int | None, resolve_path: Callable[[str], Path] | None = None) -> str:
    """The corpus text: a file when ``corpus`` names one, else ``pytest_goni.corpora.load_corpus``."""
    path = resolve_path(corpus) if resolve_path is not None else Path(corpus)
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        return text[:max_chars] if max_chars else text
    if "/" in corpus or corpus.endswith((".txt", ".md")):
        raise FileNotFoundError(f"corpus file {str(path)!r} does not exist")
    try:
        from pytest_goni.corpora import load_corpus
    except ImportError as exc:  # the corpora module lands with the tokenizer issue
        raise RuntimeError(f"corpus {corpus!r}: pytest_goni.corpora is not available ({exc}); "
                           "name a text file instead") from None
    return load_corpus(corpus, max_chars)


def byte_tokenizer() -> TextTokenizer:
    """UTF-8 bytes: vocab 256, no unknown characters."""
    return TextTokenizer("byte", 256, lambda text: list(text.encode("utf-8")))


def char_tokenizer(text: str) -> TextTokenizer:
    """One id per distinct character of ``text`` (the corpus' own alphabet)."""
    alphabet = sorted(set(text))
    index = {c: i for i, c in enumerate(alphabet)}

    def encode(s: str) -> list[int]:
        try:
            return [index[c] for c in s]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the char tokenizer's alphabet") from None

    return TextTokenizer("char", len(alphabet), encode)


def subword_tokenizer(name: str) -> TextTokenizer:
    """A tokenizer found by the discovery in ``pytest_goni.tokenizers`` (HF ``tokenizers`` object)."""
    try:
        from pytest_goni import tokenizers as discovery
    except ImportError as exc:
        raise RuntimeError(f"tokenizer {name!r}: pytest_goni.tokenizers is not available ({exc})") from None
    load = getattr(discovery, "load_tokenizer", None)
    if load is None:
        raise RuntimeError(f"tokenizer {name!r}: pytest_goni.tokenizers has no load_tokenizer() yet; "
                           f"built-in tokenizers: {', '.join(BUILTIN_TOKENIZERS)}")
    tok = load(name)
    inner = getattr(tok, "tokenizer", tok)  # LoadedTokenizer wraps an HF tokenizers.Tokenizer
    if not hasattr(inner, "encode"):
        raise RuntimeError(f"tokenizer {name!r}: discovery returned {type(tok).__name__}, which cannot encode")
    size = getattr(tok, "vocab_size", None)  # the largest id + 1, added tokens included
    if not isinstance(size, int):
        size = inner.get_vocab_size(with_added_tokens=True)
    vocab = int(size)

    def encode(s: str) -> list[int]:
        out = inner.encode(s, add_special_tokens=False)
        return list(getattr(out, "ids", out))

    return TextTokenizer(name, vocab, encode)


def get_tokenizer(name: str, text: str) -> TextTokenizer:
    if name == "byte":
        return byte_tokenizer()
    if name == "char":
        return char_tokenizer(text)
    return subword_tokenizer(name)


def _encode_long(tok: TextTokenizer, text: str, piece_chars: int = 1 << 16) -> list[int]:
    """Encode in pieces cut at newlines, so a multi-megabyte text does not go through one call."""
    ids: list[int] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + piece_chars)
        if end < len(text):
            nl = text.rfind("\n", start, end)
            end = nl + 1 if nl > start else end
        ids.extend(tok.encode(text[start:end]))
        start = end
    return ids


def tokenize_corpus(text: str, tok: TextTokenizer, corpus_name: str, val_fraction: float = 0.05,
                    ) -> TokenizedCorpus:
    """Split ``text`` at a newline near ``1 - val_fraction`` and tokenize both parts."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(len(text) * (1 - val_fraction))
    nl = text.rfind("\n", 0, cut)
    cut = nl + 1 if nl > 0 else cut
    train_text, val_text = text[:cut], text[cut:]
    train_ids = torch.tensor(_encode_long(tok, train_text), dtype=torch.long)
    val_ids = torch.tensor(_encode_long(tok, val_text), dtype=torch.long)
    if len(val_ids) < 2 or len(train_ids) < 2:
        raise ValueError(f"corpus {corpus_name!r} is too short to split ({len(text)} chars)")
    if int(train_ids.max()) >= tok.vocab_size or int(val_ids.max()) >= tok.vocab_size:
        raise ValueError(f"tokenizer {tok.name!r} produced an id >= its vocab size {tok.vocab_size}")
    return TokenizedCorpus(corpus_name, tok.name, tok.vocab_size, train_ids, val_ids,
                           len(train_text), len(val_text))


class WindowBatches:
    """Batches of ``seq_len + 1``-token windows in an order fixed by a seed.

    The stream is cut into non-overlapping windows; each epoch visits them in a fresh seeded
    permutation. ``batch(step)`` depends only on (seed, step), so every model given the same
    seed sees the same batches in the same order — the seeds' "same batch order" rule.
    """

    def __init__(self, ids: torch.Tensor, seq_len: int, batch_size: int, seed: int):
        self.ids, self.seq_len, self.batch_size, self.seed = ids, seq_len, batch_size, seed
        self.n_windows = (len(ids) - 1) // seq_len
        if self.n_windows < batch_size:
            raise ValueError(f"training stream of {len(ids)} tokens holds {self.n_windows} windows of "
                             f"{seq_len} tokens; a batch needs {batch_size}: use more text or a shorter "
                             "seq_len")
        self._epochs: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._epochs:
            rng = np.random.default_rng([self.seed, epoch])
            self._epochs[epoch] = rng.permutation(self.n_windows)
        return self._epochs[epoch]

    def window_indices(self, step: int) -> np.ndarray:
        per_epoch = self.n_windows // self.batch_size
        epoch, k = divmod(step, per_epoch)
        return self._order(epoch)[k * self.batch_size:(k + 1) * self.batch_size]

    def epochs_for(self, steps: int) -> float:
        return steps * self.batch_size / self.n_windows

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.as_tensor(self.window_indices(step) * self.seq_len)
        offs = torch.arange(self.seq_len + 1)
        w = self.ids[starts[:, None] + offs[None, :]]
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()


def eval_batches(ids: torch.Tensor, seq_len: int, batch_size: int, max_tokens: int | None = None,
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows over the validation stream, in order, up to ``max_tokens`` targets."""
    n = (len(ids) - 1) // seq_len
    if max_tokens:
        n = min(n, max(1, max_tokens // seq_len))
    if n < 1:
        raise ValueError(f"validation stream of {len(ids)} tokens is shorter than one window of {seq_len}")
    starts = torch.arange(n) * seq_len
    offs = torch.arange(seq_len + 1)
    w = ids[starts[:, None] + offs[None, :]]
    return [(w[i:i + batch_size, :-1].contiguous(), w[i:i + batch_size, 1:].contiguous())
            for i in range(0, n, batch_size)]


def bits_per_char(loss_nats_per_token: float, tokens_per_char: float) -> float:
    """Convert a per-token loss to bits per character, comparable across tokenizers."""
    return loss_nats_per_token * tokens_per_char / math.log(2)
