"""pytest hooks: options, spec collection, gate items, and the reports. Thin on purpose; the
work happens in spec.py (loading), runner.py (measuring and judging) and report/."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from .gate_result import GateResult
from .gates import GateFailed, GateRun, skip_reason
from .registry import REGISTRIES, RegistryClash, load_builtins
from .runner import Runner, cuda_usable
from .scheduling import DIST_CHOICES
from .spec import GateSpec, Problem, Spec, SpecError, load_spec
from .status import SKIP

STATE_KEY = pytest.StashKey["GoniState"]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("goni", "pytest-goni: acceptance gates from YAML specs")
    group.addoption("--goni-spec", action="append", default=[], metavar="PATH|GLOB", dest="goni_spec",
                    help="a spec to run as gates (repeatable; globs allowed)")
    group.addoption("--goni-profile", default="auto", metavar="auto|cpu|gpu|NAME", dest="goni_profile",
                    help="profile of values each spec defines (auto: gpu with CUDA, else cpu)")
    group.addoption("--goni-report", default=None, metavar="DIR", dest="goni_report",
                    help="write results JSON (every sample) and plots into DIR")
    group.addoption("--goni-list", action="store_true", default=False, dest="goni_list",
                    help="list the gates and measurements of the specs, run nothing")
    group.addoption("--goni-save", default=None, metavar="NAME", dest="goni_save",
                    help="store every gate's value, samples, units, profile and config as a new save of "
                         "baseline NAME (.goni/baselines/NAME/)")
    group.addoption("--goni-compare", default=None, metavar="NAME", dest="goni_compare",
                    help="judge '... of baseline' gates against the latest save of NAME (NAME~1: the one "
                         "before)")
    group.addoption("--goni-baselines", nargs="?", const="", default=None, metavar="NAME[,OTHER]",
                    dest="goni_baselines",
                    help="list stored baselines; NAME: its history gate by gate; A,B: compare two saves "
                         "(NAME~K: K saves back); runs nothing")
    group.addoption("--goni-dist", default="auto", choices=DIST_CHOICES, dest="goni_dist",
                    help="under xdist, a work unit is the gates sharing a measurement ('measurement') or a "
                         "whole spec ('spec'); auto: measurement when every worker has its own GPU")
    parser.addini("goni_specs", type="args", default=[],
                  help="specs run in addition to the tests when no --goni-spec is given")


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--goni-baselines: list or compare stored baselines, run nothing."""
    ref = config.getoption("goni_baselines")
    if ref is None:
        return None
    from .baselines import BaselineError, baseline_report

    try:
        print("\n".join(baseline_report(config.rootpath, ref)))
    except BaselineError as exc:
        print(f"--goni-baselines: {exc}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    return 0


class GoniState:
    """Per-process state: the spec files, the runner (lazily) and the collected results."""

    def __init__(self, config: pytest.Config, spec_paths: list[Path], missing: list[str]):
        self.config = config
        self.spec_paths = {p.resolve() for p in spec_paths}
        self.missing = missing
        self.profile = config.getoption("goni_profile")
        report = config.getoption("goni_report")
        self.report_dir = Path(report).resolve() if report else None
        self._runner: Runner | None = None
        self.baseline: Any = None  # baselines.Baseline (--goni-compare)
        self.gate_runs: dict[str, GateRun] = {}          # spec path -> its gates' results (this process)
        self.results: list[GateResult] = []              # one per gate report (controller)
        self.measurements: dict[str, dict[str, Any]] = {}  # spec id -> name -> result json
        self.specs: dict[str, dict[str, Any]] = {}        # spec id -> header info
        self.spec_errors: list[tuple[str, str]] = []      # (file, message)
        self.spec_ids: dict[str, str] = {}                # spec id -> the file that has it
        self.own_spec_markers: set[str] = set()           # spec ids registered as markers by us
        self.builtins: tuple[dict[str, Any], ...] | None = None  # registries before this session's plugins

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            self._runner = Runner(self.report_dir or _artifact_folder(self.config), self.baseline)
            self._runner.saving = bool(self.config.getoption("goni_save"))
        return self._runner

    def gates(self, spec: Spec) -> GateRun:
        """The judge of this spec's gates, one per spec, holding each gate's result once judged."""
        key = str(spec.path)
        if key not in self.gate_runs:
            self.gate_runs[key] = GateRun(self.runner, spec)
        return self.gate_runs[key]


def _artifact_folder(config: pytest.Config) -> Path | None:
    """Where plots go without --goni-report: pytest's numbered temporary folder (the last few runs
    are kept, older ones removed by pytest), not a new /tmp folder per run."""
    factory = getattr(config, "_tmp_path_factory", None)
    return factory.mktemp("goni-artifacts") if factory is not None else None


def _expand_specs(config: pytest.Config) -> tuple[list[Path], list[str], bool]:
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
    return found, missing, from_cli


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "goni: a pytest-goni gate")
    config.addinivalue_line("markers", "red-line: a red-line gate (severity: red-line)")
    config.addinivalue_line("markers", "info: an informational gate (severity: info)")
    specs, missing, from_cli = _expand_specs(config)
    if not specs and not missing:
        return
    state = GoniState(config, specs, missing)
    compare = config.getoption("goni_compare")
    if compare:
        from .baselines import BaselineError, load_baseline

        try:
            state.baseline = load_baseline(config.rootpath, compare)
        except BaselineError as exc:
            raise pytest.UsageError(f"--goni-compare: {exc}") from None
    config.stash[STATE_KEY] = state
    from .report import ResultCollector

    config.pluginmanager.register(ResultCollector(state), "goni-results")
    load_builtins()
    state.builtins = REGISTRIES.snapshot()
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
        config.pluginmanager.register(_xdist_scheduling(config, state), "goni-xdist-scheduling")
    spec_args = [str(p) for p in specs]
    if from_cli and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = spec_args
    else:
        config.args = list(config.args) + spec_args


def _xdist_scheduling(config: pytest.Config, state: GoniState) -> Any:
    """The controller's scheduler plugin: a measurement's gates form one work unit."""
    from .scheduling import SpecUnits, XdistScheduling, spreads_measurements

    def units() -> SpecUnits:
        workers = len(config.getvalue("tx") or []) or int(config.getvalue("numprocesses") or 1)
        gpus = _gpu_count()
        roots = [config.rootpath, config.invocation_params.dir]
        return SpecUnits(roots, state.spec_paths,
                         lambda p: load_spec(p, _display(config, p), state.profile, gpus > 0),
                         spreads_measurements(config.getoption("goni_dist"), workers, gpus))

    return XdistScheduling(units)


def _gpu_count() -> int:
    if not cuda_usable():
        return 0
    import torch

    return torch.cuda.device_count()


def pytest_sessionstart(session: pytest.Session) -> None:
    if _state(session.config) is not None:
        from .progress import install

        install(session.config)  # after every pytest_configure: the terminal reporter exists


def pytest_unconfigure(config: pytest.Config) -> None:
    from .progress import uninstall

    uninstall()
    state = _state(config)
    if state is not None and state.builtins is not None:
        REGISTRIES.restore(state.builtins)  # this session's plugin registrations end with it


def _state(config: pytest.Config) -> GoniState | None:
    return config.stash.get(STATE_KEY, None)


def _display(config: pytest.Config, path: Path) -> str:
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:
        return str(path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None or _is_xdist_controller(session.config):
        return
    base = session.config.invocation_params.dir
    for pattern in state.missing:
        if (base / pattern).is_dir():
            why = f"{pattern}: directory has no spec files (*.yaml, *.yml)"
        else:
            why = f"{pattern}: spec file not found (no file matches {pattern!r} from {base})"
        rep = pytest.CollectReport(pattern, "failed", why, [])
        session.ihook.pytest_collectreport(report=rep)


def _is_xdist_controller(config: pytest.Config) -> bool:
    return getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput") and bool(
        getattr(config.option, "numprocesses", None))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = _state(parent.config)
    if state is not None and file_path.resolve() in state.spec_paths:
        return SpecFile.from_parent(parent, path=file_path)
    return None


class SpecFile(pytest.File):
    """One YAML spec; its gates are the items. A spec error is this collector's one-line error."""

    def collect(self):  # type: ignore[no-untyped-def]
        state = _state(self.config)
        assert state is not None
        spec = load_spec(self.path, _display(self.config, self.path), state.profile, cuda_usable())
        _claim_spec_id(self.config, state, spec)
        for gate in spec.gates:
            yield GateItem.from_parent(self, name=gate.id, spec=spec, gate=gate)

    def repr_failure(self, excinfo, style=None):  # type: ignore[no-untyped-def]
        if isinstance(excinfo.value, SpecError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


#: Markers the plugin registers for selection only (no hook acts on them): a spec may share one.
SELECTION_MARKERS = frozenset({"goni", "red-line", "info"})


def _registered_markers(config: pytest.Config) -> set[str]:
    return {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}


def _claim_spec_id(config: pytest.Config, state: GoniState, spec: Spec) -> None:
    """A spec id becomes a marker (``-m ID`` selects its gates), so it must not be one pytest or
    a plugin acts on (``xfail``, ``skip``, ``usefixtures``...: they would change outcomes), and
    two files must not share one (their results would merge)."""
    other = state.spec_ids.setdefault(spec.id, spec.display_path)
    if other != spec.display_path:
        raise SpecError(spec.display_path, [Problem(spec.id_mark.line, spec.id_mark.col, "id",
                                                    f"duplicate spec id {spec.id!r}: {other} has it too "
                                                    "(spec ids must be unique across the run)")])
    if spec.id in state.own_spec_markers:
        return
    if spec.id in _registered_markers(config) - SELECTION_MARKERS:
        del state.spec_ids[spec.id]
        raise SpecError(spec.display_path, [Problem(spec.id_mark.line, spec.id_mark.col, "id",
                                                    f"spec id {spec.id!r} is the name of a pytest marker; a "
                                                    "spec id becomes its gates' marker (-m ID), so pick "
                                                    "another id")])
    state.own_spec_markers.add(spec.id)
    config.addinivalue_line("markers", f"{spec.id}: gates of spec {spec.id}")


class GateItem(pytest.Item):
    """One gate of a spec: runs (or reuses) its measurements, then judges them."""

    def __init__(self, *, spec: Spec, gate: GateSpec, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec, self.gate = spec, gate
        self.goni_result: GateResult | None = None
        self.goni_measurements: dict[str, Any] = {}
        self.add_marker("goni")
        self.add_marker(spec.id)
        if gate.severity != "normal":
            self.add_marker(gate.severity)
        if gate.requires == "cuda" or any(spec.measurements[m].requires_cuda for m in gate.measurements):
            self.add_marker("gpu")

    def setup(self) -> None:
        gates = _run_state(self.config).gates(self.spec)
        runner = gates.runner
        reason = skip_reason(self.spec, self.gate, runner.device, runner.baseline is not None or runner.saving)
        if reason:
            self.goni_result = gates.skipped(self.gate, reason)
            pytest.skip(reason)

    def runtest(self) -> None:
        gates = _run_state(self.config).gates(self.spec)
        r = self.goni_result = gates.judge(self.gate)
        self.goni_measurements = gates.runner.ship(self.spec, gates.measurements_behind(self.gate))
        for key in ("status", "display", "expect", "margin", "reason"):
            if getattr(r, key) not in (None, ""):
                self.user_properties.append((f"goni_{key}", getattr(r, key)))
        if r.value is not None:
            self.user_properties.append(("goni_value", r.value))
        if r.status == SKIP:  # measured for a --goni-save, with nothing to compare with yet
            pytest.skip(r.reason)
        if not r.passed:
            if self.gate.severity == "info":  # informational: shown in the report, never fails the run
                pytest.xfail(f"info gate {r.status}: {r.reason}")
            raise GateFailed(r)

    def repr_failure(self, excinfo, style=None):  # type: ignore[no-untyped-def]
        if isinstance(excinfo.value, GateFailed):
            from .report.terminal import failure_text

            return failure_text(excinfo.value.result)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.gate.mark.line - 1, f"{self.spec.id}::{self.gate.id}"


def _run_state(config: pytest.Config) -> GoniState:
    state = _state(config)
    assert state is not None, "gate items exist only when specs were given"
    return state


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    report = yield
    if not isinstance(item, GateItem):
        return report
    if report.skipped and item.goni_result is None:  # skipped by a marker or another plugin
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        item.goni_result = _run_state(item.config).gates(item.spec).skipped(item.gate,
                                                                            reason.removeprefix("Skipped: "))
    if item.goni_result is not None and (call.when == "call" or (call.when == "setup" and report.skipped)):
        report.goni = item.goni_result.to_dict()
        report.goni_measurements = item.goni_measurements
        report.goni_spec = _spec_header(item.spec)
    return report


def _spec_header(spec: Spec) -> dict[str, Any]:
    return {"id": spec.id, "title": spec.title, "source": spec.source, "file": spec.display_path,
            "profile": spec.profile, "profile_vars": spec.profile_vars, "config_hash": spec.config_hash}


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    state = _state(session.config)
    if state is not None and session.config.getoption("goni_list"):
        from .report.terminal import print_listing

        print_listing(session)
        return True
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    state = _state(config)
    if state is None or config.getoption("goni_list"):
        return
    from .report.terminal import print_summary

    print_summary(terminalreporter, state)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None or hasattr(session.config, "workerinput"):
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    from .report.results import environment

    env = environment()  # read once: git and device queries are not free
    written = []
    from .report.results import write_reports

    written.extend(write_reports(state, env))
    save = session.config.getoption("goni_save")
    if save:
        from .baselines import save_baseline
        from .jsonsafe import json_safe
        from .report.results import build_results

        results = json_safe(build_results(state, env))
        written.append(f"baseline saved to {save_baseline(session.config.rootpath, save, results)}")
    for line in written:
        if tr is not None:
            tr.write_line(f"goni: {line}")
