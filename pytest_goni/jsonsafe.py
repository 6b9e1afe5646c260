"""The one JSON cleaner (results files stay standard JSON, which has no NaN or infinity) and the
one content hash of a JSON-able configuration.

Non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"``; numpy scalars become
Python numbers; tuples become lists; anything else JSON cannot hold becomes its ``str``.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np


def json_safe(x: Any) -> Any:
    """A copy of ``x`` that ``json.dumps`` writes as standard JSON."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, str) or x is None:
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else str(f)
    return str(x)


def config_hash(obj: Any) -> str:
    """SHA-256 (first 16 hex digits) of a canonical JSON rendering: what a result was made from."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
