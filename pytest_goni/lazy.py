"""Heavy modules imported on first use, so that loading a spec (and an xdist controller, which
only schedules) does not pay for torch.

``from pytest_goni.lazy import torch`` gives a stand-in whose first attribute access imports
torch; code keeps writing ``torch.float32``. Annotations stay strings (``from __future__ import
annotations``), so ``torch.Tensor`` in a signature imports nothing.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """A module imported when one of its attributes is first read."""

    def __init__(self, name: str):
        super().__init__(name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)


torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
