"""Measurement kind ``synthetic_task``: train every named model on one synthetic task (``task: mqar |
flip_flop | knapsack``, :mod:`pytest_goni.tasks`) under Zoology's protocol, after checking the task
against a known answer; the architecture comparison (specs/archcomp.yaml) is built from these.

Order of work:

1. The task is generated (training set per seed, fixed validation and test sets, the length
   generalisation sets at each ``length_factors`` multiple, the task's own extra sets such as
   flip-flop's sparse and dense) and checked (:func:`pytest_goni.tasks.checks.check_task`): the
   oracle scores 100%, every label sits where the definition scores, chance is computed. If a check
   fails no model is trained and every model metric is NaN and marked invalid (``meta["invalid"]``:
   the gates reading it are INVALID with the reason).
2. Every model is trained at every learning rate of ``lrs`` (a log grid) and seed, on the same
   training set per seed; the learning rate with the best mean validation accuracy is kept per model
   (Zoology reports the best over learning rates; selecting on a validation set keeps the test set
   out of the choice). Per model: test accuracy (one sample per seed), accuracy on the extra sets
   and at each length factor, training time, parameter count, recurrent state (or KV cache) bytes
   after a training-length prefill, the chosen learning rate.
3. ``baseline: {model, accuracy}``: the strong baseline must reach the published level at this
   budget (attention on MQAR, Zoology fig. 2); if it does not, every *other* model's metrics are
   marked invalid (a budget at which the best-known solver fails cannot rank architectures: the
   public repository's "attention fails MQAR" finding). The baseline's own metric stays valid, so
   the gate on it FAILs.
4. ``expected_ranking`` (tiers, best first): Kendall's tau-b (scipy) between the tiers and the
   measured mean accuracies, with every disagreeing pair named in the note. ``pareto_size``: how
   many models above chance lie on the accuracy / training-time Pareto front (more than one: a
   trade-off).

``stop_at: a`` (with ``eval_every``; 0, the default, is off) is Zoology's early stopping: each run
ends at the first evaluation whose validation accuracy is at least ``a``, on the same data in the
same order and under the same learning-rate schedule as the full run (the schedule is laid out for
``steps``), so a stopped run is the full run's first steps. The accuracies are scored after the last step run, as
without it; ``M.steps_run`` (per seed) and ``M.train_seconds`` are what the run spent, and the
step each seed reached ``a`` is in their meta (``stopped_at``, None: never).

``label_shift: k`` moves every label k positions later: the public repository's flip-flop bug, on
purpose, for the tests that a mislabelled task is reported INVALID.

Keys: ``task.oracle_accuracy task.majority_accuracy task.chance task.aligned task.valid
task.baseline_accuracy``; per model ``M.accuracy M.accuracy_<set> M.accuracy_len<f> M.seq_accuracy
M.train_seconds M.params M.state_bytes M.best_lr M.final_loss`` (and ``M.steps_run`` with
``stop_at``); ``ranking.kendall_tau
ranking.disagreements pareto_size models_valid``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from pytest_goni.device import release, under_cpu_threads
from pytest_goni.jsonsafe import config_hash
from pytest_goni.measurements.schemas import COUNT, as_count, named_models_schema
from pytest_goni.models.params import param_counts
from pytest_goni.progress import step_check
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric
from pytest_goni.tasks import Task, TaskData, TaskError, make_task
from pytest_goni.tasks.checks import TaskCheck, check_task, shift_labels
from pytest_goni.tasks.ranking import kendall_ranking, pareto_front
from pytest_goni.training import OptimConfig, seed_everything, train

MODEL_LIST = {"type": "array", "items": {"type": "string"}, "x-goni-ref": "model"}

SCHEMA: dict[str, Any] = named_models_schema({
    "task": {"enum": ["mqar", "flip_flop", "knapsack"]},
    "task_params": {"type": "object"},
    "d_model": {"type": "integer", "minimum": 1, "description": "the rung: overrides every model's d_model"},
    "n_layers": {"type": "integer", "minimum": 1},
    "n_heads": {"type": "integer", "minimum": 1},
    "train_examples": COUNT,
    "steps": {"type": "integer", "minimum": 1},
    "batch_size": {"type": "integer", "minimum": 1},
    "val_examples": {"type": "integer", "minimum": 1},
    "test_examples": {"type": "integer", "minimum": 1},
    "lrs": {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMinimum": 0}},
    "seeds": {"type": "array", "minItems": 1, "items": {"type": "integer"}},
    "data_seed": {"type": "integer"},
    "length_factors": {"type": "array", "items": {"type": "integer", "minimum": 2}},
    "warmup": {"type": "number", "minimum": 0},
    "weight_decay": {"type": "number", "minimum": 0},
    "grad_clip": {"type": "number", "minimum": 0},
    "baseline": {"type": "object", "additionalProperties": False, "required": ["model", "accuracy"],
                 "properties": {"model": {"type": "string"}, "accuracy": {"type": "number"},
                                "source": {"type": "string"}}},
    "expected_ranking": {"type": "array", "minItems": 2, "items": MODEL_LIST},
    "label_shift": {"type": "integer", "minimum": 0,
                    "description": "a deliberate fault: every label moved this many positions later"},
    "compile": {"type": "boolean", "description": "torch.compile each run (default off: hundreds of short "
                                                  "runs would spend more time compiling than training)"},
    "plot": {"type": "boolean"},
    "eval_every": {"type": "integer", "minimum": 0,
                   "description": "validation accuracy every this many steps (0: only at the end); the "
                                  "curve is kept in each model's accuracy meta (val_curve)"},
    "stop_at": {"type": "number", "minimum": 0, "maximum": 1,
                "description": "early stopping (Zoology's, at 0.99): a run ends at the first evaluation "
                               "(every eval_every steps) whose validation accuracy is at least this; "
                               "M.steps_run and M.train_seconds say what it spent (0, the default: every "
                               "step, so a profile can turn it off)"},
}, required=("task",))

#: Evaluation batch rows (inference only; small enough for 8k-vocabulary heads on a GPU).
EVAL_ROWS = 256


def _factors(params: dict[str, Any]) -> list[int]:
    return [int(f) for f in params.get("length_factors", [])]


def stop_level(params: dict[str, Any]) -> float | None:
    """The validation accuracy that ends a run early (``stop_at``; None when absent or 0: off)."""
    level = float(params.get("stop_at", 0))
    return level if level > 0 else None


def build_task(params: dict[str, Any]) -> Task:
    """The task of these params (raises TaskError with the key at fault)."""
    return make_task(params["task"], params.get("task_params") or {}, max([1, *_factors(params)]))


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    """Every key this measurement reports; invalid task params are a collection error here."""
    try:
        task = build_task(params)
    except TaskError as e:
        raise ValueError(str(e)) from None
    _check_refs(params)
    if stop_level(params) is not None and int(params.get("eval_every", 0)) < 1:
        raise ValueError("stop_at needs eval_every >= 1 (the validation accuracy it stops on is "
                         "measured every eval_every steps)")
    units = {f"task.{k}": "" for k in ("oracle_accuracy", "majority_accuracy", "chance", "aligned", "valid")}
    if "baseline" in params:
        units["task.baseline_accuracy"] = ""
    per = ["accuracy", "seq_accuracy", "best_lr", "params", "final_loss"]
    per += [f"accuracy_{name}" for name in task.eval_sets()] + [f"accuracy_len{f}" for f in _factors(params)]
    for m in params["models"]:
        units.update({f"{m}.{k}": "" for k in per})
        units.update({f"{m}.train_seconds": "s", f"{m}.state_bytes": "B"})
        if stop_level(params) is not None:
            units[f"{m}.steps_run"] = ""
    units.update({"pareto_size": "", "models_valid": ""})
    if "expected_ranking" in params:
        units.update({"ranking.kendall_tau": "", "ranking.disagreements": ""})
    return units


def _check_refs(params: dict[str, Any]) -> None:
    models = set(params["models"])
    base = params.get("baseline", {}).get("model")
    if base is not None and base not in models:
        raise ValueError(f"baseline.model {base!r} is not among this measurement's models")
    for tier in params.get("expected_ranking", []):
        for m in tier:
            if m not in models:
                raise ValueError(f"expected_ranking names {m!r}, not among this measurement's models")


class EpochBatches:
    """``batch_fn(step)``: rows of a fixed training set, reshuffled every epoch by (seed, epoch),
    so every model trained with one seed sees the same examples in the same order."""

    def __init__(self, data: TaskData, batch: int, seed: int) -> None:
        self.x = torch.from_numpy(data.inputs)
        self.y = torch.from_numpy(data.train_targets)
        self.batch, self.seed, self.n = batch, seed, len(data.inputs)
        self._epoch, self._perm = -1, np.arange(0)

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = step * self.batch
        idx = [self._row(i) for i in range(start, start + self.batch)]
        rows = torch.as_tensor(np.asarray(idx))
        return self.x[rows], self.y[rows]

    def _row(self, i: int) -> int:
        epoch = i // self.n
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, 1, epoch]).permutation(self.n)
        return int(self._perm[i % self.n])

    def epochs_for(self, steps: int) -> float:
        return steps * self.batch / self.n


@torch.no_grad()
def predict_scored(model: torch.nn.Module, data: TaskData, device: str) -> np.ndarray:
    """The model's top prediction at every scored position ([n, T], -1 elsewhere); the head is
    applied only where a label is (no [B, T, V] logits for an 8k vocabulary)."""
    model.eval()
    pred = np.full(data.inputs.shape, -1, dtype=np.int64)
    chunked = callable(getattr(model, "features", None)) and isinstance(getattr(model, "head", None),
                                                                         torch.nn.Linear)
    for i in range(0, len(data.inputs), EVAL_ROWS):
        x = torch.from_numpy(data.inputs[i:i + EVAL_ROWS]).to(device)
        mask = torch.from_numpy(data.scored[i:i + EVAL_ROWS]).to(device)
        if chunked:
            h = model.features(x)[mask]
            logits = model.head(h)
        else:
            logits = model(x)[mask]
        block = pred[i:i + EVAL_ROWS]
        block[data.scored[i:i + EVAL_ROWS]] = logits.argmax(-1).cpu().numpy()
    return pred


def scores(pred: np.ndarray, data: TaskData) -> tuple[float, float]:
    """(accuracy over scored positions, share of sequences with every scored position right)."""
    mask = data.scored
    right = (pred == data.targets) | ~mask
    has = mask.any(axis=1)
    acc = float((pred[mask] == data.targets[mask]).mean())
    return acc, float(right.all(axis=1)[has].mean())


def state_bytes(model: torch.nn.Module, data: TaskData, device: str) -> float:
    """Bytes of the state a training-length prefill leaves (recurrent state, or the KV cache)."""
    try:
        with torch.no_grad():
            _, state = model.prefill(torch.from_numpy(data.inputs[:1]).to(device))
        return float(model.state_bytes(state))
    except Exception:  # noqa: BLE001 - a backend without prefill reports NaN, noted
        return math.nan


class _Sets:
    """Every data set of one measurement, generated once (labels shifted when asked)."""

    def __init__(self, task: Task, params: dict[str, Any]) -> None:
        shift = int(params.get("label_shift", 0))
        ds = int(params.get("data_seed", 0))

        def gen(n: int, key: list[int], factor: int = 1, t: Task = task) -> TaskData:
            return shift_labels(t.generate(n, np.random.default_rng(key), factor), shift)

        n_train = as_count(params.get("train_examples", 10_000))
        self.train = {s: gen(n_train, [int(s), 0]) for s in params.get("seeds", [0])}
        self.val = gen(int(params.get("val_examples", 500)), [ds, 2])
        n_test = int(params.get("test_examples", 1000))
        self.test = gen(n_test, [ds, 1])
        self.extra: dict[str, tuple[Task, TaskData]] = {}
        for i, (name, (t, f)) in enumerate(task.eval_sets().items()):
            self.extra[f"accuracy_{name}"] = (t, gen(n_test, [ds, 100 + i], f, t))
        for f in _factors(params):
            self.extra[f"accuracy_len{f}"] = (task, gen(max(n_test // f, 64), [ds, 10 + f], f))


def _check_all(task: Task, sets: _Sets) -> TaskCheck:
    """The known-answer checks on the training/test pair, then on every extra set."""
    first = next(iter(sets.train.values()))
    check = check_task(task, first, sets.test)
    for key, (t, data) in sets.extra.items():
        for p in check_task(t, first if t is task else data, data).problems:
            check.problems.append(f"{key[len('accuracy_'):]} set: {p}")
    return check


@measurement_kind("synthetic_task", schema=SCHEMA, metrics=metric_units, default_timeout_s=3600.0)
@under_cpu_threads()
def measure_synthetic_task(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Check the task against its known answer, then train and score every model on it."""
    task = build_task(params)
    models = list(params["models"])
    seeds = [int(s) for s in params.get("seeds", [0])]
    lrs = [float(x) for x in params.get("lrs", [1e-3])]
    steps = int(params.get("steps", 1000))
    batch = int(params.get("batch_size", 64))
    rung = {k: int(params[k]) for k in ("d_model", "n_layers", "n_heads") if k in params}
    t0 = time.perf_counter()
    sets = _Sets(task, params)
    check = _check_all(task, sets)
    ctx.log(f"{task.describe()}: generated in {time.perf_counter() - t0:.1f} s; oracle "
            f"{check.oracle_accuracy:.2%}, chance {check.chance:.2%}, aligned {check.aligned:.2%}"
            + (f"; INVALID: {'; '.join(check.problems)}" if check.problems else ""))
    chash = config_hash({"params": params, "models": {m: ctx.model_config(m) for m in models}})
    meta = {"config_hash": chash, "task": task.describe(), "seeds": seeds}
    out = _task_metrics(check, meta)
    invalid = "task failed its known-answer check: " + "; ".join(check.problems) if check.problems else None

    per_model: dict[str, dict[str, Any]] = {}
    if invalid is None:
        for name in models:
            per_model[name] = _train_model(ctx, params, task, sets, name, seeds, lrs, steps, batch, rung)
    else:
        per_model = {name: {} for name in models}

    base = params.get("baseline")
    base_why = None
    if base is not None:
        acc = per_model[base["model"]].get("accuracy", [math.nan])
        mean = float(np.mean(acc))
        curve = per_model[base["model"]].get("val_curve")
        reached = first_step_at(curve, float(base["accuracy"])) if curve else {}
        when = ", ".join(f"seed {k}: {'never' if v is None else f'step {v}'}" for k, v in reached.items())
        out["task.baseline_accuracy"] = Metric.of(acc, "", note=f"{base['model']} (strong baseline); published "
                                                  f"{base['accuracy']:g} ({base.get('source', 'no source given')})"
                                                  + (f"; validation first at that level ({when})"
                                                     if int(params.get("eval_every", 0)) else ""),
                                                  val_curve=curve, **meta, **({"invalid": invalid} if invalid else {}))
        if invalid is None and not mean >= float(base["accuracy"]):
            base_why = (f"the strong baseline {base['model']} reached {mean:.3f} < the published "
                        f"{base['accuracy']:g} ({base.get('source', '')}) at this budget: too small a budget "
                        "to rank architectures")
            ctx.log("INVALID comparison: " + base_why)
    for name in models:
        why = invalid or (base_why if base is None or name != base["model"] else None)
        out.update(_model_metrics(name, per_model[name], task, params, meta, why))
    out.update(_comparison(ctx, params, models, per_model, meta, invalid or base_why, check.chance))
    return out


def _task_metrics(check: TaskCheck, meta: dict[str, Any]) -> dict[str, Metric]:
    why = "; ".join(check.problems)
    return {
        "task.oracle_accuracy": Metric.scalar(check.oracle_accuracy, "", note="oracle (the definition on the "
                                              "inputs) with the models' scorer", exact=True, **meta),
        "task.majority_accuracy": Metric.scalar(check.majority_accuracy, "", note=f"always label "
                                                f"{check.majority_label}", exact=True, **meta),
        "task.chance": Metric.scalar(check.chance, "", note="share of the most frequent test label",
                                     exact=True, **meta),
        "task.aligned": Metric.scalar(check.aligned, "", note="share of labels on positions the definition "
                                      "scores", exact=True, **meta),
        "task.valid": Metric.scalar(0.0 if check.problems else 1.0, "", note=why, exact=True,
                                    scored_positions=check.scored, **meta),
    }


def first_step_at(curves: dict[str, list[list[float]]], level: float) -> dict[str, int | None]:
    """Per seed, the first evaluated step whose validation accuracy is at least ``level`` (None: never)."""
    return {seed: next((int(step) for step, acc in points if acc >= level), None) for seed, points in curves.items()}


class _ValAccuracy:
    """``evaluate`` for :func:`train`: accuracy on the validation set (the curve of accuracy against
    steps, which says whether a budget sits before or after a model's jump off a plateau)."""

    def __init__(self, data: TaskData, device: str) -> None:
        self.data, self.device, self.seconds = data, device, 0.0

    def __call__(self, model: torch.nn.Module) -> float:
        t0 = time.perf_counter()
        acc = scores(predict_scored(model, self.data, self.device), self.data)[0]  # reads back: synchronised
        self.seconds += time.perf_counter() - t0
        return acc


def build_for_seed(ctx: Any, name: str, seed: int, **config: Any) -> torch.nn.Module:
    """Model ``name`` on the context's device, initialised from ``seed``. The backends build under
    their config's ``seed`` (not the global RNG), so without it every seed of a study started from
    the same weights and the intervals over seeds held data order only."""
    return ctx.build_model(name, on_device=True, seed=seed, **config)


def _train_model(ctx: Any, params: dict[str, Any], task: Task, sets: _Sets, name: str, seeds: list[int],
                 lrs: list[float], steps: int, batch: int, rung: dict[str, int]) -> dict[str, Any]:
    """Every (lr, seed) run of one model; the best lr's results (by mean validation accuracy)."""
    runs: dict[float, list[dict[str, Any]]] = {}
    max_len = task.seq_len(max([1, *_factors(params)]))
    every = int(params.get("eval_every", 0))
    stop_at = stop_level(params)
    for lr in lrs:
        cfg = OptimConfig(lr=lr, warmup=float(params.get("warmup", 0.1)),
                          weight_decay=float(params.get("weight_decay", 0.1)),
                          grad_clip=float(params.get("grad_clip", 1.0)), min_lr_ratio=0.1)
        for seed in seeds:
            seed_everything(seed)
            model = build_for_seed(ctx, name, seed, vocab_size=task.vocab_size(), max_seq_len=max_len, **rung)
            batches = EpochBatches(sets.train[seed], batch, seed)
            evaluator = _ValAccuracy(sets.val, ctx.device)
            t0 = time.perf_counter()
            res = train(model, batches, steps, cfg, device=ctx.device, compile=bool(params.get("compile", False)),
                        check=step_check(ctx, f"{name} lr {lr:g} seed {seed}", steps, times=2),
                        evaluate=evaluator if every else None, eval_every=every, stop_at=stop_at)
            seconds = time.perf_counter() - t0 - evaluator.seconds  # training only
            run = {"lr": lr, "seed": seed, "seconds": seconds, "final_loss": res.final_loss,
                   "val": scores(predict_scored(model, sets.val, ctx.device), sets.val)[0],
                   "epochs": batches.epochs_for(res.steps), "steps_run": res.steps, "stopped_at": res.stopped_at}
            run["val_curve"] = [[s, round(a, 4)] for s, a in res.eval_points if s < res.steps]
            run["val_curve"].append([res.steps, round(run["val"], 4)])
            run["accuracy"], run["seq_accuracy"] = scores(predict_scored(model, sets.test, ctx.device), sets.test)
            for key, (_, data) in sets.extra.items():
                run[key] = scores(predict_scored(model, data, ctx.device), data)[0]
            run["params"] = param_counts(model)[0]
            run["state_bytes"] = state_bytes(model, sets.test, ctx.device)
            ctx.log(f"{name} lr {lr:g} seed {seed}: val {run['val']:.3f} test {run['accuracy']:.3f} "
                    f"loss {res.final_loss:.3f} in {seconds:.1f} s"
                    + (f" ({res.steps} of {steps} steps: validation reached {stop_at:g})"
                       if res.stopped_at is not None else "")
                    + (f"; val by step {' '.join(f'{s}:{a:.2f}' for s, a in run['val_curve'])}" if every else ""))
            runs.setdefault(lr, []).append(run)
            del model
            release(ctx.device)
    means = {lr: float(np.mean([r["val"] for r in rs])) for lr, rs in runs.items()}
    best = max(lrs, key=lambda lr: (means[lr], -lr))
    chosen = runs[best]
    out = {k: [r[k] for r in chosen] for k in chosen[0] if k not in ("lr", "seed", "val_curve")}
    out["val_curve"] = {str(r["seed"]): r["val_curve"] for r in chosen}
    out["best_lr"] = best
    out["val_by_lr"] = means
    return out


def _model_metrics(name: str, r: dict[str, Any], task: Task, params: dict[str, Any], meta: dict[str, Any],
                   invalid: str | None) -> dict[str, Metric]:
    flag = {"invalid": invalid} if invalid else {}
    nan = [math.nan]
    keys = ["accuracy", "seq_accuracy", "final_loss"] + [f"accuracy_{n}" for n in task.eval_sets()]
    keys += [f"accuracy_len{f}" for f in _factors(params)]
    out = {f"{name}.{k}": Metric.of(r.get(k, nan), "", **meta, **flag) for k in keys}
    out[f"{name}.accuracy"].meta.update(val_by_lr={str(k): v for k, v in r.get("val_by_lr", {}).items()},
                                        epochs=r.get("epochs"), val_curve=r.get("val_curve"))
    out[f"{name}.train_seconds"] = Metric.of(r.get("seconds", nan), "s", note="wall time of each seed's "
                                             "training run at the chosen lr", **meta, **flag)
    if stop_level(params) is not None:
        reached = {str(s): v for s, v in zip(params.get("seeds", [0]), r.get("stopped_at", []))}
        out[f"{name}.train_seconds"].meta["stopped_at"] = reached
        out[f"{name}.steps_run"] = Metric.of(r.get("steps_run", nan), "", note=f"steps of each seed's run at the "
                                             f"chosen lr; stops at validation accuracy >= {params['stop_at']:g}, "
                                             f"evaluated every {params['eval_every']} of {params.get('steps', 1000)}"
                                             " steps", stopped_at=reached, **meta, **flag)
    out[f"{name}.best_lr"] = Metric.scalar(r.get("best_lr", math.nan), "", exact=True, **meta, **flag)
    out[f"{name}.params"] = Metric.scalar(r.get("params", nan)[0], "", exact=True, **meta, **flag)
    out[f"{name}.state_bytes"] = Metric.scalar(r.get("state_bytes", nan)[0], "B", exact=True,
                                               note="state after a training-length prefill", **meta, **flag)
    return out


def _comparison(ctx: Any, params: dict[str, Any], models: list[str], per_model: dict[str, dict[str, Any]],
                meta: dict[str, Any], invalid: str | None, chance: float) -> dict[str, Metric]:
    """Ranking against the expected tiers, the Pareto front (of the models above chance: a fast model
    that learnt nothing is no trade-off), the plots."""
    flag = {"invalid": invalid} if invalid else {}
    acc = {m: float(np.mean(per_model[m]["accuracy"])) for m in models if per_model[m]}
    secs = {m: float(np.mean(per_model[m]["seconds"])) for m in acc}
    valid = [m for m in acc if math.isfinite(acc[m])]
    front = pareto_front({m: (acc[m], secs[m]) for m in valid if acc[m] > chance})
    out = {
        "models_valid": Metric.scalar(len(valid), "", note=f"{len(valid)} of {len(models)} models measured",
                                      exact=True, **meta, **flag),
        "pareto_size": Metric.scalar(len(front), "", note="accuracy vs training time Pareto front above chance: "
                                     + (", ".join(front) or "none"), exact=True, front=front, **meta, **flag),
    }
    if "expected_ranking" in params:
        tau, pairs = kendall_ranking(params["expected_ranking"], acc)
        note = ("pairs against the expected order: " + "; ".join(pairs)) if pairs else "no pair disagrees"
        out["ranking.kendall_tau"] = Metric.scalar(tau, "", note=note, exact=True, measured=acc,
                                                   expected=params["expected_ranking"], **meta, **flag)
        out["ranking.disagreements"] = Metric.scalar(len(pairs), "", note=note, exact=True, **meta, **flag)
    if params.get("plot", True) and valid:
        from pytest_goni.tasks.plots import plot_comparison

        states = {m: per_model[m]["state_bytes"][0] for m in valid}
        lengths = {m: {1: acc[m], **{f: float(np.mean(per_model[m][f"accuracy_len{f}"]))
                                     for f in _factors(params)}} for m in valid}
        plot_comparison(ctx, {m: acc[m] for m in valid}, secs, states, lengths, front,
                        invalid=invalid)
    return out

