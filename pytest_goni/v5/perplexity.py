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
    then ``step`` through the rest of each document feeding the state back. Documents longer than
    a window step together as one batch (a finished one is fed EOT and no longer scored), so the
    cost is the longest document's steps, not the sum."""
    model.eval()
    total = LogLik()
    encoded = [(doc, encode(doc)) for doc in docs]
    long = [(doc, ids) for doc, ids in encoded if len(ids) > max_length]
    for doc, ids in encoded:
        if ids and len(ids) <= max_length:  # one window: the prefill scores it all
            logits, _ = model.prefill(torch.tensor([[eot, *ids[:-1]]], device=device), logits="all")
            ll = -float(F.cross_entropy(logits[0].float(), torch.tensor(ids, device=device), reduction="sum"))
            total.add(LogLik(ll, len(ids), word_count(doc), len(doc.encode("utf-8"))))
    if not long:
        return total
    streams = [[eot, *ids] for _, ids in long]
    first = torch.tensor([s[:max_length] for s in streams], device=device)          # [B, W]
    logits, state = model.prefill(first, logits="all")                               # [B, W, V]
    targets = torch.tensor([ids[:max_length] for _, ids in long], device=device)     # [B, W]
    ll = -F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none").sum(1).double()  # [B]
    lengths = torch.tensor([len(ids) for _, ids in long], device=device)
    width = int(lengths.max())
    pad = torch.tensor([s + [eot] * (width + 1 - len(s)) for s in streams], device=device)  # [B, width + 1]
    padded_ids = pad[:, 1:]                                                          # targets, [B, width]
    for t in range(max_length, width):
        step_logits, state = model.step(pad[:, t], state)                           # [B, V]
        logp = torch.log_softmax(step_logits.float(), -1).gather(1, padded_ids[:, t:t + 1])[:, 0]
        ll += torch.where(lengths > t, logp, torch.zeros_like(logp)).double()
    for (doc, ids), v in zip(long, ll.tolist()):
        total.add(LogLik(v, len(ids), word_count(doc), len(doc.encode("utf-8"))))
    return total


def windows_spanned(docs: Sequence[str], encode: Callable[[str], list[int]], max_length: int) -> list[int]:
    """How many disjoint windows of ``max_length`` tokens each document fills (lm-evaluation-harness's
    rolling windows): a rolling (carried-state) score can differ from the disjoint one only on
    documents of more than one."""
    return [-(-len(encode(d)) // max_length) for d in docs]


def rolling_invalid(windows: Sequence[int], max_length: int) -> str | None:
    """Why a rolling-vs-disjoint comparison checks nothing, or None: when no document spans more than
    one window, carrying the state across windows never happens and the two scores are equal by
    construction."""
    if any(w > 1 for w in windows):
        return None
    return (f"no perplexity document spans more than one {max_length}-token window ({len(windows)} documents): "
            "the rolling score equals the disjoint one by construction")


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
                    max_chars: int | None = None, min_tokens: int = 0,
                    encode: Callable[[str], list[int]] | None = None) -> list[str]:
    """Documents of a text: paragraphs (blank-line separated) merged until ``min_chars`` long and,
    with ``encode``, at least ``min_tokens`` tokens (``max_chars`` cuts a merged document; it never
    applies with ``min_tokens``, whose documents end at the first paragraph that reaches it)."""
    if min_tokens and encode is None:
        raise ValueError("min_tokens needs encode")
    docs, cur = [], ""

    def enough(doc: str) -> bool:
        return len(doc) >= min_chars and (not min_tokens or len(encode(doc)) >= min_tokens)

    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        cur = f"{cur}\n\n{para}" if cur else para
        if enough(cur):
            docs.append(cur[:max_chars] if max_chars and not min_tokens else cur)
            cur = ""
            if max_docs and len(docs) >= max_docs:
                break
    if cur and (not max_docs or len(docs) < max_docs):
        docs.append(cur)
    return docs
