"""Perplexity pinned as lm-evaluation-harness defines it, plus a rolling-state variant.

lm-evaluation-harness (``loglikelihood_rolling``, the ``wikitext`` task; see ../shared/REFERENCES.md
section 3) scores each document in **disjoint** windows of the model's context length, the first
window prefixed with the end-of-text token, later windows seeing only their own tokens, and
aggregates with weighted perplexity exp(-sum ll / sum units):

- token perplexity: units are the scored tokens;
- word perplexity: words of the original document, ``re.split(r"\\s+", doc)``;
- byte perplexity: UTF-8 bytes of the document; bits per byte = -sum ll / sum bytes / ln 2.

Perplexity changes with detokenisation, unit and stride, so this module pins all three. The
harness cannot carry a recurrent model's state across windows (it re-encodes each window); the
rolling variant here does: a recurrent model prefills the first window and then steps through the
rest of the document with its state; an attention model, which has no state past its window, reads
the document in overlapping windows (stride half its context) so every token keeps at least half
a window of context — the closest thing it has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LogLik:
    """Summed log-likelihood of documents and the units to normalise it by."""

    ll: float = 0.0
    tokens: int = 0
    words: int = 0
    bytes: int = 0

    def add(self, other: LogLik) -> None:
        self.ll += other.ll
        self.tokens += other.tokens
        self.words += other.words
        self.bytes += other.bytes

    def metrics(self) -> dict[str, float]:
        return {
            "token_ppl": math.exp(-self.ll / self.tokens),
            "word_ppl": math.exp(-self.ll / self.words),
            "byte_ppl": math.exp(-self.ll / self.bytes),
            "bits_per_byte": -self.ll / self.bytes / math.log(2),
        }


def word_count(doc: str) -> int:
    """Words as lm-evaluation-harness counts them: ``len(re.split(r"\\s+", doc))``."""
    return len(re.split(r"\s+", doc))


def rolling_windows(ids: Sequence[int], max_length: int, prefix: int) -> list[tuple[list[int], list[int]]]:
    """Disjoint (inputs, targets) windows covering every token once: the first window's inputs
    start with ``prefix`` (EOT), each later window's inputs are its own first ``max_length`` tokens
    shifted by one (its first target is predicted from the token before it, as the harness does
    with ``context_len=1``)."""
    out = []
    stream = [prefix, *ids]
    for start in range(0, len(ids), max_length):
        targets = list(ids[start:start + max_length])
        inputs = stream[start:start + len(targets)]
        out.append((inputs, targets))
    return out


@torch.no_grad()
def _sum_ll(model: torch.nn.Module, inputs: list[int], targets: list[int], device: str) -> float:
    x = torch.tensor([inputs], device=device)
    y = torch.tensor(targets, device=device)
    logits = model(x)[0].float()
    return -float(F.cross_entropy(logits, y, reduction="sum"))


def disjoint_loglik(model: torch.nn.Module, docs: Sequence[str], encode: Callable[[str], list[int]],
                    max_length: int, eot: int, device: str = "cpu") -> LogLik:
    """lm-evaluation-harness's rolling log-likelihood over ``docs`` (disjoint windows, EOT prefix)."""
    model.eval()
    total = LogLik()
    for doc in docs:
        ids = encode(doc)
        if not ids:
            continue
        ll = sum(_sum_ll(model, i, t, device) for i, t in rolling_windows(ids, max_length, eot))
        total.add(LogLik(ll, len(ids), word_count(doc), len(doc.encode("utf-8"))))
    return total


@torch.no_grad()
def carried_state_loglik(model: torch.nn.Module, docs: Sequence[str], encode: Callable[[str], list[int]],
                         max_length: int, eot: int, device: str = "cpu") -> LogLik:
    """Rolling log-likelihood with the recurrent state carried: prefill EOT + the first window,
    then ``step`` through the rest of each document feeding the state back."""
    model.eval()
    total = LogLik()
    for doc in docs:
        ids = encode(doc)
        if not ids:
            continue
        stream = [eot, *ids]
        first = min(max_length, len(ids))
        logits, state = model.prefill(torch.tensor([stream[:first]], device=device), logits="all")
        ll = -float(F.cross_entropy(logits[0].float(), torch.tensor(ids[:first], device=device),
                                    reduction="sum"))
        for t in range(first, len(ids)):
            step_logits, state = model.step(torch.tensor([stream[t]], device=device), state)
            ll += float(torch.log_softmax(step_logits[0].float(), -1)[ids[t]])
        total.add(LogLik(ll, len(ids), word_count(doc), len(doc.encode("utf-8"))))
    return total


@torch.no_grad()
def sliding_loglik(model: torch.nn.Module, docs: Sequence[str], encode: Callable[[str], list[int]],
                   max_length: int, eot: int, device: str = "cpu") -> LogLik:
    """Overlapping windows (stride ``max_length // 2``): each token is scored once, with at least
    half a window of context — an attention model's stand-in for a carried state."""
    model.eval()
    stride = max(1, max_length // 2)
    total = LogLik()
    for doc in docs:
        ids = encode(doc)
        if not ids:
            continue
        stream = [eot, *ids]
        ll = 0.0
        done = 0  # targets scored so far
        while done < len(ids):
            end = min(len(ids), done + (max_length if done == 0 else stride))
            begin = max(0, end - max_length)
            logits = model(torch.tensor([stream[begin:end]], device=device))[0].float()
            logp = torch.log_softmax(logits, -1)
            for t in range(done, end):
                ll += float(logp[t - begin, ids[t]])
            done = end
        total.add(LogLik(ll, len(ids), word_count(doc), len(doc.encode("utf-8"))))
    return total


def rolling_loglik(model: torch.nn.Module, docs: Sequence[str], encode: Callable[[str], list[int]],
                   max_length: int, eot: int, device: str = "cpu") -> tuple[LogLik, str]:
    """The rolling variant that suits the model, and its name (``carried_state`` / ``sliding``)."""
    if getattr(model, "state_growth", "linear") == "constant":
        return carried_state_loglik(model, docs, encode, max_length, eot, device), "carried_state"
    return sliding_loglik(model, docs, encode, max_length, eot, device), "sliding"


def split_documents(text: str, min_chars: int = 200, max_docs: int | None = None,
                    max_chars: int | None = None) -> list[str]:
    """Documents of a text: paragraphs (blank-line separated) merged until ``min_chars`` long."""
    docs, cur = [], ""
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        cur = f"{cur}\n\n{para}" if cur else para
        if len(cur) >= min_chars:
            docs.append(cur[:max_chars] if max_chars else cur)
            cur = ""
            if max_docs and len(docs) >= max_docs:
                break
    if cur and (not max_docs or len(docs) < max_docs):
        docs.append(cur)
    return docs
