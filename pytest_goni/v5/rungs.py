"""Size rungs: the candidate at a rung's shape and the GPT-2 whose parameter count matches it.

v5-gpt2-gates.md lines 22-29 ("Parameter-Matched Comparisons": 3.5M, 8M, 30M, 125M) and 64-67
("Adjust layers, hidden size, and attention heads to match parameter count"). A rung is a mapping
of config overrides for the candidate (``{size: 8M}`` for the seed's shapes, or explicit widths
for a CPU toy); the baseline gets the GPT-2 shape nearest the candidate's count — total or
non-embedding, as the spec says — built with the same vocabulary and the training context as its
position table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pytest_goni.models.gpt2 import match_gpt2_config
from pytest_goni.models.matching import count_params, resolve_model_config
from pytest_goni.registry import resolve_backend


@dataclass
class RungPair:
    """The configs of one rung's candidate and matched baseline, with their counts."""

    rung: str
    candidate: dict[str, Any]
    baseline: dict[str, Any]
    counts: dict[str, tuple[int, int]]  # role -> (total, non-embedding)
    match: dict[str, Any]

    def build(self, role: str, seed: int, device: str) -> torch.nn.Module:
        cfg = dict(self.candidate if role == "candidate" else self.baseline)
        cfg["seed"] = seed
        backend = cfg.pop("backend")
        return resolve_backend(backend)(**cfg).to(device)


def rung_pair(models: dict[str, dict[str, Any]], candidate: str, baseline: str, rung: str,
              overrides: dict[str, Any], vocab_size: int, seq_len: int, match: str) -> RungPair:
    """The candidate with ``overrides`` and the baseline matched to it (``match``: total |
    non_embedding). A baseline that is not ``gpt2`` (or gives its own shape) is built as written."""
    cand = resolve_model_config(models, candidate)
    cand.update(overrides)
    cand["vocab_size"] = vocab_size
    base = resolve_model_config(models, baseline)
    base["vocab_size"] = vocab_size
    c_counts = count_params(cand["backend"], {k: v for k, v in cand.items() if k != "backend"})
    info: dict[str, Any] = {"counted": match}
    if base["backend"] == "gpt2" and not any(k in base for k in ("d_model", "n_layers", "size")):
        base.pop("match_params", None)
        base.pop("match", None)
        target = c_counts[1] if match == "non_embedding" else c_counts[0]
        shape = match_gpt2_config(target, vocab_size, max_seq_len=seq_len,
                                  non_embedding=match == "non_embedding")
        base.update({k: shape[k] for k in ("n_layers", "n_heads", "d_model", "d_ff")})
        base["max_seq_len"] = seq_len
        info.update(target=target, shape={k: shape[k] for k in ("n_layers", "n_heads", "d_model", "d_ff")})
    b_counts = count_params(base["backend"], {k: v for k, v in base.items() if k != "backend"})
    return RungPair(rung, cand, base, {"candidate": c_counts, "baseline": b_counts}, info)
