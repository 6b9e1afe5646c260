"""Readers for the seed's evaluation sets in their released formats, on small files written here;
a pretrained checkpoint loaded from a local directory; gates on absent data SKIP with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_goni.v5.datasets import DatasetError, read_eval_set, resolve_path

from .conftest import results, run_spec

WIKI = "\n".join([  # WikiText lines keep their surrounding spaces
    " ",
    " = Valkyria Chronicles III = ",
    " ",
    " Senjō no Valkyria 3 : <unk> Chronicles is a tactical role @-@ playing game . ",
    " ",
    " = = Gameplay = = ",
    " ",
    " The game 's battle system is unchanged . ",
    " ",
    " = Tower Building of the Little Rock Arsenal = ",
    " ",
    " The Tower Building is a building in Little Rock , Arkansas . ",
]) + "\n"

PTB = " aer banknote berlitz calloway centrust cluett\n pierre <unk> N years old will join the board\n"

DAILY = ("Say , Jim , how about going for a few beers after dinner ? __eou__ You know that is tempting "
         "but is really not good for our fitness . __eou__\nCan you do push-ups ? __eou__ Of course I can . __eou__\n")

PERSONA = """1 your persona: i like to remodel homes.
2 your persona: i like to go hunting.
3 hi , how are you doing ?\ti am good , just got back from the woods .\t\tcand a|cand b
4 what did you hunt ?\tdeer , mostly .\t\tx|y
1 your persona: my mom is my best friend.
2 hello !\thi there !\t\tp|q
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_wikitext_articles_are_documents(tmp_path: Path) -> None:
    docs = read_eval_set("wikitext", write(tmp_path, "wiki.valid.tokens", WIKI))
    assert len(docs) == 2
    assert docs[0].startswith("= Valkyria Chronicles III =") and "= = Gameplay = =" in docs[0]
    assert docs[1].startswith("= Tower Building")


def test_ptb_dailydialog_personachat(tmp_path: Path) -> None:
    assert read_eval_set("ptb", write(tmp_path, "ptb.valid.txt", PTB)) == [
        "aer banknote berlitz calloway centrust cluett\npierre <unk> N years old will join the board"]
    dd = read_eval_set("dailydialog", write(tmp_path, "dialogues_text.txt", DAILY))
    assert dd[1] == "A: Can you do push-ups ?\nB: Of course I can ."
    pc = read_eval_set("personachat", write(tmp_path, "valid_self_original.txt", PERSONA))
    assert len(pc) == 2 and pc[0].splitlines()[:3] == [
        "your persona: i like to remodel homes.", "your persona: i like to go hunting.",
        "A: hi , how are you doing ?"]
    assert pc[1].splitlines()[-1] == "B: hi there !"


def test_bad_files_say_which_and_why(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dialogues_text.txt:1: no '__eou__'"):
        read_eval_set("dailydialog", write(tmp_path, "dialogues_text.txt", "just text\n"))
    with pytest.raises(DatasetError, match="no ' = Title = '"):
        read_eval_set("wikitext", write(tmp_path, "w.txt", "plain\n"))
    with pytest.raises(DatasetError, match="no such file"):
        read_eval_set("ptb", tmp_path / "missing.txt")


def test_paths_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GONI_TEST_SET", raising=False)
    path, why = resolve_path("$GONI_TEST_SET")
    assert path is None and "unset" in why
    monkeypatch.setenv("GONI_TEST_SET", str(write(tmp_path, "p.txt", PTB)))
    assert resolve_path("$GONI_TEST_SET")[0] == tmp_path / "p.txt"


def test_pretrained_gpt2_loads_a_local_checkpoint(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from pytest_goni.registry import load_builtins, resolve_backend

    load_builtins()
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=60, n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                    bos_token_id=None, eos_token_id=None)).eval()
    hf.save_pretrained(tmp_path)
    m = resolve_backend("gpt2")(pretrained=str(tmp_path))
    x = torch.randint(0, 60, (1, 10))
    torch.testing.assert_close(m(x), hf(x).logits)
    assert m.max_seq_len == 32


def test_gates_on_absent_data_skip_with_the_reason(given) -> None:
    res = run_spec(given, """\
        goni: 1
        id: sk
        measurements:
          m: {kind: given, samples: {a: .nan, b: 2.0}, skip: {a: "eval set 'ptb': no path given ($GONI_PTB is unset)"}}
        gates:
          - {id: ptb, value: m.a / m.b, expect: "<= 1"}
          - {id: other, value: m.b, expect: "> 1"}
        """)
    res.assert_outcomes(passed=1, skipped=1)
    g = {r["gate"]: r for r in results(given)["specs"][0]["gates"]}
    assert g["ptb"]["status"] == "SKIP" and "GONI_PTB is unset" in g["ptb"]["reason"]
