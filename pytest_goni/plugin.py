"""pytest hooks, each handing off in a line or two: options (options.py), the run's state and
result collection (session.py), spec files and gate items (items.py), reports (report/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .items import GateItem, SpecFile
from .options import add_options
from .session import GoniSession


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--goni-baselines, --goni-schema, --goni-kinds: answer and run nothing."""
    if config.getoption("goni_schema") or config.getoption("goni_kinds"):
        from .reference import describe_installed

        return describe_installed(config)
    ref = config.getoption("goni_baselines")
    if ref is None:
        return None
    from .baselines import print_report

    return 0 if print_report(config.rootpath, ref) else int(pytest.ExitCode.USAGE_ERROR)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "goni: a pytest-goni gate")
    config.addinivalue_line("markers", "red-line: a red-line gate (severity: red-line)")
    config.addinivalue_line("markers", "info: an informational gate (severity: info)")
    config.addinivalue_line("markers", "gpu: a gate whose measurements need a CUDA device")
    GoniSession.start(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    if GoniSession.of(session.config) is not None:
        from .progress import install

        install(session.config)  # after every pytest_configure: the terminal reporter exists


def pytest_unconfigure(config: pytest.Config) -> None:
    from .progress import uninstall

    uninstall()
    goni = GoniSession.of(config)
    if goni is not None:
        goni.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    goni = GoniSession.of(session.config)
    if goni is not None:
        goni.report_missing(session)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    goni = GoniSession.of(parent.config)
    if goni is not None and goni.is_spec(file_path):
        return SpecFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    report = yield
    if isinstance(item, GateItem):
        item.attach_result(report, call.when)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    if GoniSession.of(session.config) is None or not session.config.getoption("goni_list"):
        return None
    from .report.terminal import print_listing

    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    print_listing(tr, [(i.nodeid, i.spec, i.gate) for i in session.items if isinstance(i, GateItem)])
    return True


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    goni = GoniSession.of(config)
    if goni is not None:
        goni.summary(terminalreporter)


@pytest.hookimpl(tryfirst=True)  # before xdist waits for its workers to exit: reports are written meanwhile
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    goni = GoniSession.of(session.config)
    if goni is not None:
        goni.finish(session, exitstatus)
