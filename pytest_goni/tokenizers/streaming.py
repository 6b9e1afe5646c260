"""Incremental detokenization: text out as ids arrive, never splitting a UTF-8 character.

Uses ``tokenizers.decoders.DecodeStream`` where the installed ``tokenizers`` has it (0.21+): it
holds back ids until their bytes form whole characters and handles byte-fallback pieces and
SentencePiece's leading-space rule. Older versions get the same contract from a window decode
(below). Either way the concatenated chunks equal ``tokenizer.decode(all_ids)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import tokenizers

try:
    from tokenizers.decoders import DecodeStream
except ImportError:  # tokenizers < 0.21
    DecodeStream = None


class WindowDecodeStream:
    """DecodeStream's contract from plain ``decode`` calls over a sliding window of ids.

    Decodes ``ids[prefix:]`` and ``ids[prefix:read]``; the difference is new text unless it
    ends in U+FFFD (a character whose bytes have not all arrived). Decoding a window rather
    than one id keeps context-dependent decoders (leading-space strip, byte fallback) right.
    """

    def __init__(self, skip_special_tokens: bool = False):
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def step(self, tokenizer: tokenizers.Tokenizer, token_id: int) -> str | None:
        self.ids.append(token_id)
        skip = self.skip_special_tokens
        before = tokenizer.decode(self.ids[self.prefix:self.read], skip_special_tokens=skip)
        now = tokenizer.decode(self.ids[self.prefix:], skip_special_tokens=skip)
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return now[len(before):]
        return None


def _new_stream(skip_special_tokens: bool, prefer_library: bool) -> Any:
    if prefer_library and DecodeStream is not None:
        return DecodeStream(skip_special_tokens=skip_special_tokens)
    return WindowDecodeStream(skip_special_tokens=skip_special_tokens)


class StreamingDetokenizer:
    """Feed ids one at a time with :meth:`step`; each call returns the newly complete text.

    ``prefer_library=False`` forces the window decoder (what runs on tokenizers < 0.21).
    """

    def __init__(self, tokenizer: tokenizers.Tokenizer, skip_special_tokens: bool = False,
                 prefer_library: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.prefer_library = prefer_library
        self._stream = _new_stream(skip_special_tokens, prefer_library)

    @property
    def backend(self) -> str:
        return type(self._stream).__name__

    def reset(self) -> None:
        self._stream = _new_stream(self.skip_special_tokens, self.prefer_library)

    def step(self, token_id: int) -> str:
        """Text completed by this id ('' while a multi-byte character is still partial)."""
        return self._stream.step(self.tokenizer, int(token_id)) or ""


def stream_decode(tokenizer: tokenizers.Tokenizer, ids: Iterable[int], skip_special_tokens: bool = False,
                  prefer_library: bool = True) -> Iterator[str]:
    """The chunks a streaming decoder emits for ``ids``, in order (empty chunks skipped)."""
    det = StreamingDetokenizer(tokenizer, skip_special_tokens, prefer_library)
    for i in ids:
        chunk = det.step(i)
        if chunk:
            yield chunk
