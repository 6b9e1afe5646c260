"""The ``synthetic_task`` kind end to end on tiny models (one subprocess run, three measurements):
a well-formed task passes its known-answer checks and its models are judged; a deliberately
mislabelled task (targets shifted by one, the public repository's flip-flop bug) is INVALID with
every model verdict on it; a strong baseline below its published level invalidates the other models.
Bad task params are one-line spec errors."""

from __future__ import annotations

import json

import pytest

from .conftest import gates, run_spec

SPEC = """
goni: 1
id: tiny
profiles: {cpu: {}}
models:
  lstm: {backend: lstm, d_model: 8, n_layers: 1}
  rope: {backend: transformer-rope, d_model: 8, n_layers: 1, n_heads: 1}
measurements:
  ok: &ff
    kind: synthetic_task
    task: flip_flop
    task_params: {seq_len: 16}
    models: [lstm, rope]
    steps: 2
    batch_size: 8
    train_examples: 32
    val_examples: 16
    test_examples: 64
    lrs: [0.01, 0.001]
    seeds: [0, 1]
    length_factors: [2]
    cpu_threads: 1
    baseline: {model: lstm, accuracy: 0.0}
    expected_ranking: [[rope], [lstm]]
    eval_every: 1
  shifted:
    <<: *ff
    label_shift: 1
  high:
    <<: *ff
    lrs: [0.01]
    baseline: {model: lstm, accuracy: 1.5}
gates:
  - {id: ok-oracle, value: ok.task.oracle_accuracy, expect: "== 1"}
  - {id: ok-aligned, value: ok.task.aligned, expect: "== 1"}
  - {id: ok-baseline, value: ok.task.baseline_accuracy, expect: ">= 0", stat: mean}
  - {id: ok-rope, value: ok.rope.accuracy, expect: ">= 0"}
  - {id: ok-ranking, value: ok.ranking.kendall_tau, expect: "> -2", severity: info}
  - {id: shifted-oracle, value: shifted.task.oracle_accuracy, expect: "== 1"}
  - {id: shifted-aligned, value: shifted.task.aligned, expect: "== 1"}
  - {id: shifted-rope, value: shifted.rope.accuracy, expect: ">= 0"}
  - {id: shifted-ranking, value: shifted.ranking.kendall_tau, expect: "> -2", severity: info}
  - {id: shifted-sig, kind: significance, a: shifted.rope.accuracy, b: shifted.lstm.accuracy, expect: a != b,
     test: paired-t}
  - {id: high-oracle, value: high.task.oracle_accuracy, expect: "== 1"}
  - {id: high-baseline, value: high.task.baseline_accuracy, expect: ">= 1.5", stat: mean}
  - {id: high-rope, value: high.rope.accuracy, expect: ">= 0"}
  - {id: high-sig, kind: significance, a: high.rope.accuracy, b: high.lstm.accuracy, expect: a != b,
     test: paired-t}
"""


def test_tasks_are_checked_before_models_are_judged(pytester: pytest.Pytester) -> None:
    run_spec(pytester, SPEC, subprocess=True)
    g = gates(pytester)
    # well formed: checks pass, models judged on a real accuracy
    assert g["ok-oracle"]["status"] == "PASS" and g["ok-aligned"]["status"] == "PASS"
    assert g["ok-baseline"]["status"] == "PASS" and g["ok-rope"]["status"] == "PASS"
    assert 0 <= g["ok-rope"]["value"] <= 1
    assert g["ok-ranking"]["status"] in ("PASS", "FAIL")
    assert list(pytester.path.joinpath("rep").glob("tiny.ok.accuracy-vs-training-time.png"))
    # eval_every: the validation curve per seed (steps 1 and 2 of 2), and when the baseline reached its level
    ok = json.loads(next(pytester.path.joinpath("rep").glob("*.json")).read_text())["specs"][0]["measurements"]["ok"]
    curve = ok["metrics"]["rope.accuracy"]["meta"]["val_curve"]
    assert sorted(curve) == ["0", "1"] and [s for s, _ in curve["0"]] == [1, 2]
    assert all(0 <= a <= 1 for points in curve.values() for _, a in points)
    assert "seed 0: step 1" in ok["metrics"]["task.baseline_accuracy"]["note"]  # level 0: reached at once
    # targets shifted by one: the task fails its checks, every verdict on it is INVALID
    assert g["shifted-oracle"]["status"] == "FAIL" and g["shifted-aligned"]["status"] == "FAIL"
    for gid in ("shifted-rope", "shifted-ranking", "shifted-sig"):
        assert g[gid]["status"] == "INVALID", gid
        assert "task failed its known-answer check" in g[gid]["reason"], gid
    assert "not where the definition scores" in g["shifted-rope"]["reason"]
    # the strong baseline below its published level: its own gate FAILs, the others are INVALID
    assert g["high-oracle"]["status"] == "PASS" and g["high-baseline"]["status"] == "FAIL"
    assert g["high-rope"]["status"] == "INVALID" and "strong baseline lstm reached" in g["high-rope"]["reason"]
    assert g["high-sig"]["status"] == "INVALID"


def test_mqar_vocab_below_the_pairs_is_a_one_line_spec_error(pytester: pytest.Pytester) -> None:
    text = SPEC.replace("task: flip_flop", "task: mqar").replace(
        "task_params: {seq_len: 16}", "task_params: {vocab_size: 8, seq_len: 32, num_kv_pairs: 8}")
    result = run_spec(pytester, text)
    out = result.stdout.str()
    assert "s.yaml:9:7: measurements.ok: synthetic_task: task_params.vocab_size: 8 gives 3 distinct keys" in out
    assert "vocab_size must exceed the pairs" in out and "Traceback" not in out


def test_each_seed_starts_from_its_own_weights(tmp_path) -> None:
    """Seeds vary the initial weights as well as the data order (the backends build under their
    config's seed, which the study must set per run)."""
    from pytest_goni.context import MeasureContext
    from pytest_goni.measurements.synthetic_task import build_for_seed
    from pytest_goni.registry import load_builtins

    load_builtins()
    models = {"rope": {"backend": "transformer-rope", "d_model": 8, "n_layers": 1, "n_heads": 1, "vocab_size": 16}}
    ctx = MeasureContext("t", "m", "cpu", "cpu", {}, models, tmp_path / "s.yaml", tmp_path)

    def weights(seed: int) -> list:
        return [p.detach().clone() for p in build_for_seed(ctx, "rope", seed, max_seq_len=8).parameters()]

    a0, a1, b0 = weights(0), weights(1), weights(0)
    assert all((x == y).all() for x, y in zip(a0, b0))
    assert any(not (x == y).all() for x, y in zip(a0, a1))


def test_stop_at_ends_each_run_at_the_first_validation_level_and_records_it(tmp_path, monkeypatch) -> None:
    """``stop_at`` (Zoology's early stopping): every run ends at the first evaluation at or above the
    level (a scripted validation accuracy, reached at the second evaluation: step 4 of 8); the steps
    run and the step reached are reported per seed; without ``stop_at`` nothing of that appears."""
    from pytest_goni.context import MeasureContext
    from pytest_goni.measurements import synthetic_task
    from pytest_goni.registry import load_builtins

    load_builtins()
    script = [0.5, 0.95, 0.97]  # each run's evaluations (a fresh evaluator per run)

    def scripted(self, model) -> float:
        self.calls = getattr(self, "calls", 0) + 1
        return script[self.calls - 1] if stop else 0.5

    monkeypatch.setattr(synthetic_task._ValAccuracy, "__call__", scripted)
    models = {"lstm": {"backend": "lstm", "d_model": 8, "n_layers": 1}}
    ctx = MeasureContext("t", "m", "cpu", "cpu", {}, models, tmp_path / "s.yaml", tmp_path)
    params = {"task": "flip_flop", "task_params": {"seq_len": 16}, "models": ["lstm"], "steps": 8,
              "batch_size": 4, "train_examples": 16, "val_examples": 8, "test_examples": 16, "lrs": [0.01],
              "seeds": [0, 1], "cpu_threads": 1, "plot": False, "eval_every": 2}
    stop = True
    out = synthetic_task.measure_synthetic_task(ctx, {**params, "stop_at": 0.9})
    assert out["lstm.steps_run"].samples == [4.0, 4.0]
    assert out["lstm.steps_run"].meta["stopped_at"] == {"0": 4, "1": 4}
    assert out["lstm.train_seconds"].meta["stopped_at"] == {"0": 4, "1": 4}
    curve = out["lstm.accuracy"].meta["val_curve"]
    assert [s for s, _ in curve["0"]] == [2, 4] and curve["0"][0][1] == 0.5  # the last point: the real final val
    assert 0 <= out["lstm.accuracy"].value() <= 1
    assert set(out) == set(synthetic_task.metric_units({**params, "stop_at": 0.9}))
    stop = False
    plain = synthetic_task.measure_synthetic_task(ctx, params)
    assert "lstm.steps_run" not in plain and "stopped_at" not in plain["lstm.train_seconds"].meta
    assert [s for s, _ in plain["lstm.accuracy"].meta["val_curve"]["0"]] == [2, 4, 6, 8]
    assert set(synthetic_task.metric_units({**params, "stop_at": 0})) == set(plain)  # 0: off (a profile's value)
    with pytest.raises(ValueError, match="stop_at needs eval_every"):
        synthetic_task.metric_units({**params, "eval_every": 0, "stop_at": 0.9})
