"""Incremental detokenization: chunks concatenate to decode(ids), multi-byte text included."""

from __future__ import annotations

import pytest

from pytest_goni.tokenizers import StreamingDetokenizer, stream_decode

from .conftest import needs_package, packaged_available

TEXTS = [
    "To be, or not to be",
    "naïve café — “quoted” … 😀👍🏽 中文文本 한국어",
    "  leading spaces\nand\ttabs  ",
    "emoji family 👨‍👩‍👧 end",
]


@pytest.mark.parametrize("library", [True, False], ids=["DecodeStream", "window"])
def test_tiny_bpe_multibyte(tiny_tokenizer, library):
    for text in TEXTS:
        ids = tiny_tokenizer.encode(text).ids
        out = "".join(stream_decode(tiny_tokenizer, ids, prefer_library=library))
        assert out == tiny_tokenizer.decode(ids) == text


@pytest.mark.parametrize("library", [True, False], ids=["DecodeStream", "window"])
@pytest.mark.parametrize("name", [n for n in ("gpt2", "llama2-32k", "llama3") if packaged_available(n)])
def test_packaged_tokenizers_stream_exactly(name, library, session_cache):
    tok = session_cache.get(name).tokenizer
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert "".join(stream_decode(tok, ids, prefer_library=library)) == tok.decode(ids)


@pytest.mark.parametrize("library", [True, False], ids=["DecodeStream", "window"])
@needs_package("gpt2")
def test_partial_characters_are_held_back(session_cache, library):
    tok = session_cache.get("gpt2").tokenizer
    ids = tok.encode("😀").ids
    assert len(ids) > 1  # GPT-2 splits the emoji's four bytes over several ids
    det = StreamingDetokenizer(tok, prefer_library=library)
    chunks = [det.step(i) for i in ids]
    assert chunks[:-1] == [""] * (len(ids) - 1) and chunks[-1] == "😀"


@needs_package("llama2-32k")
def test_byte_fallback_pieces(session_cache):
    tok = session_cache.get("llama2-32k").tokenizer
    ids = tok.encode("𝄞", add_special_tokens=False).ids  # not in the vocab: <0xF0><0x9D>...
    assert any(tok.id_to_token(i).startswith("<0x") for i in ids)
    for library in (True, False):
        det = StreamingDetokenizer(tok, prefer_library=library)
        assert "".join(det.step(i) for i in ids) == tok.decode(ids)
    det.reset()
    assert det.step(tok.encode("Hello", add_special_tokens=False).ids[0]) in ("Hello", " Hello", "Hel", "H")
