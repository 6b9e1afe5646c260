"""Stored baselines: ``--goni-save NAME`` keeps every gate's measured value with what makes it
comparable (the samples behind it, their units, the profile, a hash of the measurements' config,
the device); ``--goni-compare NAME`` hands the latest save back to the gates that expect
``within X% of baseline`` or ``no more than X% slower than baseline``, and refuses (INVALID, with
the reason) a comparison across profiles, configs, units or devices.

Every save is a new file, ``.goni/baselines/NAME/<UTC time>.json``: the history stays, and
``NAME~1`` names the save before the latest. ``--goni-baselines`` lists and compares saves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .status import JUDGED, SKIP

BASELINE_DIR = Path(".goni") / "baselines"
BASELINE_VERSION = 2
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REF = re.compile(r"^(?P<name>[^~]+)(?:~(?P<back>\d+))?$")


class BaselineError(ValueError):
    pass


@dataclass
class BaselineEntry:
    """One gate of one save."""

    value: float
    display: str = ""
    profile: str | None = None
    config_hash: str | None = None
    units: dict[str, str] = field(default_factory=dict)     # metric path -> unit
    device: str | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    expect: str = ""

    @classmethod
    def from_json(cls, g: dict[str, Any]) -> BaselineEntry:
        return cls(float(g["value"]), g.get("display", ""), g.get("profile"), g.get("config_hash"),
                   dict(g.get("units") or {}), g.get("device"), dict(g.get("samples") or {}), g.get("expect", ""))


@dataclass
class Baseline:
    """A loaded save: ``entries[(spec id, gate id)]``."""

    name: str
    path: Path
    saved: str
    entries: dict[tuple[str, str], BaselineEntry]

    def get(self, key: tuple[str, str]) -> BaselineEntry | None:
        return self.entries.get(key)


def measurement_hash(measurements: dict[str, tuple[str, Any]]) -> str:
    """Hash of (kind, params) of the measurements behind a gate: the same on a worker (from the
    spec) and on the controller (from the shipped results)."""
    text = json.dumps({n: [k, p] for n, (k, p) in sorted(measurements.items())}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def device_name(device: str) -> str:
    """What a measurement's device is, for people and for comparisons: the GPU model or the CPU."""
    if device.startswith("cuda"):
        try:
            import torch

            return torch.cuda.get_device_name(int(device.split(":")[1]) if ":" in device else 0)
        except Exception:
            return device
    from .device import cpu_name

    return f"cpu: {cpu_name()}"


def incompatible(entry: BaselineEntry, *, profile: str, config_hash: str, units: dict[str, str],
                 device: str, name: str) -> str | None:
    """Why ``entry`` cannot be compared with this run, or None."""
    if entry.profile is None:
        return (f"baseline {name!r} was saved by an older pytest-goni without profile, config and units; "
                f"save it again with --goni-save {name}")
    if entry.profile != profile:
        return f"baseline {name!r} was measured on profile {entry.profile!r}, this run is profile {profile!r}"
    changed = {p: (entry.units.get(p), u) for p, u in units.items() if entry.units.get(p) != u}
    if changed:
        what = ", ".join(f"{p} was in {a!r}, is in {b!r}" if a is not None else f"{p} was not in it"
                         for p, (a, b) in sorted(changed.items()))
        return f"baseline {name!r} is not comparable: {what}"
    if entry.config_hash != config_hash:
        return (f"baseline {name!r} was measured with another configuration of the measurements "
                f"(config {entry.config_hash} then, {config_hash} now)")
    if entry.device and entry.device != device:
        return f"baseline {name!r} was measured on {entry.device}, this run on {device}"
    return None


# ---- files ---------------------------------------------------------------------------------------
def _folder(root: Path, name: str) -> Path:
    if not _NAME.match(name):
        raise BaselineError(f"baseline name {name!r} must be letters, digits, '_', '-', '.'")
    return root / BASELINE_DIR / name


def saves(root: Path, name: str) -> list[Path]:
    """The saves of ``name``, oldest first (a pre-history single file counts as the oldest)."""
    folder = _folder(root, name)
    found = sorted(folder.glob("*.json")) if folder.is_dir() else []
    legacy = root / BASELINE_DIR / f"{name}.json"
    return ([legacy] if legacy.is_file() else []) + found


def names(root: Path) -> list[str]:
    base = root / BASELINE_DIR
    if not base.is_dir():
        return []
    return sorted({p.name for p in base.iterdir() if p.is_dir()} | {p.stem for p in base.glob("*.json")})


def resolve(root: Path, ref: str) -> Path:
    """``NAME`` (latest save) or ``NAME~K`` (K saves before the latest) -> the save's file."""
    m = _REF.match(ref)
    if not m:
        raise BaselineError(f"{ref!r} is not a baseline reference (NAME or NAME~K)")
    name, back = m.group("name"), int(m.group("back") or 0)
    found = saves(root, name)
    if not found:
        known = names(root)
        raise BaselineError(f"no stored baseline {name!r} under {root / BASELINE_DIR}; stored: "
                            f"{', '.join(known) or 'none'} (make one with --goni-save {name})")
    if back >= len(found):
        raise BaselineError(f"baseline {name!r} has {len(found)} save(s); {ref!r} goes back further")
    return found[-1 - back]


def load_baseline(root: Path, ref: str) -> Baseline:
    path = resolve(root, ref)
    try:
        data = json.loads(path.read_text())
        entries = {(g["spec"], g["gate"]): BaselineEntry.from_json(g) for g in data["gates"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise BaselineError(f"stored baseline {path} is unreadable: {exc}") from None
    return Baseline(ref, path, data.get("saved", ""), entries)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def save_baseline(root: Path, name: str, results: dict[str, Any]) -> Path:
    """A new save of every gate that produced a value, from the run's results (results.json's
    form): value, display, expect, the samples and units of the metrics it read, the profile,
    the measurements' config hash and the device."""
    folder = _folder(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    env = results.get("environment", {})
    devices = env.get("devices") or []
    gates = []
    for spec in results.get("specs", []):
        meas = spec.get("measurements", {})
        for r in spec.get("gates", []):
            if not _finite(r.get("value")) or r.get("status") not in (*JUDGED, SKIP):
                continue
            evidence = {p: ev for p, ev in (r.get("evidence") or {}).items() if isinstance(ev, dict) and "unit" in ev}
            behind = sorted({p.split(".", 1)[0] for p in evidence})
            samples = {}
            for p in evidence:
                m, key = p.split(".", 1)
                samples[p] = (meas.get(m, {}).get("metrics", {}).get(key) or {}).get("samples", [])
            where = {meas[m]["device"] for m in behind if m in meas}
            device = None
            if len(where) == 1:
                d = where.pop()
                idx = int(d.split(":")[1]) if d.startswith("cuda:") else None
                device = devices[idx] if idx is not None and idx < len(devices) else \
                    (f"cpu: {env.get('cpu')}" if d == "cpu" else d)
            gates.append({
                "spec": r["spec"], "gate": r["gate"], "value": r["value"], "display": r.get("display", ""),
                "expect": r.get("expect", ""), "status": r["status"], "profile": spec.get("profile"),
                "config_hash": measurement_hash({m: (meas[m]["kind"], meas[m]["params"]) for m in behind
                                                 if m in meas}),
                "units": {p: ev["unit"] for p, ev in evidence.items()}, "device": device, "samples": samples,
            })
    now = dt.datetime.now(dt.timezone.utc)
    payload = {"goni_baseline_version": BASELINE_VERSION, "name": name,
               "saved": now.isoformat(timespec="seconds"), "git_commit": env.get("git_commit"),
               "device": env.get("device"), "versions": env.get("versions", {}),
               "gates": sorted(gates, key=lambda g: (g["spec"], g["gate"]))}
    path = folder / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}.json"
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path


# ---- listing and comparing -----------------------------------------------------------------------
def describe_saves(root: Path) -> list[str]:
    """One line per stored baseline: saves, latest time, device, commit, gates."""
    lines = []
    for name in names(root):
        found = saves(root, name)
        try:
            latest = json.loads(found[-1].read_text())
        except (OSError, ValueError):
            lines.append(f"{name}: {len(found)} save(s), latest unreadable ({found[-1]})")
            continue
        profiles = sorted({str(g.get("profile")) for g in latest.get("gates", [])})
        lines.append(f"{name}: {len(found)} save(s); latest {latest.get('saved', '?')} on {latest.get('device', '?')}, "
                     f"commit {(latest.get('git_commit') or '?')[:12]}, profile {', '.join(profiles)}, "
                     f"{len(latest.get('gates', []))} gates")
    return lines or [f"no baselines under {root / BASELINE_DIR} (save one with --goni-save NAME)"]


def compare(root: Path, ref_a: str, ref_b: str) -> list[str]:
    """Gate by gate: the value in save A, in save B, the change, and which way it went (by the
    gate's ``expect``: lower is better for ``<``, higher for ``>``)."""
    a, b = load_baseline(root, ref_a), load_baseline(root, ref_b)
    rows = [f"{'gate':<40} {ref_a:>16} {ref_b:>16} {'change':>9}  note"]
    for key in sorted(set(a.entries) | set(b.entries)):
        ea, eb = a.entries.get(key), b.entries.get(key)
        gate = f"{key[0]}::{key[1]}"
        if ea is None or eb is None:
            rows.append(f"{gate:<40} {(ea.display if ea else '—'):>16} {(eb.display if eb else '—'):>16}")
            continue
        note = ""
        problem = incompatible(ea, profile=eb.profile or "", config_hash=eb.config_hash or "",
                               units=eb.units, device=eb.device or "", name=ref_a) if eb.profile else None
        if problem:
            note = "not comparable: " + problem
        change = (eb.value - ea.value) / abs(ea.value) if ea.value else math.nan
        if not note and math.isfinite(change):
            op = eb.expect.strip()[:1]
            better = (change < 0) if op == "<" else (change > 0) if op == ">" else None
            note = "" if better is None or change == 0 else ("better" if better else "worse")
        rows.append(f"{gate:<40} {ea.display:>16} {eb.display:>16} {change:>+9.1%}  {note}")
    return rows


def history(root: Path, name: str, last: int = 6) -> list[str]:
    """The values of every gate over the last saves of ``name`` (oldest first)."""
    resolve(root, name)  # a clear error naming the stored baselines when there is none
    found = saves(root, name)[-last:]
    loaded = [json.loads(p.read_text()) for p in found]
    heads = [d.get("saved", p.stem)[:16] for d, p in zip(loaded, found)]
    rows = [f"{'gate':<40} " + " ".join(f"{h:>17}" for h in heads)]
    keys = sorted({(g["spec"], g["gate"]) for d in loaded for g in d.get("gates", [])})
    for key in keys:
        cells = []
        for d in loaded:
            g = next((g for g in d.get("gates", []) if (g["spec"], g["gate"]) == key), None)
            cells.append(f"{(g or {}).get('display') or '—':>17}")
        rows.append(f"{key[0] + '::' + key[1]:<40} " + " ".join(cells))
    return rows


def baseline_report(root: Path, ref: str) -> list[str]:
    """``--goni-baselines`` text: '' lists, 'NAME' gives its history, 'A,B' compares two saves."""
    parts = [p.strip() for p in ref.split(",") if p.strip()]
    if not parts:
        return describe_saves(root)
    if len(parts) == 1:
        return history(root, parts[0])
    if len(parts) == 2:
        return compare(root, parts[0], parts[1])
    raise BaselineError(f"{ref!r}: give NAME or NAME,OTHER")


def print_report(root: Path, ref: str) -> bool:
    """``--goni-baselines``: print the listing, history or comparison; False (the reason on
    stderr) when ``ref`` names no stored baseline."""
    try:
        print("\n".join(baseline_report(root, ref)))
    except BaselineError as exc:
        print(f"--goni-baselines: {exc}", file=sys.stderr)
        return False
    return True
