"""Incremental detokenization: text out as ids arrive, never splitting a UTF-8 character.

Wraps ``tokenizers.decoders.DecodeStream`` (which holds back ids until their bytes form whole
characters, and handles byte-fallback pieces and SentencePiece's leading-space rule), so the
concatenated chunks equal ``tokenizer.decode(all_ids)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import tokenizers
from tokenizers.decoders import DecodeStream


class StreamingDetokenizer:
    """Feed ids one at a time with :meth:`step`; each call returns the newly complete text."""

    def __init__(self, tokenizer: tokenizers.Tokenizer, skip_special_tokens: bool = False):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self._stream = DecodeStream(skip_special_tokens=skip_special_tokens)

    def reset(self) -> None:
        self._stream = DecodeStream(skip_special_tokens=self.skip_special_tokens)

    def step(self, token_id: int) -> str:
        """Text completed by this id ('' while a multi-byte character is still partial)."""
        return self._stream.step(self.tokenizer, int(token_id)) or ""


def stream_decode(tokenizer: tokenizers.Tokenizer, ids: Iterable[int],
                  skip_special_tokens: bool = False) -> Iterator[str]:
    """The chunks a streaming decoder emits for ``ids``, in order (empty chunks skipped)."""
    det = StreamingDetokenizer(tokenizer, skip_special_tokens)
    for i in ids:
        chunk = det.step(i)
        if chunk:
            yield chunk
