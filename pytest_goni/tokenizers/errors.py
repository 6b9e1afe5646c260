"""Errors of tokenizer discovery and loading: each names what was searched, in which order.

Messages are one line (a failed measurement's reason shows the first line only), the search
steps numbered in the order they ran.
"""

from __future__ import annotations


def _steps(searched: list[str]) -> str:
    return "; ".join(f"({i}) {s}" for i, s in enumerate(searched, 1))


class TokenizerError(LookupError):
    """Base class: a tokenizer could not be found or loaded."""


class TokenizerNotFound(TokenizerError):
    """No search location held the tokenizer; ``searched`` lists every place tried, in order."""

    def __init__(self, spec: str, searched: list[str]):
        self.spec = spec
        self.searched = list(searched)
        super().__init__(f"tokenizer {spec!r} not found; searched, in this order: {_steps(self.searched)}")


class TokenizerLoadError(TokenizerError):
    """Files were found but could not be read as a tokenizer (corrupt, truncated, wrong format)."""

    def __init__(self, spec: str, files: list[str], fmt: str, reason: str, searched: list[str] | None = None):
        self.spec = spec
        self.files = list(files)
        self.format = fmt
        self.reason = reason
        self.searched = list(searched or [])
        where = ", ".join(self.files)
        reason_line = " ".join(reason.split())
        msg = f"tokenizer {spec!r}: cannot load {fmt} from {where}: {reason_line}"
        if self.searched:
            msg += f"; searched, in this order: {_steps(self.searched)}"
        super().__init__(msg)
