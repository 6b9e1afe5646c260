"""Evaluating a trained V5 model: statefulness items, loss by position past the training context,
and continuations for the blind sample sheet.

Attention models (a KV cache: ``state_growth != "constant"``) see at most ``window`` tokens — their
training context, as the seed asks ("Test GPT-2 on statefulness tests within its context window",
line 76): a prompt longer than that is cut from the left, so a fact beyond the window is gone, and
long sequences are read with a sliding window. Recurrent models read everything with their state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pytest_goni.v5.dialogue import TokenizedItem


def is_recurrent(model: torch.nn.Module) -> bool:
    return getattr(model, "state_growth", "linear") == "constant"


@torch.no_grad()
def item_accuracy(model: torch.nn.Module, item: TokenizedItem, window: int, device: str,
                  batch: int = 32) -> tuple[float, float]:
    """Multiple-choice accuracy over the item's episodes, and the fraction whose fact lay beyond
    the model's window (cut off)."""
    model.eval()
    rows, pos, cut = [], [], 0
    for ids, p in zip(item.ids, item.score_pos):
        seq = ids[:p + 1]
        if not is_recurrent(model) and len(seq) > window:
            seq = seq[-window:]
            cut += 1
        rows.append(seq)
        pos.append(len(seq) - 1)
    hits = 0
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        width = max(len(r) for r in chunk)
        x = torch.zeros(len(chunk), width, dtype=torch.long)
        for i, r in enumerate(chunk):
            x[i, :len(r)] = torch.tensor(r)  # right padding: causal models never read it
        logits = model(x.to(device)).float()
        for i in range(len(chunk)):
            k = start + i
            scores = logits[i, pos[k], item.choice_ids[k]]
            hits += int(int(scores.argmax()) == item.label[k])
    return hits / len(rows), cut / len(rows)


@torch.no_grad()
def position_losses(model: torch.nn.Module, seqs: torch.Tensor, window: int, device: str) -> np.ndarray:
    """Per-position cross-entropy [n, L-1] of sequences ``seqs`` [n, L]: one parallel pass for a
    recurrent model, a sliding window (stride ``window // 2``) for an attention model."""
    model.eval()
    x, y = seqs[:, :-1].to(device), seqs[:, 1:].to(device)
    n, length = x.shape
    if is_recurrent(model) or length <= window:
        logits = model(x).float()
        return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").cpu().numpy()
    out = np.zeros((n, length))
    stride = max(1, window // 2)
    done = 0
    while done < length:
        end = min(length, done + (window if done == 0 else stride))
        begin = max(0, end - window)
        logits = model(x[:, begin:end]).float()
        ce = F.cross_entropy(logits.transpose(1, 2), y[:, begin:end], reduction="none").cpu().numpy()
        out[:, done:end] = ce[:, done - begin:]
        done = end
    return out


def bucket_losses(losses: np.ndarray, context: int, multiples: Sequence[int]) -> dict[int, float]:
    """Mean loss over positions [k/2 C, k C) for each multiple k (k = 1: the second half of the
    training context, the in-distribution reference)."""
    out = {}
    for k in sorted({1, *multiples}):
        lo, hi = (k * context) // 2, min(k * context, losses.shape[1])
        out[k] = float(losses[:, lo:hi].mean()) if hi > lo else float("nan")
    return out


def useful_context(buckets: dict[int, float], tolerance: float = 0.05) -> float:
    """The seed's "useful context window" (lines 937-945) in multiples of the training context: the
    largest multiple up to which the loss stays within ``tolerance`` of the in-context loss."""
    ref = buckets[1]
    best = 1.0
    for k in sorted(buckets):
        if k == 1:
            continue
        if not buckets[k] <= ref * (1 + tolerance):
            break
        best = float(k)
    return best


@torch.no_grad()
def continue_text(model: torch.nn.Module, prompt: list[int], n: int, window: int, device: str,
                  rng: np.random.Generator, temperature: float = 0.8, top_k: int = 40) -> list[int]:
    """``n`` tokens sampled after ``prompt`` (top-k, seeded), re-reading the last ``window`` tokens."""
    model.eval()
    ids = list(prompt)
    for _ in range(n):
        ctx = ids[-window:] if not is_recurrent(model) else ids
        logits = model(torch.tensor([ctx], device=device))[0, -1].float() / temperature
        top = torch.topk(logits, min(top_k, logits.numel()))
        p = torch.softmax(top.values, -1).cpu().numpy().astype(np.float64)
        ids.append(int(top.indices[int(rng.choice(len(p), p=p / p.sum()))]))
    return ids[len(prompt):]


def blind_sheet(samples: dict[str, list[tuple[str, str]]], seed: int) -> tuple[str, dict[str, str]]:
    """A Markdown sheet of continuations with the model names hidden and the order shuffled, and
    the key (sample id -> model) that stays in the results JSON. ``samples``: model -> [(prompt,
    continuation)], the same prompts in the same order for every model."""
    rng = np.random.default_rng([seed, 99])
    models = sorted(samples)
    lines = ["# Blind sample sheet", "", "Rate each continuation for coherence, fact consistency and "
             "naturalness (v5-gpt2-gates.md, 'The Blind Taste Test'). The models are hidden.", ""]
    key: dict[str, str] = {}
    n_prompts = len(samples[models[0]])
    for p in range(n_prompts):
        lines += [f"## Prompt {p + 1}", "", "```", samples[models[0]][p][0].strip(), "```", ""]
        for j, i in enumerate(rng.permutation(len(models))):
            sid = f"{p + 1}{chr(ord('A') + j)}"
            key[sid] = models[int(i)]
            lines += [f"**Sample {sid}**", "", "```", samples[models[int(i)]][p][1].strip(), "```", ""]
    return "\n".join(lines), key

