"""Which xdist worker runs which gate, and which GPUs a worker owns.

A measurement is the expensive part of a gate and runs once per process, so every gate that reads
it (and every checklist built on those gates) must run on the same worker: that set of gates is
one *work unit*. The controller computes the units itself from the spec files (it never collects
items under xdist) and hands them to a scheduler of its own, a :class:`LoadScopeScheduling` whose
scope is the unit. This does not depend on node-id suffixes (``--dist loadgroup`` rewrites node
ids, and with pytest 9 / xdist 3.8 that grouping does not reach the scheduler).

Granularity (``--goni-dist``):

- ``measurement``: one unit per set of gates sharing measurements; units spread over the workers,
  the longest first (by the measurements' durations of the last run, kept in pytest's cache), each
  given to a worker when it is about to be free (not two gates ahead, as xdist's LoadScope does:
  a unit's first gate is its measurement, so that would queue a second long unit behind a running
  one while another worker frees up). A
  checklist is a unit of its own, sent last: it reads its evidence gates' verdicts, written by
  whichever worker judged them to a folder the controller hands out (:class:`VerdictStore`), so
  a checklist over runtime and memory gates does not tie those measurements to one worker.
- ``spec``: one unit per spec file; specs spread over the workers, a spec's measurements run
  one after another on one worker.
- ``auto`` (default): ``measurement`` when every worker has a GPU of its own, else ``spec``
  (measurements timed side by side on shared CPU cores would disturb each other).

GPUs: worker ``gw<i>`` runs its measurements on ``cuda:<i % G>`` (``G`` GPUs on the host); a training
run asking for ``gpus: N`` takes the block ``i*N .. i*N+N-1`` (``distributed.rank_devices``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .parts import values_needed

DIST_CHOICES = ("auto", "measurement", "spec")


def share_groups(gates: Iterable[Any], prefix: str, split_checklists: bool = False,
                 spec: Any = None) -> dict[str, str]:
    """gate id -> unit name: gates that read a common measurement are one unit (union-find over
    gates and measurements). A checklist joins its evidence gates' unit, unless
    ``split_checklists``: then it is a unit of its own (``<prefix>::checklist:<id>``). Given the
    ``spec``, a split measurement is a node per part (``rt_prefill[contexts=8192]``, parts.py): gates
    reading different parts of it are different units."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    gates = list(gates)
    for gate in gates:
        find("g:" + gate.id)
        for m in sorted(gate.measurements):
            for node in measurement_nodes(spec, gate, m):
                union("g:" + gate.id, "m:" + node)
        if not split_checklists:
            for ref in gate.of:
                union("g:" + gate.id, "g:" + ref)
    # Name a unit after its first measurement (or gate), so logs and reports read well.
    names: dict[str, str] = {}
    for gate in gates:
        root = find("g:" + gate.id)
        members = sorted(k for k in parent if find(k) == root and k.startswith("m:"))
        if split_checklists and gate.of and not members:
            names.setdefault(root, f"{CHECKLIST}{gate.id}")
        else:
            names.setdefault(root, _unit_name([m[2:] for m in members]) if members else gate.id)
    return {g.id: f"{prefix}::{names[find('g:' + g.id)]}" for g in gates}


CHECKLIST = "checklist:"


def _unit_name(nodes: list[str]) -> str:
    """A unit's name: its first measurement, with every part of it the unit holds
    (``rt_decode[contexts=131072,8192]``)."""
    base, bracket, rest = nodes[0].partition("[")
    if not bracket:
        return base
    axis = rest.split("=", 1)[0]
    values = [n[len(base) + len(axis) + 2:-1] for n in nodes if n.startswith(f"{base}[{axis}=")]
    return f"{base}[{axis}={','.join(values)}]"


def measurement_nodes(spec: Any, gate: Any, name: str) -> list[str]:
    """The nodes of measurement ``name`` that ``gate`` reads: the measurement, or (``spec`` given and
    the measurement split) each part it reads, ``name[axis=value]``."""
    split = getattr(spec.measurements.get(name), "split", None) if spec is not None else None
    values = values_needed(spec, gate, name) if split is not None else None
    if values is None:
        return [name] if split is None else [f"{name}[{split.label([v])}]" for v in split.values]
    return [f"{name}[{split.label([v])}]" for v in values]


def node_cost(spec: Any, node: str, known: Callable[[str], float | None]) -> float:
    """Expected seconds of one node (a measurement, or a part ``name[axis=value]``): its own last
    duration, else (a part) its share of the whole measurement's, in proportion to the axis value
    when the values are positive numbers (a context length), else an equal share."""
    own = known(node)
    if own is not None or "[" not in node:
        return own or 0.0
    name = node.split("[", 1)[0]
    whole = known(name) or 0.0
    split = getattr(spec.measurements.get(name), "split", None)
    if split is None:
        return 0.0
    value = next(v for v in split.values if node == f"{name}[{split.label([v])}]")
    numeric = all(isinstance(v, (int, float)) and v > 0 for v in split.values)
    return whole * (value / sum(split.values) if numeric else 1 / len(split.values))


def spreads_measurements(mode: str, workers: int, gpu_count: int) -> bool:
    """Whether units are per measurement (True) or per spec (False) for ``--goni-dist mode``."""
    if mode == "measurement":
        return True
    if mode == "spec":
        return False
    return gpu_count >= max(workers, 1) > 0 and gpu_count > 0


class SpecUnits:
    """Node id -> work unit, computed on the controller by loading the spec files it was given."""

    def __init__(self, roots: list[Path], spec_paths: set[Path], load: Callable[[Path], Any], per_measurement: bool,
                 durations: dict[str, float] | None = None):
        self.roots, self.spec_paths, self.load = roots, spec_paths, load
        self.per_measurement = per_measurement
        self.durations = durations or {}          # "<spec file>::<measurement>" -> seconds, last run
        self._units: dict[str, dict[str, str] | None] = {}
        self._cost: dict[str, float] = {}

    def unit(self, nodeid: str) -> str | None:
        """The unit of a gate's node id, or None when the node id is not a gate of a given spec."""
        file, sep, gate = nodeid.rpartition("::")
        if not sep:
            return None
        if file not in self._units:
            self._units[file] = self._units_of(file)
        units = self._units[file]
        if units is None:
            return None
        return units.get(gate, file)  # unknown gate of a known spec: keep it with its spec

    def cost(self, unit: str) -> float:
        """Expected seconds of a unit (its measurements' last durations); checklists cost -1: last."""
        if CHECKLIST in unit:
            return -1.0
        return self._cost.get(unit, 0.0)

    def _units_of(self, file: str) -> dict[str, str] | None:
        path = next((p for p in ((r / file).resolve() for r in self.roots) if p in self.spec_paths), None)
        if path is None:  # the workers' rootdir is not the controller's (pytest derives it from option
            # values that name existing folders, e.g. a --goni-report made after the controller started)
            path = next((p for p in sorted(self.spec_paths) if p.as_posix().endswith("/" + file.lstrip("/"))), None)
        if path is None:
            return None
        if not self.per_measurement:
            return {}  # every gate falls back to the spec file
        try:
            spec = self.load(path)
        except Exception:  # a spec error is reported by the workers' collection; keep the spec whole
            return {}
        units = share_groups(spec.gates, file, split_checklists=True, spec=spec)
        shown = spec.display_path

        def known(node: str) -> float | None:  # kept under the spec path as the user wrote it; node ids: rootdir
            return self.durations.get(f"{file}::{node}", self.durations.get(f"{shown}::{node}"))

        for unit in set(units.values()):
            nodes = {n for g in spec.gates if units[g.id] == unit for m in g.measurements
                     for n in measurement_nodes(spec, g, m)}
            self._cost[unit] = sum(node_cost(spec, n, known) for n in nodes)
        return units


def make_scheduler(config: Any, log: Any, units: SpecUnits, clock: Any = None) -> Any:
    """A LoadScope scheduler whose scope of a gate is its unit, the longest units sent first and
    checklists last; other tests keep their own behaviour (one test a unit, or their
    ``xdist_group`` under ``--dist loadgroup``)."""
    from xdist.scheduler import LoadScopeScheduling

    loadgroup = config.getvalue("dist") == "loadgroup"

    class GoniScheduling(LoadScopeScheduling):
        def _assign_work_unit(self, node: Any) -> None:
            if clock is not None and self.workqueue:  # for the timeline: which unit went where, when
                unit, work = next(iter(self.workqueue.items()))
                clock.unit_sent(unit, node.gateway.id, list(work), units.cost(unit))
            super()._assign_work_unit(node)

        def _reschedule(self, node: Any) -> None:
            """Give ``node`` its next unit only when it is about to need one, not two gates ahead
            (LoadScope's rule): a unit whose first gate is still running is a measurement still
            running, so the next unit (the longest left) waits for whichever worker frees first."""
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 1:
                return  # a gate running and the next behind it: asked again when it completes
            if self._measuring(node):
                # xdist runs a worker's gate only once the next one has arrived: this worker needs a
                # companion unit to start its measurement, and gets the cheapest one
                cheapest = min((u for u in self.workqueue if CHECKLIST not in u), key=units.cost, default=None)
                if cheapest is not None and units.cost(cheapest) < units.cost(next(iter(self.workqueue))):
                    self.workqueue.move_to_end(cheapest, last=False)
            self._assign_work_unit(node)

        def _measuring(self, node: Any) -> bool:
            """Whether a unit of ``node`` has not finished its first gate (its measurement runs there)."""
            return any(not any(done.values()) for done in self.assigned_work[node].values())

        def _split_scope(self, nodeid: str) -> str:
            unit = units.unit(nodeid)
            if unit is not None:
                return unit
            if loadgroup and nodeid.rfind("@") > nodeid.rfind("]"):
                return nodeid.split("@")[-1]
            return nodeid

        def schedule(self) -> None:
            """LoadScopeScheduling.schedule with the work queue in this plugin's order."""
            if self.collection is not None or not self.collection_is_completed:
                return super().schedule()
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return None
            self.collection = list(next(iter(self.registered_collections.values())))
            if clock is not None:
                clock.mark("scheduled")
            if not self.collection:
                return None
            work: dict[str, dict[str, bool]] = {}
            for nodeid in self.collection:
                work.setdefault(self._split_scope(nodeid), {})[nodeid] = False
            order = sorted(work, key=lambda u: (-units.cost(u), -len(work[u])))  # stable: collection order
            for unit in order:
                self.workqueue[unit] = work[unit]
            for _ in range(max(len(self.nodes) - len(self.workqueue), 0)):
                unused, _assigned = self.assigned_work.popitem()
                unused.shutdown()
            for node in self.nodes:
                self._assign_work_unit(node)
            for node in self.nodes:
                self._reschedule(node)
            if not self.workqueue:
                for node in self.nodes:
                    node.shutdown()
            return None

    return GoniScheduling(config, log)


# ---- checklists across workers ---------------------------------------------------------------------
class VerdictStore:
    """A folder where each worker writes every gate result it produces (one JSON file per gate,
    written atomically), so a checklist on another worker can read its evidence."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, spec_id: str, gate_id: str) -> Path:
        return self.folder / f"{spec_id}__{gate_id}.json"

    def write(self, result: dict[str, Any]) -> None:
        path = self._path(result["spec"], result["gate"])
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, default=str))
        os.replace(tmp, path)

    def wait(self, spec_id: str, gate_id: str, timeout: float, poll: float = 0.2) -> dict[str, Any] | None:
        """The result of gate ``spec_id::gate_id`` once a worker wrote it, or None after ``timeout``."""
        path = self._path(spec_id, gate_id)
        end = time.monotonic() + timeout
        while True:
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                if time.monotonic() > end:
                    return None
                time.sleep(poll)


class XdistScheduling:
    """Plugin object registered on the xdist controller: provides the scheduler and, when
    measurements are spread, the verdict folder every worker gets."""

    #: dist modes that would split a measurement's gates over workers; others are left alone
    #: (loadfile / loadscope keep a spec file on one worker, each runs everything everywhere).
    TAKES_OVER = ("load", "loadgroup", "worksteal")

    def __init__(self, units_factory: Callable[[], SpecUnits], verdict_folder: Callable[[], Path],
                 clock: Any = None, worker_clocks: dict[str, Any] | None = None):
        self.units_factory = units_factory
        self.verdict_folder = verdict_folder
        self.clock = clock                      # timeline.Clock of the controller
        self.worker_clocks = worker_clocks if worker_clocks is not None else {}
        self._units: SpecUnits | None = None
        self._folder: Path | None = None  # one for all workers
        self._run_ids: set[str] = set()   # xdist's test-run ids: their crash-marker folders go at the end

    @property
    def units(self) -> SpecUnits:
        if self._units is None:
            self._units = self.units_factory()
        return self._units

    def pytest_configure_node(self, node: Any) -> None:
        run_id = node.workerinput.get("testrunuid")
        if run_id:
            self._run_ids.add(str(run_id))
        # Every worker gets the folder, whatever the units turn out to be: deciding that needs the
        # GPU count, which is not waited for here (a worker starts only once this returns).
        if node.config.getvalue("dist") in self.TAKES_OVER:
            if self._folder is None:
                self._folder = self.verdict_folder()
            node.workerinput["goni_verdicts"] = str(self._folder)
            node.workerinput["goni_units"] = True  # this plugin's scheduler hands out the work

    def pytest_sessionfinish(self) -> None:
        """The workers' crash markers (pytest_goni.isolation) mean nothing once the run is over."""
        for run_id in self._run_ids:
            remove_markers(run_id)

    def pytest_xdist_make_scheduler(self, config: Any, log: Any) -> Any:
        if config.getvalue("dist") not in self.TAKES_OVER:
            return None
        return make_scheduler(config, log, self.units, self.clock)

    def pytest_testnodeready(self, node: Any) -> None:
        if self.clock is not None:
            self.clock.mark(f"{node.gateway.id}_ready")

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """A worker's clock (timeline.Clock), handed over in its workeroutput as it ends."""
        if self.clock is not None:
            self.clock.mark(f"{node.gateway.id}_down")
        clock = getattr(node, "workeroutput", {}).get("goni_clock")
        if clock is not None:
            self.worker_clocks[node.gateway.id] = clock


class VerdictSharing:
    """Plugin object on a worker given a verdict folder: writes every gate result there, and
    answers a checklist's question "what did evidence gate X give?" for gates judged elsewhere."""

    def __init__(self, store: VerdictStore):
        self.store = store
        self.selected: set[tuple[str, str]] = set()   # (spec id, gate id) of the gates this run runs

    def pytest_collection_finish(self, session: Any) -> None:
        self.selected = {(item.spec.id, item.gate.id) for item in session.items
                         if hasattr(item, "spec") and hasattr(item, "gate")}

    def pytest_runtest_logreport(self, report: Any) -> None:
        goni = getattr(report, "goni", None)
        if goni is not None:
            self.store.write(goni)

    def evidence(self, spec: Any, gate_id: str) -> dict[str, Any] | None:
        """The result another worker wrote for an evidence gate this run runs (waiting for it), or
        None: an evidence gate left out of the run (-k, -m) is judged where the checklist runs."""
        if (spec.id, gate_id) not in self.selected:
            return None
        gate = next(g for g in spec.gates if g.id == gate_id)
        names = set(gate.measurements) if not gate.of else {m for g in spec.gates if g.id in gate.of
                                                            for m in g.measurements}
        timeout = 120.0 + sum(spec.measurements[m].timeout_s for m in names if m in spec.measurements)
        found = self.store.wait(spec.id, gate_id, timeout)
        if found is None:
            return {"spec": spec.id, "gate": gate_id, "status": "ERROR",
                    "reason": f"the verdict of evidence gate {gate_id!r} never arrived ({timeout:g} s)"}
        return found


# ---- durations, for the order of the work queue ----------------------------------------------------
DURATIONS_KEY = "goni/durations"


def record_durations(config: Any, measurements: dict[str, dict[str, Any]], specs: dict[str, dict[str, Any]]) -> None:
    """Keep each measurement's seconds in pytest's cache ("<spec file>::<name>" -> s) for the next
    run's scheduling; no-op without the cache provider."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return
    known = dict(cache.get(DURATIONS_KEY, {}) or {})
    for spec_id, by_name in measurements.items():
        file = specs.get(spec_id, {}).get("file")
        for name, m in by_name.items():
            if not file:
                continue
            parts = m.get("parts") or ([m] if m.get("part") else [])
            for part in parts:  # a part of one axis value: its own duration, for the next split run
                values = (part.get("part") or {}).get("values") or []
                if len(values) == 1 and isinstance(part.get("seconds"), (int, float)):
                    known[f"{file}::{name}[{part['part']['label']}]"] = round(float(part["seconds"]), 3)
            if isinstance(m.get("seconds"), (int, float)) and not parts:
                known[f"{file}::{name}"] = round(float(m["seconds"]), 3)
    cache.set(DURATIONS_KEY, known)


def cached_durations(config: Any) -> dict[str, float]:
    cache = getattr(config, "cache", None)
    return dict(cache.get(DURATIONS_KEY, {}) or {}) if cache is not None else {}


# --------------------------------------------------------------------------------------------
# Crash markers: under xdist, a worker that dies in an in-process measurement is replaced and
# its remaining gates rescheduled; the marker stops the replacement from running it again.

def marker_dir(run_id: str) -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / f"goni-running-{run_id}"


def remove_markers(run_id: str) -> None:
    """Delete a finished run's marker folder (markers left by crashed workers included)."""
    import shutil

    shutil.rmtree(marker_dir(run_id), ignore_errors=True)


def marker_path(run_id: str, key: str) -> Path:
    import hashlib

    return marker_dir(run_id) / hashlib.sha1(key.encode()).hexdigest()[:20]
