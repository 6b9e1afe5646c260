"""Tokenizer file formats, each built into an HF ``tokenizers.Tokenizer`` (the one fast path).

Formats and the files they read:

- ``tokenizer.json``: HF's own serialization, loaded as is;
- ``bpe``: byte-level BPE from ``vocab.json`` + ``merges.txt`` or GPT-2's original
  ``encoder.json`` + ``vocab.bpe`` (same content, older names);
- ``sentencepiece``: a SentencePiece ``.model`` protobuf (BPE or Unigram), converted here from
  its pieces and scores (transformers' ``LlamaConverter`` needs a slow tokenizer object, and
  ``LlamaTokenizerFast(vocab_file=...)`` silently builds an empty tokenizer, so neither is used);
- ``tiktoken``: a ``.tiktoken`` rank file (base64 token + rank per line) and its split regex,
  converted through transformers' ``TikTokenConverter``.

Nothing here reaches the network: every reader opens local files only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers

FORMATS = ("tokenizer.json", "bpe", "sentencepiece", "tiktoken")

#: Split regexes of the known tiktoken-format vocabularies (data, from each model's definition).
TIKTOKEN_PATTERNS: dict[str, str] = {
    # GPT-2 / r50k (tiktoken_ext.openai_public.r50k_pat_str)
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",  # noqa: E501
    # cl100k_base (GPT-3.5/4)
    "cl100k_base": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
    # LLaMA-3 (Meta's llama3 tokenizer.py)
    "llama3": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",  # noqa: E501
}

_TIKTOKEN_LINE = re.compile(rb"^[A-Za-z0-9+/]+=*\s+\d+\r?$")


@dataclass
class TokenizerFiles:
    """What discovery found: the format and the files (in a fixed order) that define it."""

    format: str
    files: list[Path]
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.format}: " + " + ".join(str(f) for f in self.files)


class FormatError(ValueError):
    """The files exist but are not a valid tokenizer of their format."""


def sniff_model_file(path: Path) -> str:
    """``tiktoken`` or ``sentencepiece`` for a ``*.model`` file (LLaMA-3 ships a tiktoken rank
    file under that name; LLaMA-2 and Mistral a SentencePiece protobuf)."""
    with open(path, "rb") as fh:
        first = fh.readline(256)
    return "tiktoken" if _TIKTOKEN_LINE.match(first.rstrip(b"\n")) else "sentencepiece"


def build(found: TokenizerFiles) -> tokenizers.Tokenizer:
    """The ``tokenizers.Tokenizer`` for found files; :class:`FormatError` when they are not one."""
    builder = _BUILDERS.get(found.format)
    if builder is None:
        raise FormatError(f"unknown tokenizer format {found.format!r}; known: {', '.join(FORMATS)}")
    try:
        tok = builder(found)
    except FormatError:
        raise
    except Exception as exc:  # the libraries raise bare Exception on bad files
        raise FormatError(f"{type(exc).__name__}: {exc}") from exc
    if tok.get_vocab_size(with_added_tokens=True) == 0:
        raise FormatError("the files produced an empty vocabulary")
    return tok


def _build_tokenizer_json(found: TokenizerFiles) -> tokenizers.Tokenizer:
    return tokenizers.Tokenizer.from_file(str(found.files[0]))


def _build_bpe(found: TokenizerFiles) -> tokenizers.Tokenizer:
    vocab_file, merges_file = (str(f) for f in found.files)
    model = tokenizers.models.BPE.from_file(vocab_file, merges_file)
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [t for t in ("<|endoftext|>",) if model.token_to_id(t) is not None]
    if specials:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tok


_POSSESSIVE_INTERVAL = re.compile(r"(\{\d+(?:,\d*)?\})\+")


def onig_pattern(pattern: str) -> str:
    r"""A tiktoken (Rust ``fancy-regex``) split regex in the form Oniguruma reads the same way.

    In Oniguruma ``X{1,3}+`` is not possessive but ``(X{1,3})+`` — one or more runs — so
    cl100k's ``\p{N}{1,3}+`` would keep whole digit strings together (the parity edge cases
    caught it: "1234567890" split 123|456|78|90 instead of 123|456|789|0). A bounded interval
    never needs possessiveness inside these alternations, so it is made plain greedy.
    """
    return _POSSESSIVE_INTERVAL.sub(r"\1", pattern)


@contextmanager
def tiktoken_local_files() -> Iterator[None]:
    """tiktoken's readers with its path-keyed copy cache off (``TIKTOKEN_CACHE_DIR=""``).

    ``tiktoken.load.read_file_cached`` keys its cache by the *path*, so an edited file at the same
    path would come back stale, and it copies every file into the temp folder. Local paths are
    read directly (no ``://`` in them, so no network either).
    """
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved


def _build_tiktoken(found: TokenizerFiles) -> tokenizers.Tokenizer:
    pattern = found.options.get("pattern")
    if not pattern:
        raise FormatError(
            f"a tiktoken rank file needs its split regex: give `pattern:` (one of "
            f"{', '.join(TIKTOKEN_PATTERNS)} or a regex) for {found.files[0]}")
    pattern = onig_pattern(TIKTOKEN_PATTERNS.get(pattern, pattern))
    from transformers.convert_slow_tokenizer import TikTokenConverter

    specials = found.options.get("special_tokens") or {}
    with tiktoken_local_files():
        tok = TikTokenConverter(str(found.files[0]), pattern=pattern).converted()
    if specials:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tok


def load_sentencepiece_proto(path: Path) -> Any:
    """The parsed ``ModelProto`` of a SentencePiece model file."""
    try:
        from sentencepiece import sentencepiece_model_pb2 as pb2
    except ImportError:
        try:
            from transformers.utils import sentencepiece_model_pb2_new as pb2
        except ImportError as exc:
            raise FormatError(f"reading a SentencePiece model needs protobuf: {exc}") from exc
    proto = pb2.ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except Exception as exc:
        raise FormatError(f"not a SentencePiece model protobuf: {exc}") from exc
    if len(proto.pieces) == 0:
        raise FormatError("SentencePiece model has no pieces")
    return proto


# SentencePiece piece types (sentencepiece_model.proto)
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6


def _build_sentencepiece(found: TokenizerFiles) -> tokenizers.Tokenizer:
    proto = load_sentencepiece_proto(found.files[0])
    return sentencepiece_to_tokenizer(proto)


def spm_merges(proto: Any) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece BPE model: a pair merges with the score of the piece
    it makes (higher first); ties break by the parts' ids, as SentencePiece orders them."""
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    ranked: list[tuple[float, int, int, str, str]] = []
    for piece in proto.pieces:
        if piece.type != _NORMAL or len(piece.piece) < 2:
            continue
        s = piece.piece
        for k in range(1, len(s)):
            left, right = s[:k], s[k:]
            if left in vocab and right in vocab:
                ranked.append((-piece.score, vocab[left], vocab[right], left, right))
    ranked.sort()
    return [(left, right) for _, _, _, left, right in ranked]


def _spm_word_regex(trainer: Any) -> str:
    """SentencePiece's word split (``SplitIntoWords``) as a regex over ``▁``-escaped text.

    A word starts at a ``▁``; with ``allow_whitespace_only_pieces`` a whole run of ``▁`` starts
    one word (``"▁▁▁leading"`` stays together and BPE splits it as SentencePiece does).
    """
    if trainer.treat_whitespace_as_suffix:
        return "[^▁]*▁+|[^▁]+" if trainer.allow_whitespace_only_pieces else "[^▁]*▁|[^▁]+"
    return "▁*[^▁]+|▁+" if trainer.allow_whitespace_only_pieces else "▁[^▁]*|[^▁]+"


def sentencepiece_to_tokenizer(proto: Any) -> tokenizers.Tokenizer:
    """An HF tokenizer equivalent (as far as the formats allow) to a SentencePiece model.

    Whitespace becomes ``▁`` (a ``▁`` is prepended when the model has ``add_dummy_prefix``) and
    the text is split into SentencePiece's words (``split_by_whitespace``); BPE merges follow the
    pieces' scores. Byte fallback maps unknown characters to ``<0xNN>`` pieces.
    """
    trainer, norm = proto.trainer_spec, proto.normalizer_spec
    byte_fallback = bool(trainer.byte_fallback)
    if trainer.model_type == 2:  # BPE
        vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
        model = tokenizers.models.BPE(
            vocab, spm_merges(proto), unk_token=trainer.unk_piece or "<unk>", fuse_unk=True,
            byte_fallback=byte_fallback)
    elif trainer.model_type == 1:  # Unigram
        model = tokenizers.models.Unigram(
            [(p.piece, p.score) for p in proto.pieces], unk_id=trainer.unk_id, byte_fallback=byte_fallback)
    else:
        raise FormatError(f"SentencePiece model type {trainer.model_type} (only BPE=2 and Unigram=1 convert)")
    tok = tokenizers.Tokenizer(model)

    norms = []
    if norm.precompiled_charsmap:
        norms.append(normalizers.Precompiled(norm.precompiled_charsmap))
    if norm.remove_extra_whitespaces:
        norms += [normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")]
    if norm.add_dummy_prefix:
        norms.append(normalizers.Prepend("▁"))
    norms.append(normalizers.Replace(" ", "▁"))
    tok.normalizer = normalizers.Sequence(norms)
    split = not trainer.HasField("split_by_whitespace") or bool(trainer.split_by_whitespace)
    if split:
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(_spm_word_regex(trainer)), behavior="isolated")
    steps = [decoders.Replace("▁", " ")]
    if byte_fallback:
        steps += [decoders.ByteFallback()]
    steps += [decoders.Fuse()]
    if norm.add_dummy_prefix:
        steps += [decoders.Strip(content=" ", left=1)]
    tok.decoder = decoders.Sequence(steps)

    special = [AddedToken(p.piece, special=True, normalized=False)
               for p in proto.pieces if p.type in (_CONTROL, _UNKNOWN)]
    user = [AddedToken(p.piece, normalized=False) for p in proto.pieces if p.type == _USER_DEFINED]
    if special:
        tok.add_special_tokens(special)
    if user:
        tok.add_tokens(user)
    return tok


_BUILDERS = {
    "tokenizer.json": _build_tokenizer_json,
    "bpe": _build_bpe,
    "sentencepiece": _build_sentencepiece,
    "tiktoken": _build_tiktoken,
}
