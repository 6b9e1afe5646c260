"""Lambda is a real minimum cut: Stoer-Wagner (networkx) against brute force, and the boundary
quantities the gate reads, on graphs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytest_goni.models.gate_policy import Q15, decide
from pytest_goni.models.mincut import attention_graph, brute_force_min_cut, cut_stats, gate_packet, min_cut


def random_graph(rng: np.random.Generator, n: int, density: float) -> np.ndarray:
    w = rng.random((n, n)) * (rng.random((n, n)) < density)
    w = np.triu(w, 1)
    return w + w.T


@pytest.mark.parametrize("seed", range(12))
def test_stoer_wagner_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 10))
    w = random_graph(rng, n, 0.7)
    value, side = min_cut(w)
    assert value == pytest.approx(brute_force_min_cut(w), abs=1e-9)
    mask = np.zeros(n, bool)
    mask[list(side)] = True
    assert w[mask][:, ~mask].sum() == pytest.approx(value, abs=1e-9), "the side returned has that cut"


def test_two_clusters_split_at_the_weak_bridge():
    w = np.zeros((8, 8))
    for block in (range(0, 4), range(4, 8)):
        for i in block:
            for j in block:
                if i != j:
                    w[i, j] = 1.0
    w[3, 4] = w[4, 3] = 0.2
    w[0, 7] = w[7, 0] = 0.1
    s = cut_stats(w, edge_eps=1e-3, partition_eps=0.5)
    assert s.cut_weight == pytest.approx(0.3)
    assert s.side in (frozenset(range(4)), frozenset(range(4, 8)))
    assert s.boundary_edges == 2
    assert s.concentration == pytest.approx(0.2 / 0.3)
    assert s.partitions == 2  # the bridges are below partition_eps
    p = gate_packet(s, lam_prev=90, lambda_scale=100)
    assert (p.lam, p.lam_prev, p.boundary_edges, p.partition_count) == (30, 90, 2, 2)
    assert p.boundary_concentration_q15 == round(0.2 / 0.3 * Q15)


def test_disconnected_graph_has_a_zero_cut():
    w = np.zeros((5, 5))
    w[0, 1] = w[1, 0] = w[2, 3] = w[3, 2] = w[3, 4] = w[4, 3] = 1.0
    value, side = min_cut(w)
    assert value == 0.0 and side == frozenset({0, 1})


def test_attention_graph_is_symmetrised_and_head_averaged():
    a = torch.softmax(torch.randn(2, 6, 6), -1)
    w = attention_graph(a)
    m = a.double().mean(0).numpy()
    assert np.allclose(w, (m + m.T) * (1 - np.eye(6)))
    with pytest.raises(ValueError, match=r"\[..., T, T\]"):
        attention_graph(torch.zeros(3, 4))


def test_a_coherence_drop_moves_the_tier():
    """Lambda from the cut drives the gate: a chain that falls apart gives a low lambda -> tier 2,
    a weaker (but above lambda_min) cut after a strong one gives a drop -> tier 1."""
    strong = np.ones((6, 6)) - np.eye(6)  # cut 5.0
    weak = strong.copy()
    weak[:3, 3:] = weak[3:, :3] = 0.0
    weak[2, 3] = weak[3, 2] = 0.2  # cut 0.2
    medium = strong * 0.5  # cut 2.5
    lam_strong = gate_packet(cut_stats(strong), lambda_scale=20).lam
    assert decide(gate_packet(cut_stats(strong), lam_strong, lambda_scale=20), None).tier == 0
    assert decide(gate_packet(cut_stats(medium), lam_strong, lambda_scale=20), None).tier == 1
    assert decide(gate_packet(cut_stats(weak), lam_strong, lambda_scale=20), None).tier == 2
