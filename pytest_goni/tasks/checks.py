"""Known-answer checks of a synthetic task, run before any model is judged on it.

- the oracle (the task's definition applied to the inputs) must score 100% with the same scorer
  the models get: labels that do not follow the definition (shifted, swapped) fail here;
- every scored position must be one the definition scores (a query key, an ``r``, ``ANS``):
  labels moved off their positions fail here even when their values look plausible;
- a majority-label model (the most frequent training label, everywhere) scores chance, and chance
  (the most frequent test label's share) is computed and must leave headroom below the oracle.

A task failing any check is INVALID, and the measurement marks every model metric on it invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import IGNORE_INDEX, Task, TaskData


def accuracy(pred: np.ndarray, data: TaskData) -> float:
    """Share of scored positions where the prediction equals the label (the models' scorer)."""
    mask = data.scored
    total = int(mask.sum())
    return float((pred[mask] == data.targets[mask]).sum() / total) if total else float("nan")


@dataclass
class TaskCheck:
    oracle_accuracy: float
    majority_accuracy: float
    chance: float
    aligned: float
    scored: int
    majority_label: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_task(task: Task, train: TaskData, test: TaskData, headroom: float = 0.05) -> TaskCheck:
    """Run the known-answer checks on a training and a test set of ``task``."""
    problems: list[str] = []
    scored = int(test.scored.sum())
    if scored == 0 or int(train.scored.sum()) == 0:
        problems.append("no scored positions")
        return TaskCheck(float("nan"), float("nan"), float("nan"), float("nan"), scored, -1, problems)
    oracle = accuracy(task.oracle(test.inputs), test)
    if oracle < 1.0:
        problems.append(f"the oracle (the task's definition applied to the inputs) scores {oracle:.2%}, "
                        "not 100%: the labels do not follow the definition")
    trig = task.triggers(test.inputs)
    off = test.scored & ~trig
    aligned = 1.0 - float(off.sum()) / scored
    if off.any():
        r, t = map(int, np.argwhere(off)[0])
        problems.append(f"{int(off.sum())} of {scored} scored positions are not where the definition scores "
                        f"(first: sequence {r}, position {t}, token {int(test.inputs[r, t])})")
    labels, counts = np.unique(train.targets[train.scored], return_counts=True)
    majority = int(labels[np.argmax(counts)])
    majority_acc = accuracy(np.full(test.inputs.shape, majority), test)
    _, test_counts = np.unique(test.targets[test.scored], return_counts=True)
    chance = float(test_counts.max() / scored)
    if chance > 1.0 - headroom:
        problems.append(f"a constant answer scores {chance:.2%}: the task cannot tell models apart")
    return TaskCheck(oracle, majority_acc, chance, aligned, scored, majority, problems)


def shift_labels(data: TaskData, shift: int) -> TaskData:
    """The public repository's bug, on purpose: labels moved ``shift`` positions later (tests)."""
    if shift == 0:
        return data

    def moved(a: np.ndarray) -> np.ndarray:
        out = np.full_like(a, IGNORE_INDEX)
        out[:, shift:] = a[:, :-shift]
        return out

    return TaskData(data.inputs, moved(data.targets), moved(data.train_targets))
