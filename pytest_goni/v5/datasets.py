"""Readers for the evaluation sets the V5 seed names, in their released file formats.

v5-gpt2-gates.md lines 45-53: WikiText-103 and Penn Treebank (perplexity), DailyDialog and
PersonaChat (conversational). None can be downloaded here, so a spec gives a path to each; every
reader returns documents (plain text) that the lm-evaluation-harness perplexity of
pytest_goni.v5.perplexity scores.

- ``wikitext``: ``wiki.{train,valid,test}.{tokens,raw}`` (Merity et al.): articles open with a
  ``" = Title = "`` line (one ``=`` each side; ``" = = Section = = "`` are sections). One document
  per article, as lm-evaluation-harness's document-level wikitext.
- ``ptb``: ``ptb.{train,valid,test}.txt`` (Mikolov's release): one sentence per line, ``<unk>``
  for rare words. Documents of ``ptb_lines`` sentences.
- ``dailydialog``: ``dialogues_text.txt`` (Li et al., 2017): one dialogue per line, utterances
  ended by ``__eou__``. One document per dialogue, a turn per line.
- ``personachat``: ParlAI's ``{train,valid,test}_self_original.txt``: numbered lines restarting at
  1 for each episode; ``N your persona: ...`` lines, then ``N utterance<TAB>response<TAB><TAB>cands``.
  One document per episode: the persona lines, then the turns.
"""

from __future__ import annotations

import re
from pathlib import Path

FORMATS = ("wikitext", "ptb", "dailydialog", "personachat")

_WIKI_TITLE = re.compile(r"^ = [^=].* = $")


class DatasetError(ValueError):
    """An evaluation file that cannot be read in its declared format; the message says where."""


def _read(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def read_wikitext(path: Path) -> list[str]:
    docs: list[list[str]] = []
    for line in _read(path):
        if _WIKI_TITLE.match(line):
            docs.append([line.strip()])
        elif docs:
            docs[-1].append(line.strip())
    if not docs:
        raise DatasetError(f"{path}: no ' = Title = ' article headings (is this a WikiText file?)")
    return ["\n".join(x for x in d if x).strip() for d in docs]


def read_ptb(path: Path, lines_per_doc: int = 50) -> list[str]:
    sents = [s.strip() for s in _read(path) if s.strip()]
    if not sents:
        raise DatasetError(f"{path}: empty")
    return ["\n".join(sents[i:i + lines_per_doc]) for i in range(0, len(sents), lines_per_doc)]


def read_dailydialog(path: Path) -> list[str]:
    docs = []
    for n, line in enumerate(_read(path), 1):
        if not line.strip():
            continue
        if "__eou__" not in line:
            raise DatasetError(f"{path}:{n}: no '__eou__' utterance ends (is this dialogues_text.txt?)")
        turns = [t.strip() for t in line.split("__eou__") if t.strip()]
        docs.append("\n".join(f"{'AB'[i % 2]}: {t}" for i, t in enumerate(turns)))
    return docs


def read_personachat(path: Path) -> list[str]:
    episodes: list[list[str]] = []
    for n, line in enumerate(_read(path), 1):
        if not line.strip():
            continue
        num, _, rest = line.partition(" ")
        if not num.isdigit():
            raise DatasetError(f"{path}:{n}: a line must start with its number (ParlAI format)")
        if num == "1" or not episodes:
            episodes.append([])
        if rest.startswith(("your persona:", "partner's persona:")):
            episodes[-1].append(rest.strip())
            continue
        parts = rest.split("\t")
        episodes[-1].append(f"A: {parts[0].strip()}")
        if len(parts) > 1 and parts[1].strip():
            episodes[-1].append(f"B: {parts[1].strip()}")
    return ["\n".join(e) for e in episodes if e]


def read_eval_set(fmt: str, path: str | Path, max_docs: int | None = None) -> list[str]:
    """Documents of the file at ``path`` in format ``fmt`` (one of :data:`FORMATS`)."""
    readers = {"wikitext": read_wikitext, "ptb": read_ptb, "dailydialog": read_dailydialog,
               "personachat": read_personachat}
    if fmt not in readers:
        raise DatasetError(f"unknown evaluation-set format {fmt!r}; known: {', '.join(FORMATS)}")
    docs = readers[fmt](Path(path))
    return docs[:max_docs] if max_docs else docs


def resolve_path(raw: str | None, resolve=None) -> tuple[Path | None, str | None]:
    """A path from a spec value with ``$VARS`` expanded: (path, None), or (None, why it is absent)
    when the value is empty or names an unset variable — the gates reading it then SKIP."""
    import os

    text = os.path.expandvars(raw or "").strip()
    if not text or "$" in text:
        return None, f"no path given ({raw or 'empty'!s}{' is unset' if raw and '$' in raw else ''})"
    path = resolve(text) if resolve is not None else Path(text)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory")
    return path, None
