"""Synthetic tasks for the architecture comparison (specs/archcomp.yaml): generators faithful to
their primary definitions, each with an oracle that solves it from the inputs alone, so a task can
be checked against a known answer before any model is judged on it (:mod:`.checks`).

A task is a :class:`Task`: ``generate(n, rng, length_factor)`` gives ``TaskData`` (inputs [n, T],
targets [n, T] with :data:`IGNORE_INDEX` on unscored positions, and the trigger positions the
definition scores), ``oracle(inputs)`` predicts every position from the inputs (causally: position
t reads inputs[:t+1] only) and ``vocab_size`` covers every length factor asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import IGNORE_INDEX, Task, TaskData, TaskError, _int
from .flip_flop import FlipFlop
from .knapsack import Knapsack
from .mqar import MQAR

TASKS = {"mqar": MQAR, "flip_flop": FlipFlop, "knapsack": Knapsack}


def make_task(name: str, params: Mapping[str, Any], max_length_factor: int = 1) -> Task:
    """The task ``name`` (mqar | flip_flop | knapsack) with its params checked; raises TaskError."""
    if name not in TASKS:
        raise TaskError(f"task: unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name].from_params(dict(params), max_length_factor, _int)


__all__ = ["IGNORE_INDEX", "TASKS", "Task", "TaskData", "TaskError", "make_task"]
