"""GroundThink's state checks S0-S4 and state persistence across processes.

From the GroundThink project's CANARY_TESTS.md (../shared/REFERENCES.md section 3): S0 the state
tensors exist with their declared shapes; S1 state norm in (0.01, 100) with no NaN; S2 different
inputs give states that differ by more than 0.1; S3 the same input gives states within 1e-5; S4 for
the hybrid, the Mamba/RWKV state-variance ratio in 0.01-100, read on the two branches' recurrent
memories (GroundThink: "S0-S4 must be 100% at every scale"). S2 is also read on inputs that differ
only before their last token: a state that holds only the current token (reset every token) fails it.
The seed's "weird science" list adds "State persistence across sessions — can we resume
conversations?" (v5-gpt2-gates.md line 918):
the state is saved, a fresh Python process loads it with the weights and continues, and its
logits must equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

#: What s_checks and persistence_diff measure (the ``state_checks`` kind's and v5_compare's keys).
#: ``s1_rms_max`` is the per-entry RMS of the tensor behind ``s1_norm_max``: a tensor's norm grows as the
#: square root of its size, so the same entries give a larger S1 norm at a wider model (reported beside it).
STATE_KEYS = ("s0_tensors", "s0_shapes_fixed", "s1_norm_min", "s1_norm_max", "s1_rms_max", "s1_finite", "s2_diff",
              "s2_context_diff", "context_logit_diff", "s3_diff", "s4_variance_ratio", "persistence_max_diff")


def state_tensors(state: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """(path, tensor) for every tensor in a nested state (dicts, lists, tuples; KV caches skipped)."""
    if isinstance(state, torch.Tensor):
        yield path, state
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from state_tensors(v, f"{path}.{k}" if path else str(k))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            yield from state_tensors(v, f"{path}.{i}" if path else str(i))


def _flat(state: Any) -> torch.Tensor:
    ts = [t.detach().float().reshape(-1) for _, t in state_tensors(state)]
    return torch.cat(ts) if ts else torch.zeros(0)


@torch.no_grad()
def s_checks(model: torch.nn.Module, vocab: int, length: int, seed: int = 0) -> dict[str, float]:
    """S0-S4 on states after ``length`` random tokens (two lengths for S0's shape check)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, vocab, (1, length), generator=g)
    b = torch.randint(0, vocab, (1, length), generator=g)
    model.eval()
    _, sa = model.prefill(a)
    _, sa2 = model.prefill(a)
    _, sb = model.prefill(b)
    _, s_short = model.prefill(a[:, :max(1, length // 2)])
    shapes = [tuple(t.shape) for _, t in state_tensors(sa)]
    shapes_short = [tuple(t.shape) for _, t in state_tensors(s_short)]
    flat_a, flat_b, flat_a2 = _flat(sa), _flat(sb), _flat(sa2)
    tensors = [t.float() for _, t in state_tensors(sa)]
    norms = [float(t.norm()) for t in tensors]
    largest = tensors[max(range(len(norms)), key=norms.__getitem__)] if norms else None
    out = {
        "s0_tensors": float(len(shapes)),
        "s0_shapes_fixed": float(bool(shapes) and shapes == shapes_short),
        "s1_norm_min": min(norms) if norms else math.nan,
        "s1_norm_max": max(norms) if norms else math.nan,
        "s1_rms_max": float(largest.pow(2).mean().sqrt()) if largest is not None else math.nan,
        "s1_finite": float(bool(torch.isfinite(flat_a).all())) if flat_a.numel() else 0.0,
        "s2_diff": float((flat_a - flat_b).norm()) if flat_a.numel() else math.nan,
        "s3_diff": float((flat_a - flat_a2).norm()) if flat_a.numel() else math.nan,
    }
    # S2 asks that different inputs give different states; inputs that differ only *before* the last
    # token must too, or the state holds nothing but the current token (a state reset every token).
    c = b.clone()
    c[:, -1] = a[:, -1]
    logits_a, _ = model.prefill(a)
    logits_c, sc = model.prefill(c)
    flat_c = _flat(sc)
    out["s2_context_diff"] = float((flat_a - flat_c).norm()) if flat_a.numel() else math.nan
    out["context_logit_diff"] = float((logits_a[:, -1].float() - logits_c[:, -1].float()).abs().max())
    mamba, rwkv = branch_memory(sa, "mamba"), branch_memory(sa, "rwkv")
    out["s4_variance_ratio"] = float(mamba.var() / rwkv.var()) if mamba.numel() and rwkv.numel() else math.nan
    return out


#: The key of a branch's recurrent memory in its state dict (Mamba-2's SSM state, RWKV-6's wkv state);
#: its other entries ("conv", "shift") are buffers of the last inputs, not memory.
MEMORY_KEY = "S"


def branch_memory(state: Any, branch: str) -> torch.Tensor:
    """The recurrent memories of one branch of a hybrid (every layer's ``MEMORY_KEY`` tensor under a
    path naming ``branch``), flattened. S4 compares these: the short-convolution and token-shift
    buffers hold copies of the last inputs, live whatever the memory does, and their variance is
    ~1e4 the SSM state's, so with them in, the "Mamba variance" was the convolution buffer's."""
    ts = [t.detach().float().reshape(-1) for p, t in state_tensors(state)
          if branch in p and p.rsplit(".", 1)[-1] == MEMORY_KEY]
    return torch.cat(ts) if ts else torch.zeros(0)


_CHILD = r"""
import json, sys, torch
from pytest_goni.registry import load_builtins, resolve_backend
load_builtins()
spec = json.loads(open(sys.argv[1]).read())
cfg = dict(spec["config"]); backend = cfg.pop("backend")
model = resolve_backend(backend)(**cfg)
model.load_state_dict(torch.load(spec["weights"], weights_only=True))
model.eval()
state = torch.load(spec["state"], weights_only=False)
rest = torch.tensor(spec["rest"])
logits = []
with torch.no_grad():
    for t in range(rest.shape[1]):
        lg, state = model.step(rest[:, t], state)
        logits.append(lg)
torch.save(torch.stack(logits, 1), spec["out"])
"""


@torch.no_grad()
def persistence_diff(model: torch.nn.Module, config: dict[str, Any], vocab: int, first: int, rest: int,
                     workdir: Path, seed: int = 0, timeout: float = 120.0) -> float:
    """Max |logit difference| between an uninterrupted run (forward over first + rest tokens) and
    a run whose state after ``first`` tokens was saved, loaded in a fresh process and continued."""
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, vocab, (1, first + rest), generator=g)
    model.eval()
    full = model(tokens).float()[:, first:]
    _, state = model.prefill(tokens[:, :first])
    workdir.mkdir(parents=True, exist_ok=True)
    files = {k: str(workdir / f"{k}.pt") for k in ("weights", "state", "out")}
    torch.save(model.state_dict(), files["weights"])
    torch.save(state, files["state"])
    spec = {**files, "config": config, "rest": tokens[:, first:].tolist()}
    (workdir / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(workdir / "spec.json")], capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the resumed process failed: {tail}")
    resumed = torch.load(files["out"], weights_only=True).float()
    return float((resumed - full).abs().max())
