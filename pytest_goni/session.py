"""One pytest-goni run in one process: the specs asked for, the runner and each spec's gate
judge, and (on the controller) every gate result collected for the reports.

:class:`GoniSession` is registered as a plugin object, so its ``pytest_runtest_logreport`` and
``pytest_collectreport`` methods gather results from every xdist worker's test reports.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .device import cuda_usable
from .gate_result import GateResult
from .gates import GateRun
from .registry import REGISTRIES, RegistryClash, declare_builtins
from .report import Collected
from .runner import Runner
from .spec import Problem, Spec, SpecError, load_spec
from .timeline import Clock, build_timeline

SESSION_KEY = pytest.StashKey["GoniSession"]()

#: Markers the plugin registers for selection only (no hook acts on them): a spec may share one.
SELECTION_MARKERS = frozenset({"goni", "red-line", "info"})


def expand_specs(config: pytest.Config) -> tuple[list[Path], list[str], bool]:
    """Spec paths from --goni-spec (globs expanded) or, failing that, the goni_specs ini list."""
    raw = list(config.getoption("goni_spec") or [])
    from_cli = bool(raw)
    if not raw:
        raw = list(config.getini("goni_specs") or [])
    base = config.invocation_params.dir
    found: list[Path] = []
    missing: list[str] = []
    for pattern in raw:
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        if os.path.isdir(full):  # a directory: its *.yaml / *.yml specs (not recursive)
            matches = sorted(glob.glob(os.path.join(glob.escape(full), "*.yaml"))
                             + glob.glob(os.path.join(glob.escape(full), "*.yml")))
        elif glob.has_magic(pattern):
            matches = sorted(m for m in glob.glob(full) if not os.path.isdir(m))
        else:
            matches = [full] if os.path.isfile(full) else []
        if not matches:
            missing.append(pattern)
        found.extend(Path(m) for m in matches if Path(m) not in found)
    for path in positional_specs(config):  # `pytest specs/x.yaml::gate-id` without --goni-spec
        if path not in found:
            found.append(path)
    return found, missing, from_cli


def positional_specs(config: pytest.Config) -> list[Path]:
    """YAML files named as pytest arguments (``specs/x.yaml`` or ``specs/x.yaml::gate-id``) that are
    goni specs (a ``goni:`` key at the top): they are run as specs without --goni-spec."""
    out = []
    for arg in config.args if config.args_source == pytest.Config.ArgsSource.ARGS else []:
        file = str(arg).split("::", 1)[0]
        path = Path(file) if os.path.isabs(file) else config.invocation_params.dir / file
        if path.suffix in (".yaml", ".yml") and path.is_file():
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    head = fh.read(4096)
            except OSError:
                continue
            if any(line.startswith("goni:") for line in head.splitlines()):
                out.append(path)
    return out


def display_path(config: pytest.Config, path: Path) -> str:
    """A spec's path as the user wrote it: relative to where pytest was started."""
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:
        return str(path)


def gpu_count() -> int:
    if not cuda_usable():
        return 0
    import torch

    return torch.cuda.device_count()


class InBackground:
    """``fn()`` started on a thread now, its value (or exception) taken when needed."""

    def __init__(self, fn: Callable[[], Any], name: str):
        self._out: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the value
            self._out["error"] = exc

    def result(self) -> Any:
        self._thread.join()
        if "error" in self._out:
            raise self._out["error"]
        return self._out["value"]


def check_profile(specs: list[Path], profile: str) -> None:
    """--goni-profile NAME must be a profile some spec defines (auto, cpu and gpu always are)."""
    if profile in ("auto", "cpu", "gpu"):
        return
    from .registry import explain_unknown
    from .spec import profile_names

    defined = sorted({name for p in specs for name in profile_names(p)})
    if profile not in defined:
        known = explain_unknown("profile", profile, sorted(set(defined) | {"auto", "cpu", "gpu"}))
        raise pytest.UsageError(f"--goni-profile: {known} (profiles are defined by the specs)")


def check_report_dir(path: Path, given: str) -> None:
    """--goni-report must name a folder this process can write: checked before anything runs
    (a file there used to cost a whole run and end in a FileExistsError)."""
    if path.exists() and not path.is_dir():
        raise pytest.UsageError(f"--goni-report {given}: {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise pytest.UsageError(f"--goni-report {given}: cannot create {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"--goni-report {given}: {path} is not writable")


def completeness(session: pytest.Session, exitstatus: int) -> tuple[bool, str | None]:
    """Whether every selected gate ran to its verdict, and if not why not."""
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return False, "interrupted (Ctrl-C or KeyboardInterrupt): the gates not listed did not run"
    if exitstatus == pytest.ExitCode.INTERNAL_ERROR:
        return False, "pytest internal error: the gates not listed did not run"
    if session.shouldstop or session.shouldfail:
        return False, f"stopped early: {session.shouldstop or session.shouldfail}"
    return True, None


class GoniSession:
    """Per-process state of a run with specs, and the collector of its gate results."""

    def __init__(self, config: pytest.Config, spec_paths: list[Path], missing: list[str]):
        self.config = config
        self.spec_paths = {p.resolve() for p in spec_paths}
        self.missing = missing
        self.profile = config.getoption("goni_profile")
        report = config.getoption("goni_report")
        self.report_dir = Path(report).resolve() if report else None
        self._runner: Runner | None = None
        self.written: list[str] = []  # what finish() wrote (results, report, baseline), for the summary
        self.baseline: Any = None  # baselines.Baseline (--goni-compare)
        self.gate_runs: dict[str, GateRun] = {}          # spec path -> its gates' results (this process)
        self.collected = Collected()                     # every gate report (controller)
        self.spec_ids: dict[str, str] = {}                # spec id -> the file that has it
        self.own_spec_markers: set[str] = set()           # spec ids registered as markers by us
        self.builtins: tuple[dict[str, Any], ...] | None = None  # registries before this session's plugins
        self._environment: dict[str, Any] | None = None
        self.sharing: Any = None  # scheduling.VerdictSharing on a worker whose checklists read other workers
        worker = getattr(config, "workerinput", {}).get("workerid")
        # when this process did what (timeline.py): "main" under -n 0, as measurements name it
        self.clock = Clock(worker or ("controller" if self.is_xdist_controller() else "main"))
        self.worker_clocks: dict[str, dict[str, Any]] = {}  # controller: each worker's clock, at its end

    # ---- life cycle ----------------------------------------------------------------------------
    @classmethod
    def start(cls, config: pytest.Config) -> GoniSession | None:
        """pytest_configure: a session when specs were asked for (registered as a plugin), else None."""
        specs, missing, from_cli = expand_specs(config)
        if not specs and not missing:
            return None
        session = cls(config, specs, missing)
        session.clock.mark("configured")
        if session.report_dir is not None and not hasattr(config, "workerinput"):
            check_report_dir(session.report_dir, config.getoption("goni_report"))
        check_profile(specs, session.profile)
        compare = config.getoption("goni_compare")
        if compare:
            from .baselines import BaselineError, load_baseline

            try:
                session.baseline = load_baseline(config.rootpath, compare)
            except BaselineError as exc:
                raise pytest.UsageError(f"--goni-compare: {exc}") from None
        config.stash[SESSION_KEY] = session
        config.pluginmanager.register(session, "goni-session")
        declare_builtins()  # by name: a kind's module (and torch) is imported when a spec uses it
        session.clock.mark("kinds_loaded")
        session.builtins = REGISTRIES.snapshot()
        try:
            config.hook.pytest_goni_register.call_historic(kwargs={"registries": REGISTRIES})
        except RegistryClash as exc:
            raise pytest.UsageError(f"pytest_goni_register: {exc}") from None
        # A bad spec is a collection error of that spec only: every other spec still runs.
        config.option.continue_on_collection_errors = True
        if config.pluginmanager.hasplugin("html"):
            from .report.pytest_html import PytestHtmlFeed

            config.pluginmanager.register(PytestHtmlFeed(), "goni-pytest-html")
        if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
            config.pluginmanager.register(session.xdist_scheduling(), "goni-xdist-scheduling")
        folder = getattr(config, "workerinput", {}).get("goni_verdicts")
        if folder:  # a worker of a run whose checklists read evidence judged on other workers
            from .scheduling import VerdictSharing, VerdictStore

            session.sharing = VerdictSharing(VerdictStore(folder))
            config.pluginmanager.register(session.sharing, "goni-verdict-sharing")
        # a spec already named as an argument (x.yaml::gate-id: one gate) is not added whole again
        named = {p.resolve() for p in positional_specs(config)}
        spec_args = [str(p) for p in specs if p.resolve() not in named]
        if from_cli and config.args_source != pytest.Config.ArgsSource.ARGS:
            config.args = spec_args
        else:
            config.args = list(config.args) + spec_args
        return session

    @staticmethod
    def of(config: pytest.Config) -> GoniSession | None:
        return config.stash.get(SESSION_KEY, None)

    def stop(self) -> None:
        """pytest_unconfigure: this session's plugin registrations end with it."""
        if self.builtins is not None:
            REGISTRIES.restore(self.builtins)

    def xdist_scheduling(self) -> Any:
        """The controller's scheduler plugin: a measurement's gates form one work unit."""
        from .scheduling import SpecUnits, XdistScheduling, cached_durations, spreads_measurements

        config = self.config
        workers = len(config.getvalue("tx") or []) or int(config.getvalue("numprocesses") or 1)
        spread = config.getoption("goni_dist")

        def prepare() -> tuple[int, dict[Path, Any]]:
            """The GPU count, and (when units are measurements) every spec loaded: importing torch,
            starting CUDA and importing the kinds the specs use take seconds, and xdist starts a
            worker only after pytest_configure_node returns, so this runs beside the workers'
            start-up instead of before it."""
            gpus = gpu_count()
            loaded: dict[Path, Any] = {}
            if spreads_measurements(spread, workers, gpus):
                for path in sorted(self.spec_paths):
                    try:
                        loaded[path] = load_spec(path, display_path(config, path), self.profile, gpus > 0)
                    except Exception as exc:  # noqa: BLE001 - raised again where the spec is asked for
                        loaded[path] = exc
            return gpus, loaded

        prepared = InBackground(prepare, "goni-prepare") if self.is_xdist_controller() else None

        def units() -> SpecUnits:
            gpus, loaded = prepared.result() if prepared is not None else prepare()

            def load(path: Path) -> Any:
                found = loaded.get(path)
                if found is None:
                    return load_spec(path, display_path(config, path), self.profile, gpus > 0)
                if isinstance(found, Exception):
                    raise found
                return found

            roots = [config.rootpath, config.invocation_params.dir]
            return SpecUnits(roots, self.spec_paths, load, spreads_measurements(spread, workers, gpus),
                             cached_durations(config))

        def verdict_folder() -> Path:
            factory = getattr(config, "_tmp_path_factory", None)
            if factory is not None:
                return factory.mktemp("goni-verdicts")
            import tempfile

            return Path(tempfile.mkdtemp(prefix="goni-verdicts-"))

        return XdistScheduling(units, verdict_folder, self.clock, self.worker_clocks)

    # ---- collection ----------------------------------------------------------------------------
    def is_xdist_controller(self) -> bool:
        option = self.config.option
        return getattr(option, "dist", "no") != "no" and not hasattr(self.config, "workerinput") and bool(
            getattr(option, "numprocesses", None))

    def report_missing(self, session: pytest.Session) -> None:
        """A spec argument that matches no file is a collection error of its own."""
        if self.is_xdist_controller():
            return
        base = self.config.invocation_params.dir
        for pattern in self.missing:
            if (base / pattern).is_dir():
                why = f"{pattern}: directory has no spec files (*.yaml, *.yml)"
            else:
                why = f"{pattern}: spec file not found (no file matches {pattern!r} from {base})"
            session.ihook.pytest_collectreport(report=pytest.CollectReport(pattern, "failed", why, []))

    def is_spec(self, path: Path) -> bool:
        return path.resolve() in self.spec_paths

    def load(self, path: Path) -> Spec:
        """Load a spec file and claim its id (a marker, unique across the run)."""
        spec = load_spec(path, display_path(self.config, path), self.profile, cuda_usable())
        self._claim_spec_id(spec)
        return spec

    def _claim_spec_id(self, spec: Spec) -> None:
        """A spec id becomes a marker (``-m ID`` selects its gates), so it must not be one pytest or
        a plugin acts on (``xfail``, ``skip``, ``usefixtures``...: they would change outcomes), and
        two files must not share one (their results would merge)."""
        other = self.spec_ids.setdefault(spec.id, spec.display_path)
        if other != spec.display_path:
            raise SpecError(spec.display_path, [Problem(spec.id_mark.line, spec.id_mark.col, "id",
                                                        f"duplicate spec id {spec.id!r}: {other} has it too "
                                                        "(spec ids must be unique across the run)")])
        if spec.id in self.own_spec_markers:
            return
        registered = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in self.config.getini("markers")}
        if spec.id in registered - SELECTION_MARKERS:
            del self.spec_ids[spec.id]
            raise SpecError(spec.display_path, [Problem(spec.id_mark.line, spec.id_mark.col, "id",
                                                        f"spec id {spec.id!r} is the name of a pytest marker; "
                                                        "a spec id becomes its gates' marker (-m ID), so pick "
                                                        "another id")])
        self.own_spec_markers.add(spec.id)
        self.config.addinivalue_line("markers", f"{spec.id}: gates of spec {spec.id}")

    # ---- running -------------------------------------------------------------------------------
    @property
    def runner(self) -> Runner:
        if self._runner is None:
            self._runner = Runner(self.report_dir or self._artifact_folder(), self.baseline)
            self._runner.saving = bool(self.config.getoption("goni_save"))
            self._runner.isolation = self.config.getoption("goni_isolation")
            self._runner.split = self.units_are_parts()
        return self._runner

    def units_are_parts(self) -> bool:
        """Whether this process is an xdist worker of a run whose units are measurements (and the
        parts of split ones): then a gate runs only the parts of a measurement it reads. The worker
        decides as the controller's scheduler did (same --goni-dist, worker count, GPU count)."""
        from .scheduling import spreads_measurements

        given = getattr(self.config, "workerinput", {})
        if not given.get("goni_units"):
            return False
        return spreads_measurements(self.config.getoption("goni_dist"), int(given.get("workercount", 1)),
                                    gpu_count())

    def _artifact_folder(self) -> Path | None:
        """Where plots go without --goni-report: pytest's numbered temporary folder (the last few runs
        are kept, older ones removed by pytest), not a new /tmp folder per run."""
        factory = getattr(self.config, "_tmp_path_factory", None)
        return factory.mktemp("goni-artifacts") if factory is not None else None

    def gates(self, spec: Spec) -> GateRun:
        """The judge of this spec's gates, one per spec, holding each gate's result once judged."""
        key = str(spec.path)
        if key not in self.gate_runs:
            self.gate_runs[key] = GateRun(self.runner, spec,
                                          evidence=self.sharing.evidence if self.sharing is not None else None)
        return self.gate_runs[key]

    # ---- collecting results (hooks of this plugin object) -----------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        goni = getattr(report, "goni", None)
        if goni is not None:
            self.collected.add(GateResult.from_dict(goni), report.goni_spec, report.goni_measurements or {})
            if self.report_dir is not None and not hasattr(self.config, "workerinput"):
                from .report.results import write_results

                write_results(self.collected, self.report_dir, self.environment(), gate_lines_too=False)

    def environment(self) -> dict[str, Any]:
        """The run's environment, read once (git and device queries are not free)."""
        if self._environment is None:
            from .report.results import environment

            self._environment = environment()
        return self._environment

    # ---- the timeline (hooks of this plugin object) ------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.clock.mark("session_start")

    @pytest.hookimpl(trylast=True)  # after xdist's worker has sent its collection to the controller
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.clock.mark("collected")
        if any(hasattr(item, "spec") and hasattr(item, "gate") for item in session.items):
            self.warm_up()

    def warm_up(self) -> None:
        """Start CUDA on this process's device (context, a first cuBLAS call) before the first gate,
        while the controller waits for the other workers' collections: it is not counted in the
        first measurement's seconds, and the timeline shows what it cost."""
        if self.config.option.collectonly or self.config.getoption("goni_list") or not cuda_usable():
            return  # nothing will be measured here, or nothing on a GPU
        from .device import warm_up, worker_device

        self.clock.mark("warmup_start")
        try:
            warm_up(worker_device())
        except Exception as exc:  # noqa: BLE001 - a broken device is the measurements' to report
            self.clock.mark(f"warmup_failed: {type(exc).__name__}")
        self.clock.mark("warmup_end")

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        if not self.is_xdist_controller():  # the controller hears of workers' gates late: theirs count
            self.clock.gate_started(nodeid)

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        if not self.is_xdist_controller():
            self.clock.gate_finished(nodeid)

    def timeline(self, session: pytest.Session) -> dict[str, Any]:
        """results.json's ``timeline`` (controller): this process's clock and every worker's."""
        from .scheduling import share_groups

        units: dict[str, str] = {}
        for item in session.items:  # -n 0: the units the gates would form under xdist
            spec = getattr(item, "spec", None)
            if spec is not None:
                file = item.nodeid.rpartition("::")[0]
                units.update({f"{file}::{g}": u for g, u in share_groups(spec.gates, file, True).items()})
        return build_timeline(self.clock.to_dict(), self.worker_clocks, self.collected.measurements, units)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collected.spec_errors.append((report.nodeid, str(report.longrepr)))

    # ---- reporting -----------------------------------------------------------------------------
    def summary(self, terminalreporter: Any) -> None:
        if not self.config.getoption("goni_list"):
            from .report.terminal import print_summary

            print_summary(terminalreporter, self.collected)
        for line in self.written:
            terminalreporter.write_line(f"goni: {line}")

    def finish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write results.json and the other reports, and the baseline asked for (controller only)."""
        self.clock.mark("session_finish")
        if hasattr(self.config, "workerinput"):  # the controller puts it in results.json's timeline
            self.config.workeroutput["goni_clock"] = self.clock.to_dict()
            return
        from .report.results import build_results, write_reports
        from .scheduling import record_durations

        record_durations(self.config, self.collected.measurements, self.collected.specs)  # next run's order
        self.collected.complete, self.collected.incomplete_reason = completeness(session, exitstatus)
        self.collected.timeline = self.timeline(session)
        env = self.environment()
        written = write_reports(self.collected, self.report_dir, env)
        save = self.config.getoption("goni_save")
        if save:
            from .baselines import save_baseline
            from .jsonsafe import json_safe

            results = json_safe(build_results(self.collected, env))
            written.append(f"baseline saved to {save_baseline(self.config.rootpath, save, results)}")
        self.written = written  # printed by summary(), which pytest calls after the progress line ends
