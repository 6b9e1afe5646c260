"""The tokenizer kind through the plugin: the shipped spec collects, and a corrupt tokenizer
fails only the gates that read it, with a reason naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

SPEC = Path(__file__).resolve().parents[2] / "specs" / "tokenizers.yaml"


def test_shipped_spec_collects_every_gate(pytester: pytest.Pytester):
    (pytester.path / "tokenizers.yaml").write_text(SPEC.read_text())
    res = pytester.runpytest("--goni-spec", "tokenizers.yaml", "--goni-list")
    out = res.stdout.str()
    assert res.ret == 0, out
    for gate in ("llama3-encode-cpu", "llama2-parity", "gpt2-cache-lookup", "gpt2-gpu-memory",
                 "fastpath-cl100k-vs-tiktoken"):
        assert f"::{gate}" in out
    assert out.count("tokenizers.yaml::") == 54


def test_corrupt_tokenizer_fails_its_gates_with_the_file(pytester: pytest.Pytester):
    (pytester.path / "broken").mkdir()
    (pytester.path / "broken" / "tokenizer.json").write_text('{"model": ')
    pytester.path.joinpath("corpus.txt").write_text("\n\n".join(["To be, or not to be."] * 200))
    pytester.makefile(".yaml", bad="""
goni: 1
id: badtok
title: corrupt tokenizer
source: tokenizer-slas.md
measurements:
  t: {kind: tokenizer, tokenizer: broken, corpus: corpus.txt, reference: none, repeats: 2}
gates:
  - id: enc
    value: t.encode_tok_s
    expect: "> 5K tok/s"
""")
    res = pytester.runpytest("--goni-spec", "bad.yaml")
    out = res.stdout.str()
    assert res.ret != 0
    assert "TokenizerLoadError" in out and "cannot load tokenizer.json" in out
    assert "broken" in out and "tokenizer.json" in out
