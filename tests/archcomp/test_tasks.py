"""The synthetic tasks against their primary definitions, and the known-answer checks."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_goni.tasks import IGNORE_INDEX, TaskError, make_task
from pytest_goni.tasks.checks import accuracy, check_task, shift_labels
from pytest_goni.tasks.flip_flop import ONE, ZERO, R, W
from pytest_goni.tasks.knapsack import knapsack_brute, knapsack_dp
from pytest_goni.tasks.mqar import power_law_gaps

MQAR = {"vocab_size": 256, "seq_len": 64, "num_kv_pairs": 8}


def gen(name, params, n=400, seed=0, factor=1, max_factor=1):
    task = make_task(name, params, max_factor)
    return task, task.generate(n, np.random.default_rng(seed), factor)


def test_mqar_obeys_zoology_constraints():
    task, d = gen("mqar", MQAR)
    V, kv, ctx = 256, 8, 16
    keys, values = d.inputs[:, 0:ctx:2], d.inputs[:, 1:ctx:2]
    assert ((keys >= 1) & (keys < V // 2)).all()                     # keys: lower half, never 0
    assert ((values >= V // 2) & (values < V)).all()                 # values: upper half
    assert all(len(set(r)) == kv for r in keys) and all(len(set(r)) == kv for r in values)  # unique
    assert (d.targets[:, :ctx] == IGNORE_INDEX).all()                # no label inside the context
    scored = d.scored
    assert (scored.sum(axis=1) == kv).all()                          # every key queried once
    rows, cols = np.nonzero(scored)
    assert ((cols - ctx) % 2 == 0).all()                             # queries at ctx + 2 g
    for r, c in zip(rows[:200], cols[:200]):                         # label = value bound to the key
        j = int(np.flatnonzero(keys[r] == d.inputs[r, c])[0])
        assert d.targets[r, c] == values[r, j]
    assert (d.train_targets == d.targets).all()                      # loss only on the labels


def test_mqar_query_gaps_follow_the_power_law():
    rng = np.random.default_rng(0)
    g = power_law_gaps(rng, 4000, 24, 1, 0.01)[:, 0]
    p = 0.01 * np.arange(1, 25) ** (0.01 - 1)
    p /= p.sum()
    freq = np.bincount(g, minlength=24) / g.size
    assert abs(freq[0] - p[0]) < 0.03 and abs(freq[1] - p[1]) < 0.03
    assert freq[0] > 4 * freq[5]                                     # crowded near the context
    uniform = power_law_gaps(rng, 4000, 24, 1, 1.0)[:, 0]
    assert abs(np.bincount(uniform, minlength=24) / 4000 - 1 / 24).max() < 0.02


@pytest.mark.parametrize("params, words", [
    ({"vocab_size": 16, "seq_len": 64, "num_kv_pairs": 8}, "vocab_size must exceed the pairs"),
    ({"vocab_size": 256, "seq_len": 24, "num_kv_pairs": 8}, "4 x num_kv_pairs <= seq_len"),
    ({"vocab_size": 256, "seq_len": 63, "num_kv_pairs": 4}, "must be even"),
    ({"vocab_size": 64, "seq_len": 64, "num_kv_pairs": 4}, "must exceed seq_len"),
    ({"vocab_size": 256, "seq_len": 64, "num_kv_pairs": 4, "power": 1}, "unknown key 'power'"),
])
def test_mqar_rejects_params_zoology_forbids(params, words):
    with pytest.raises(TaskError, match=words.replace("(", r"\(")):
        make_task("mqar", params)


def test_flip_flop_is_liu_et_al():
    task, d = gen("flip_flop", {"seq_len": 64, "p_ignore": 0.8}, n=2000)
    ops, bits = d.inputs[:, 0::2], d.inputs[:, 1::2]
    assert task.vocab_size() == 5 and set(np.unique(ops)) <= {0, 1, 2} and set(np.unique(bits)) <= {ZERO, ONE}
    assert (ops[:, 0] == W).all() and (ops[:, -1] == R).all()
    mid = ops[:, 1:-1]
    assert abs((mid == 2).mean() - 0.8) < 0.02 and abs((mid == W).mean() - 0.1) < 0.01
    for r in range(50):                                               # each read = last written bit
        last = None
        for t in range(ops.shape[1]):
            if ops[r, t] == W:
                last = bits[r, t]
            elif ops[r, t] == R:
                assert bits[r, t] == last and d.targets[r, 2 * t] == last
    assert (d.scored == (d.inputs == R) & (np.arange(64) % 2 == 0)).all()
    assert (d.train_targets[:, :-1] == d.inputs[:, 1:]).all()        # trained as a language model
    sets = task.eval_sets()
    assert sets["sparse"][0].p_ignore == 0.98 and sets["dense"][0].p_ignore == 0.1


def test_knapsack_dp_is_exact_and_tokens_documented():
    rng = np.random.default_rng(0)
    v, w = rng.integers(1, 11, (500, 8)), rng.integers(1, 11, (500, 8))
    c = rng.integers(10, 21, 500)
    assert (knapsack_dp(v, w, c) == knapsack_brute(v, w, c)).all()
    task, d = gen("knapsack", {}, n=100, max_factor=4)
    T = task.seq_len()
    assert T == 28 and d.inputs.shape == (100, 28)
    assert (d.inputs[:, 0] == task.CAP).all() and (d.inputs[:, T - 2] == task.ANS).all()
    assert (d.targets[:, T - 2] == d.inputs[:, T - 1]).all() and d.scored.sum() == 100
    long = task.generate(50, np.random.default_rng(1), 4)
    assert long.inputs.max() < task.vocab_size()                     # the vocabulary covers 4x items


@pytest.mark.parametrize("name, params, chance_below", [
    ("mqar", MQAR, 0.05), ("flip_flop", {"seq_len": 32}, 0.6), ("knapsack", {}, 0.12)])
def test_oracle_solves_and_majority_scores_chance(name, params, chance_below):
    task, train = gen(name, params, n=1000, seed=0)
    test = task.generate(1000, np.random.default_rng(1))
    check = check_task(task, train, test)
    assert check.ok, check.problems
    assert check.oracle_accuracy == 1.0 and check.aligned == 1.0
    assert check.majority_accuracy <= check.chance < chance_below
    labels, counts = np.unique(test.targets[test.scored], return_counts=True)
    assert check.chance == pytest.approx(counts.max() / counts.sum())
    assert accuracy(np.full(test.inputs.shape, check.majority_label), test) == check.majority_accuracy


@pytest.mark.parametrize("name, params", [("mqar", MQAR), ("flip_flop", {"seq_len": 32}), ("knapsack", {})])
def test_targets_shifted_by_one_fail_the_checks(name, params):
    """The public repository's flip-flop bug (targets one position late), on every task."""
    task, train = gen(name, params, n=300)
    test = task.generate(300, np.random.default_rng(1))
    check = check_task(task, shift_labels(train, 1), shift_labels(test, 1))
    assert not check.ok
    assert check.oracle_accuracy < 0.1 and check.aligned < 0.1
    assert any("oracle" in p for p in check.problems) and any("not where" in p for p in check.problems)


def test_a_constant_label_task_is_flagged():
    task, d = gen("flip_flop", {"seq_len": 8, "p_ignore": 0.0}, n=200)
    d.targets[d.scored] = ONE      # every read says 1: oracle fails and chance leaves no headroom
    check = check_task(task, d, d)
    assert any("constant answer" in p for p in check.problems)
