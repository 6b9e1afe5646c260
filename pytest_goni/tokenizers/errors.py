"""Errors of tokenizer discovery and loading: each names what was searched, in which order."""

from __future__ import annotations


class TokenizerError(LookupError):
    """Base class: a tokenizer could not be found or loaded."""


class TokenizerNotFound(TokenizerError):
    """No search location held the tokenizer; ``searched`` lists every place tried, in order."""

    def __init__(self, spec: str, searched: list[str]):
        self.spec = spec
        self.searched = list(searched)
        steps = "\n".join(f"  {i}. {s}" for i, s in enumerate(self.searched, 1))
        super().__init__(f"tokenizer {spec!r} not found; searched, in this order:\n{steps}")


class TokenizerLoadError(TokenizerError):
    """Files were found but could not be read as a tokenizer (corrupt, truncated, wrong format)."""

    def __init__(self, spec: str, files: list[str], fmt: str, reason: str, searched: list[str] | None = None):
        self.spec = spec
        self.files = list(files)
        self.format = fmt
        self.reason = reason
        self.searched = list(searched or [])
        where = ", ".join(self.files)
        msg = f"tokenizer {spec!r}: cannot load {fmt} from {where}: {reason}"
        if self.searched:
            msg += "\nsearched, in this order:\n" + "\n".join(
                f"  {i}. {s}" for i, s in enumerate(self.searched, 1))
        super().__init__(msg)
