"""Stored baselines: ``--goni-save NAME`` keeps every gate's measured value, ``--goni-compare
NAME`` hands it back to gates that expect ``within X% of baseline`` (regression gates, like the
tokenizer SLA's "max 5% regression")."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

BASELINE_DIR = Path(".goni") / "baselines"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class BaselineError(ValueError):
    pass


def baseline_path(root: Path, name: str) -> Path:
    if not _NAME.match(name):
        raise BaselineError(f"baseline name {name!r} must be letters, digits, '_', '-', '.'")
    return root / BASELINE_DIR / f"{name}.json"


def load_baseline(root: Path, name: str) -> dict[tuple[str, str], float]:
    """(spec id, gate id) -> stored value in base units."""
    path = baseline_path(root, name)
    if not path.is_file():
        known = sorted(p.stem for p in (root / BASELINE_DIR).glob("*.json"))
        raise BaselineError(f"no stored baseline {name!r} at {path}; stored: {', '.join(known) or 'none'} "
                            f"(make one with --goni-save {name})")
    try:
        data = json.loads(path.read_text())
        return {(g["spec"], g["gate"]): float(g["value"]) for g in data["gates"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise BaselineError(f"stored baseline {path} is unreadable: {exc}") from None


def save_baseline(root: Path, name: str, results: list[dict[str, Any]], environment: dict[str, Any]) -> Path:
    """Write the values of every gate that produced one; merges into an existing file."""
    path = baseline_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    old: dict[tuple[str, str], dict[str, Any]] = {}
    if path.is_file():
        try:
            old = {(g["spec"], g["gate"]): g for g in json.loads(path.read_text())["gates"]}
        except (ValueError, KeyError, TypeError):
            old = {}
    for r in results:
        if isinstance(r.get("value"), (int, float)) and r["status"] in ("PASS", "FAIL", "INVALID"):
            old[(r["spec"], r["gate"])] = {"spec": r["spec"], "gate": r["gate"], "value": r["value"],
                                           "display": r["display"]}
    payload = {"saved": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "device": environment.get("device"), "git_commit": environment.get("git_commit"),
               "gates": sorted(old.values(), key=lambda g: (g["spec"], g["gate"]))}
    path.write_text(json.dumps(payload, indent=1))
    return path
