"""Synthetic tasks for the architecture comparison (specs/archcomp.yaml): generators faithful to
their primary definitions, each with an oracle that solves it from the inputs alone, so a task can
be checked against a known answer before any model is judged on it (:mod:`.checks`).

A task is a :class:`Task`: ``generate(n, rng, length_factor)`` gives ``TaskData`` (inputs [n, T],
targets [n, T] with :data:`IGNORE_INDEX` on unscored positions, and the trigger positions the
definition scores), ``oracle(inputs)`` predicts every position from the inputs (causally: position
t reads inputs[:t+1] only) and ``vocab_size`` covers every length factor asked for.
"""

from __future__ import annotations

from .base import IGNORE_INDEX, Task, TaskData, TaskError, make_task

__all__ = ["IGNORE_INDEX", "Task", "TaskData", "TaskError", "make_task"]
