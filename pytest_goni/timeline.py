"""When each part of a run happened, so an xdist run's wall time can be accounted for.

Every process of a run (the controller, each xdist worker, or the one process of ``-n 0``) keeps
the wall-clock times (epoch seconds) of its own events: its process start (read from ``/proc``,
so interpreter start-up and plugin imports are counted), pytest configured, collection done, the
device warm-up, its first gate and the end of its last one, each gate's start and end, session
end. A worker hands its events to the controller through xdist's ``workeroutput``; the scheduler
adds when it sent which unit to which worker. results.json's ``timeline`` has all of them in
seconds after the controller's process start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

_IMPORTED = time.time()

#: the order a person reads a process's events in (others follow, sorted by time)
PROCESS_EVENTS = ("process_start", "configured", "kinds_loaded", "session_start", "collected",
                  "warmup_start", "warmup_end", "scheduled", "first_gate", "last_gate_end", "session_finish")


def process_start() -> float:
    """Epoch seconds when this process started (Linux ``/proc``, 10 ms ticks), else when this
    module was imported (an underestimate of the start-up, said so by ``start_from``)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])                     # field 22: starttime, since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED


def start_from() -> str:
    """How :func:`process_start` was read on this machine."""
    return "/proc" if Path("/proc/self/stat").exists() else "module import"


class Clock:
    """One process's events and gates, in epoch seconds."""

    def __init__(self, name: str):
        self.name = name  # "main" (-n 0), "controller" or the xdist worker id
        self.events: dict[str, float] = {"process_start": process_start()}
        self.gates: dict[str, list[float]] = {}  # node id -> [start, end]
        self.sent: list[dict[str, Any]] = []      # controller: units handed to workers

    def mark(self, event: str, when: float | None = None) -> None:
        """Record ``event`` now (the first time only)."""
        self.events.setdefault(event, time.time() if when is None else when)

    def gate_started(self, nodeid: str) -> None:
        self.mark("first_gate")
        self.gates[nodeid] = [time.time(), float("nan")]

    def gate_finished(self, nodeid: str) -> None:
        now = time.time()
        self.events["last_gate_end"] = now
        if nodeid in self.gates:
            self.gates[nodeid][1] = now

    def unit_sent(self, unit: str, worker: str, nodeids: list[str], expected_s: float) -> None:
        self.sent.append({"unit": unit, "worker": worker, "at": time.time(), "gates": list(nodeids),
                          "expected_s": expected_s})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "events": dict(self.events), "gates": {k: list(v) for k, v in self.gates.items()},
                "sent": list(self.sent)}


def build_timeline(controller: dict[str, Any], workers: dict[str, dict[str, Any]],
                   measurements: dict[str, dict[str, Any]], gate_units: dict[str, str] | None = None) -> dict[str, Any]:
    """results.json's ``timeline``: every time in seconds after the controller's (or the one
    process's) start.

    ``controller`` and ``workers`` are :meth:`Clock.to_dict` values; ``measurements`` is spec id ->
    name -> measurement JSON (``started_at`` and ``seconds``); ``gate_units`` node id -> unit (the
    scheduler's), for per-unit start and end.
    """
    origin = controller["events"]["process_start"]

    def rel(t: float | None) -> float | None:
        return None if t is None or t != t else round(t - origin, 3)

    def events(clock: dict[str, Any]) -> dict[str, float | None]:
        ev = clock["events"]
        order = [e for e in PROCESS_EVENTS if e in ev] + sorted(e for e in ev if e not in PROCESS_EVENTS)
        return {e: rel(ev[e]) for e in order}

    processes = {controller["name"]: controller, **workers}
    gates = [{"gate": nodeid, "worker": name, "start": rel(se[0]), "end": rel(se[1])}
             for name, clock in processes.items() for nodeid, se in clock["gates"].items()]
    gates.sort(key=lambda g: (g["start"] is None, g["start"] or 0.0))
    by_gate = {g["gate"]: g for g in gates}
    units = []
    for sent in controller.get("sent", []):
        ran = [by_gate[n] for n in sent["gates"] if n in by_gate]
        starts = [g["start"] for g in ran if g["start"] is not None]
        ends = [g["end"] for g in ran if g["end"] is not None]
        units.append({"unit": sent["unit"], "worker": sent["worker"], "sent": rel(sent["at"]),
                      "expected_s": sent["expected_s"], "gates": len(sent["gates"]),
                      "start": min(starts) if starts else None, "end": max(ends) if ends else None})
    if not units and gate_units:  # -n 0: units as the gates ran them, one after another
        for g in gates:
            unit = gate_units.get(g["gate"], g["gate"])
            if units and units[-1]["unit"] == unit:
                units[-1]["end"], units[-1]["gates"] = g["end"], units[-1]["gates"] + 1
            else:
                units.append({"unit": unit, "worker": g["worker"], "sent": None, "expected_s": None, "gates": 1,
                              "start": g["start"], "end": g["end"]})
    runs = []
    for spec_id, by_name in measurements.items():
        for name, m in by_name.items():
            for run in m.get("parts") or [m]:  # a split measurement: each part where and when it ran
                start = run.get("started_at")
                label = f"{spec_id}.{name}" + (f"[{run['part']['label']}]" if run.get("part") else "")
                if isinstance(start, (int, float)):
                    runs.append({"measurement": label, "worker": run.get("worker"), "device": run.get("device"),
                                 "start": rel(start), "end": rel(start + float(run.get("seconds") or 0.0))})
    runs.sort(key=lambda r: r["start"])
    return {"origin": "the controller's process start; every time is seconds after it",
            "origin_epoch": origin, "process_start_from": start_from(),
            "processes": {name: events(clock) for name, clock in processes.items()},
            "units": units, "gates": gates, "measurements": runs}
