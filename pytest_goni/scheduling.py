"""Which xdist worker runs which gate, and which GPUs a worker owns.

A measurement is the expensive part of a gate and runs once per process, so every gate that reads
it (and every checklist built on those gates) must run on the same worker: that set of gates is
one *work unit*. The controller computes the units itself from the spec files (it never collects
items under xdist) and hands them to a scheduler of its own, a :class:`LoadScopeScheduling` whose
scope is the unit. This does not depend on node-id suffixes (``--dist loadgroup`` rewrites node
ids, and with pytest 9 / xdist 3.8 that grouping does not reach the scheduler).

Granularity (``--goni-dist``):

- ``measurement``: one unit per set of gates sharing measurements; units spread over the workers.
- ``spec``: one unit per spec file; specs spread over the workers, a spec's measurements run
  one after another on one worker.
- ``auto`` (default): ``measurement`` when every worker has a GPU of its own, else ``spec``
  (measurements timed side by side on shared CPU cores would disturb each other).

GPUs: worker ``gw<i>`` runs its measurements on ``cuda:<i % G>`` (``G`` GPUs on the host); a training
run asking for ``gpus: N`` takes the block ``i*N .. i*N+N-1`` (``distributed.rank_devices``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

DIST_CHOICES = ("auto", "measurement", "spec")


def share_groups(gates: Iterable[Any], prefix: str) -> dict[str, str]:
    """gate id -> unit name: gates that read a common measurement, and a checklist with its
    evidence gates, are one unit (union-find over gates and measurements)."""
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
            union("g:" + gate.id, "m:" + m)
        for ref in gate.of:
            union("g:" + gate.id, "g:" + ref)
    # Name a unit after its first measurement (or gate), so logs and reports read well.
    names: dict[str, str] = {}
    for gate in gates:
        root = find("g:" + gate.id)
        members = sorted(k for k in parent if find(k) == root and k.startswith("m:"))
        names.setdefault(root, members[0][2:] if members else gate.id)
    return {g.id: f"{prefix}::{names[find('g:' + g.id)]}" for g in gates}


def spreads_measurements(mode: str, workers: int, gpu_count: int) -> bool:
    """Whether units are per measurement (True) or per spec (False) for ``--goni-dist mode``."""
    if mode == "measurement":
        return True
    if mode == "spec":
        return False
    return gpu_count >= max(workers, 1) > 0 and gpu_count > 0


class SpecUnits:
    """Node id -> work unit, computed on the controller by loading the spec files it was given."""

    def __init__(self, roots: list[Path], spec_paths: set[Path], load: Callable[[Path], Any], per_measurement: bool):
        self.roots, self.spec_paths, self.load = roots, spec_paths, load
        self.per_measurement = per_measurement
        self._units: dict[str, dict[str, str] | None] = {}

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

    def _units_of(self, file: str) -> dict[str, str] | None:
        path = next((p for p in ((r / file).resolve() for r in self.roots) if p in self.spec_paths), None)
        if path is None:
            return None
        if not self.per_measurement:
            return {}  # every gate falls back to the spec file
        try:
            spec = self.load(path)
        except Exception:  # a spec error is reported by the workers' collection; keep the spec whole
            return {}
        return share_groups(spec.gates, file)


def make_scheduler(config: Any, log: Any, units: SpecUnits) -> Any:
    """A LoadScope scheduler whose scope of a gate is its unit; other tests keep their own
    behaviour (one test a unit, or their ``xdist_group`` under ``--dist loadgroup``)."""
    from xdist.scheduler import LoadScopeScheduling

    loadgroup = config.getvalue("dist") == "loadgroup"

    class GoniScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            unit = units.unit(nodeid)
            if unit is not None:
                return unit
            if loadgroup and nodeid.rfind("@") > nodeid.rfind("]"):
                return nodeid.split("@")[-1]
            return nodeid

    return GoniScheduling(config, log)


class XdistScheduling:
    """Plugin object registered on the xdist controller: provides the scheduler."""

    #: dist modes that would split a measurement's gates over workers; others are left alone
    #: (loadfile / loadscope keep a spec file on one worker, each runs everything everywhere).
    TAKES_OVER = ("load", "loadgroup", "worksteal")

    def __init__(self, units_factory: Callable[[], SpecUnits]):
        self.units_factory = units_factory

    def pytest_xdist_make_scheduler(self, config: Any, log: Any) -> Any:
        if config.getvalue("dist") not in self.TAKES_OVER:
            return None
        return make_scheduler(config, log, self.units_factory())
