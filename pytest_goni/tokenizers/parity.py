"""Parity of the fast path (HF ``tokenizers``) with an independent reference implementation.

The references read the original files with their own code: tiktoken (GPT-2's
``vocab.bpe``/``encoder.json`` through ``data_gym_to_mergeable_bpe_ranks``, or a ``.tiktoken``
rank file through ``load_tiktoken_bpe``) and Google's ``sentencepiece``. Both load local files
only; tiktoken is never handed a name it would fetch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import tokenizers

from .formats import TIKTOKEN_PATTERNS, tiktoken_local_files
from .packaged import Reference

Encoder = Callable[[str], list[int]]


class ReferenceUnavailable(RuntimeError):
    """The reference library is missing or cannot read the files."""


def tiktoken_encoding(ref: Reference) -> Any:
    """A ``tiktoken.Encoding`` built from local files only."""
    try:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks, load_tiktoken_bpe
    except ImportError as exc:
        raise ReferenceUnavailable(f"tiktoken is not installed: {exc}") from None
    pattern = TIKTOKEN_PATTERNS.get(ref.pattern, ref.pattern)
    if not pattern:
        raise ReferenceUnavailable(f"no split regex for the tiktoken reference of {ref.files[0]}")
    for f in ref.files:
        if not f.is_file():
            raise ReferenceUnavailable(f"reference file {f} is missing")
    with tiktoken_local_files():
        if len(ref.files) == 2:  # GPT-2's data-gym pair: vocab.bpe + encoder.json
            ranks = data_gym_to_mergeable_bpe_ranks(str(ref.files[0]), str(ref.files[1]))
        else:
            ranks = load_tiktoken_bpe(str(ref.files[0]))
    specials = {t: i for t, i in ref.special_tokens.items() if i not in ranks.values()}
    return tiktoken.Encoding(name=f"goni-ref-{ref.files[0].stem}", pat_str=pattern,
                             mergeable_ranks=ranks, special_tokens=specials)


def reference_encoder(ref: Reference) -> tuple[Encoder, str]:
    """``(encode(text) -> ids, description)`` of the reference; special tokens never parsed."""
    if ref.kind == "tiktoken":
        enc = tiktoken_encoding(ref)
        import tiktoken

        return enc.encode_ordinary, f"tiktoken {tiktoken.__version__} ({ref.files[0].name})"
    if ref.kind == "sentencepiece":
        try:
            import sentencepiece as spm
        except ImportError as exc:
            raise ReferenceUnavailable(f"sentencepiece is not installed: {exc}") from None
        try:
            sp = spm.SentencePieceProcessor(model_file=str(ref.files[0]))
        except Exception as exc:  # sentencepiece raises OSError/RuntimeError on bad files
            raise ReferenceUnavailable(f"sentencepiece cannot load {ref.files[0]}: {exc}") from None
        return sp.encode, f"sentencepiece {spm.__version__} ({ref.files[0].name})"
    raise ReferenceUnavailable(f"unknown reference kind {ref.kind!r} (tiktoken, sentencepiece)")


def fast_encoder(tok: tokenizers.Tokenizer) -> Encoder:
    """The fast path's ``encode(text) -> ids`` without BOS/EOS, as the references encode."""
    def encode(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False).ids

    return encode


@dataclass
class ParityResult:
    """How many texts got identical ids, and the first differences to show a person."""

    total: int
    identical: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.identical / self.total if self.total else float("nan")


def compare(texts: Sequence[str], candidate: Encoder, reference: Encoder,
            max_examples: int = 3, show: Callable[[list[int]], list[str]] | None = None) -> ParityResult:
    """Encode every text with both; count identical id sequences, keep a few mismatches."""
    identical = 0
    examples: list[dict[str, Any]] = []
    for text in texts:
        a, b = candidate(text), reference(text)
        if a == b:
            identical += 1
            continue
        if len(examples) < max_examples:
            k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            lo, hi = max(0, k - 2), k + 4
            ex = {"text": text[:120], "first_diff": k, "fast": a[lo:hi], "reference": b[lo:hi]}
            if show is not None:
                ex["fast_pieces"] = show(a[lo:hi])
            examples.append(ex)
    return ParityResult(len(texts), identical, examples)


#: Short texts where implementations are known to part ways: runs of spaces, leading and
#: trailing whitespace, tabs, CRLF, digits, punctuation, accents, CJK, emoji (multi-byte).
EDGE_CASES: tuple[str, ...] = (
    " leading space", "  two leading spaces", "double  space inside", "trailing space ",
    "trailing two  ", "   ", " ", "\nleading newline", "a\n\nb", "line one\n  indented two",
    "tab\tseparated\tvalues", " \t mixed \t ", "windows line\r\nend\r\n", "1234567890 3.14159 1e-9",
    "can't won't it's I'll we've they're I'd", "“curly quotes” — em dash… ellipsis",
    "naïve café résumé Ærø", "日本語のテキスト 中文文本 한국어", "emoji 😀👍🏽 family 👨‍👩‍👧", "x" * 64,
    "ALL CAPS SHOUTING!!!", "snake_case camelCase kebab-case", "http://example.org/a?b=c&d=e",
)
