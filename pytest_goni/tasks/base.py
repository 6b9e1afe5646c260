"""What every synthetic task provides, and the factory that builds one from a spec's params."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_goni.training import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "Task", "TaskData", "TaskError"]


class TaskError(ValueError):
    """Task params that cannot make a valid task (reported at collection, naming the key)."""


@dataclass
class TaskData:
    """``n`` sequences: inputs and targets [n, T] int64; ``scored`` marks where the definition
    places a label (targets != IGNORE_INDEX there, and only there, in a well-formed task);
    ``train_targets`` are what the loss reads (the scored labels, or every next token for a
    language-modelling task such as flip-flop)."""

    inputs: np.ndarray
    targets: np.ndarray
    train_targets: np.ndarray

    @property
    def scored(self) -> np.ndarray:
        return self.targets != IGNORE_INDEX


class Task:
    """A synthetic task. Subclasses set ``name`` and implement the four methods."""

    name = "task"

    def vocab_size(self) -> int:
        raise NotImplementedError

    def seq_len(self, length_factor: int = 1) -> int:
        raise NotImplementedError

    def generate(self, n: int, rng: np.random.Generator, length_factor: int = 1) -> TaskData:
        raise NotImplementedError

    def oracle(self, inputs: np.ndarray) -> np.ndarray:
        """Predictions [n, T] from the inputs alone, by the labels' definition (not the generator's
        label code): what a perfect model outputs."""
        raise NotImplementedError

    def triggers(self, inputs: np.ndarray) -> np.ndarray:
        """[n, T] bool: the positions the definition scores, found from the inputs (a query key, an
        ``r``, the answer marker). Labels anywhere else are misaligned."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def eval_sets(self) -> dict[str, tuple[Task, int]]:
        """Extra evaluation sets besides the in-distribution one: name -> (task, length factor)."""
        return {}


def _int(params: Mapping[str, Any], key: str, default: int) -> int:
    v = params.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise TaskError(f"{key}: must be a whole number, got {v!r}")
    return v
