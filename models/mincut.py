"""Lambda for real: the minimum cut of a request's attention graph, and the gate packet it gives.

The crate the tiers seed documents takes lambda, boundary edges, concentration and partition count
as caller-supplied fields and never computes a cut (../shared/REFERENCES.md section 1). Here they
come from the request itself:

- graph: tokens are nodes; the edge weight between tokens i != j is the symmetrised attention
  ``A[i, j] + A[j, i]`` (A = attention probabilities averaged over heads, rows sum to 1);
- lambda: the weight of a global minimum cut (Stoer-Wagner, ``networkx.stoer_wagner``), scaled by
  ``lambda_scale`` and rounded. The crate gives lambda no unit; the ``tiers`` kind sets the scale
  to 100 / (the median cut of held-out text windows), so lambda is a percentage of typical
  coherence and the crate's ``lambda_min = 30`` means a cut lighter than 30% of a typical one;
- boundary edges: edges crossing that cut with weight >= ``edge_eps``;
- concentration: the heaviest crossing edge's share of the cut weight, Q15;
- partitions: connected components once edges lighter than ``partition_eps`` are dropped.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch

from .gate_policy import Q15, GatePacket


@dataclass(frozen=True)
class CutStats:
    """A minimum cut of an attention graph and what the gate reads from it."""

    cut_weight: float
    side: frozenset[int]  # the smaller side of the cut
    boundary_edges: int
    concentration: float  # heaviest crossing edge / cut weight, in [0, 1]
    partitions: int


def attention_graph(attn: torch.Tensor | np.ndarray) -> np.ndarray:
    """Symmetric weights [T, T] (zero diagonal) from attention probabilities [..., T, T]; leading
    dimensions (heads, layers) are averaged."""
    a = attn.detach().double().cpu().numpy() if isinstance(attn, torch.Tensor) else np.asarray(attn, float)
    while a.ndim > 2:
        a = a.mean(axis=0)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"attention must be [..., T, T], got shape {a.shape}")
    w = a + a.T
    np.fill_diagonal(w, 0.0)
    return w


def _graph(w: np.ndarray) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(range(w.shape[0]))
    ii, jj = np.nonzero(np.triu(w, 1) > 0)
    g.add_weighted_edges_from((int(i), int(j), float(w[i, j])) for i, j in zip(ii, jj))
    return g


def min_cut(w: np.ndarray) -> tuple[float, frozenset[int]]:
    """Global minimum cut of the weighted graph ``w`` (symmetric, zero diagonal): (weight, the
    smaller side). A disconnected graph has a cut of weight 0 (a component against the rest)."""
    n = w.shape[0]
    if n < 2:
        raise ValueError("a cut needs at least two nodes")
    g = _graph(w)
    comps = list(nx.connected_components(g))
    if len(comps) > 1:
        side = min(comps, key=len)
        return 0.0, frozenset(side)
    value, (a, b) = nx.stoer_wagner(g, weight="weight")
    side = a if len(a) <= len(b) else b
    return float(value), frozenset(side)


def brute_force_min_cut(w: np.ndarray) -> float:
    """The minimum over every bipartition (2^(n-1) - 1 of them): the reference for small graphs."""
    n = w.shape[0]
    best = math.inf
    for r in range(1, n // 2 + 1):
        for side in itertools.combinations(range(n), r):
            mask = np.zeros(n, bool)
            mask[list(side)] = True
            best = min(best, float(w[mask][:, ~mask].sum()))
    return best


def cut_stats(w: np.ndarray, edge_eps: float = 1e-3, partition_eps: float = 0.05) -> CutStats:
    """The minimum cut of ``w`` and the gate's boundary quantities taken from it."""
    value, side = min_cut(w)
    mask = np.zeros(w.shape[0], bool)
    mask[list(side)] = True
    crossing = w[mask][:, ~mask]
    heavy = crossing[crossing >= edge_eps]
    conc = float(heavy.max() / value) if value > 0 and heavy.size else 0.0
    strong = np.where(w >= partition_eps, w, 0.0)
    parts = nx.number_connected_components(_graph(strong))
    return CutStats(value, side, int(heavy.size), conc, int(parts))


def gate_packet(stats: CutStats, lam_prev: int = 0, lambda_scale: float = 100.0, flags: int = 0) -> GatePacket:
    """The crate's integer gate packet from a cut (lambda scaled and rounded, concentration in Q15)."""
    return GatePacket(lam=int(round(lambda_scale * stats.cut_weight)), lam_prev=lam_prev,
                      boundary_edges=stats.boundary_edges,
                      boundary_concentration_q15=min(Q15 - 1, int(round(stats.concentration * Q15))),
                      partition_count=stats.partitions, flags=flags)
