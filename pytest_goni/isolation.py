"""Running one measurement so that nothing it does can take the session down with it.

A measurement is third-party code: it may call ``os._exit`` or ``os.abort``, be killed by a signal
or the OOM killer, raise ``SystemExit`` or ``KeyboardInterrupt``, or hang in C code past its
timeout. :func:`run_measurement` turns all of these into an :class:`Outcome` with a one-line
reason ("process died: SIGABRT in measurement 'm'"), so exactly the gates that read it fail and
every other gate still runs, serially and under xdist.

How (``--goni-isolation``):

- ``fork`` (the default on CPU): the measurement runs in a forked child; its result comes back
  pickled through a pipe. Costs a fork per measurement (milliseconds: pages are shared
  copy-on-write) and any in-process cache a kind keeps (a tokenizer, a compiled model) lives only
  for that measurement. GNU OpenMP (torch's CPU thread pool) cannot be used in a child forked
  from a process whose pool already ran: it deadlocks. When the parent has native threads
  running, the child therefore runs torch with one intra-op thread and says so in its log.
- ``none`` (the default on CUDA): in this process. CUDA cannot be used in a forked child of a
  process that initialised it, and a spawned child would re-create the CUDA context and could not
  reach kinds registered by a conftest.py. ``BaseException``s are still caught (a
  ``KeyboardInterrupt`` is re-raised: in-process it cannot be told from Ctrl-C); a process that
  dies takes the session (or, under xdist, the worker) with it, and under xdist the replacement
  worker finds the measurement's crash marker (pytest_goni.scheduling) and fails its gates instead of running it again.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("auto", "fork", "none")
_HERE = str(Path(__file__).resolve().parent)


def kill_grace(timeout_s: float) -> float:
    """How long after its own timeout (which a measurement reports itself, cleanly) a child that
    did not stop is killed: 20% of the timeout, 2 to 30 s."""
    return max(2.0, min(30.0, 0.2 * timeout_s))


@dataclass
class Outcome:
    """What running a measurement gave: its return value, or why it has none."""

    value: Any = None
    error: str | None = None          # one line: "RuntimeError: ...", "process died: SIGABRT"
    traceback: str = ""               # the measurement's frames only (the plugin's are left out)
    location: str = ""                # "file.py:33 in func": the innermost frame in the kind's code
    timed_out: bool = False
    missing: str | None = None        # an optional dependency is not installed (its gates SKIP)
    memory: dict[str, int] = field(default_factory=dict)  # rss_before/_after/_peak/_growth, bytes
    notes: list[str] = field(default_factory=list)


def choose_mode(requested: str, device: str) -> str:
    """``auto``: ``fork`` on CPU (where fork is possible), ``none`` on CUDA (see the module doc)."""
    if requested not in MODES:
        raise ValueError(f"--goni-isolation must be one of {', '.join(MODES)}, got {requested!r}")
    if requested != "auto":
        return requested
    return "fork" if hasattr(os, "fork") and not device.startswith("cuda") else "none"


def _rss() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return 0


def _peak_rss() -> int:
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux
    except Exception:
        return 0


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    if "OutOfMemory" in name or "out of memory" in str(exc).lower() or isinstance(exc, MemoryError):
        first = str(exc).splitlines()[0] if str(exc).strip() else name
        return f"out of memory: {first}"
    if name == "MeasurementTimeout":
        return f"timeout: {exc}"
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) raised (a measurement must not exit)"
    msg = str(exc).strip().splitlines()
    return f"{name}: {msg[0]}" if msg else name


def _kind_frames(tb: Any, kind_file: str | None) -> tuple[str, str]:
    """The traceback from the first frame outside this package's runner code, and the location
    of the innermost frame in the kind's own file (or the innermost frame outside the plugin)."""
    frames = traceback.extract_tb(tb)
    start = 0
    for i, fr in enumerate(frames):
        if not (fr.filename.startswith(_HERE) and Path(fr.filename).name in ("isolation.py", "runner.py")):
            start = i
            break
    else:
        start = len(frames)
    own = frames[start:]
    pick = [fr for fr in own if kind_file and os.path.samefile(fr.filename, kind_file)] if kind_file else []
    if not pick:
        pick = [fr for fr in own if not fr.filename.startswith(_HERE)] or own
    where = f"{short_path(pick[-1].filename)}:{pick[-1].lineno} in {pick[-1].name}" if pick else ""
    return "".join(traceback.format_list(own[-12:])), where


def short_path(path: str) -> str:
    try:
        rel = os.path.relpath(path)
        return rel if not rel.startswith("..") else path
    except ValueError:
        return path


def _call(fn: Callable[[], Any], kind_file: str | None, reraise_interrupt: bool) -> Outcome:
    out = Outcome(memory={"rss_before": _rss()})
    peak_before = _peak_rss()
    try:
        out.value = fn()
    except KeyboardInterrupt:
        if reraise_interrupt:
            raise
        out.error = "KeyboardInterrupt raised"
        out.traceback, out.location = _kind_frames(_tb(), kind_file)
    except BaseException as exc:  # noqa: BLE001 - SystemExit, MemoryError, GeneratorExit...
        from .optional import missing_from

        missing = missing_from(exc)
        if missing is not None:
            out.missing = str(missing)
        out.error = _describe(exc)
        out.timed_out = type(exc).__name__ == "MeasurementTimeout"
        out.traceback, out.location = _kind_frames(exc.__traceback__, kind_file)
    mem = out.memory
    mem.update(rss_after=_rss(), rss_peak=_peak_rss())
    # What the measurement added: up to its peak when it set a new one (in a forked child the
    # peak counts from the fork), else what it left resident.
    top = mem["rss_peak"] if mem["rss_peak"] > peak_before else mem["rss_after"]
    mem["rss_growth"] = max(0, top - mem["rss_before"]) if mem["rss_before"] else 0
    return out


def _tb() -> Any:
    import sys

    return sys.exc_info()[2]


def run_here(fn: Callable[[], Any], kind_file: str | None = None) -> Outcome:
    """Run in this process; every exception becomes the outcome's error except Ctrl-C."""
    return _call(fn, kind_file, reraise_interrupt=True)


def _native_threads() -> int:
    """Threads of this process that Python did not start (OpenMP / BLAS pools, CUDA, ...)."""
    try:
        return len(os.listdir("/proc/self/task")) - threading.active_count()
    except OSError:
        return 0


def _frame(kind: bytes, payload: bytes) -> bytes:
    return kind + len(payload).to_bytes(8, "little") + payload


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _PipeLog(logging.Handler):
    """In the child: sends ``goni`` log records to the parent, which handles them as its own (so
    the live line, pytest's captured log and caplog see what a measurement says)."""

    def __init__(self, fd: int):
        super().__init__()
        self.fd = fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = dict(record.__dict__, msg=record.getMessage(), args=None, exc_info=None, exc_text=None)
            _write_all(self.fd, _frame(b"L", pickle.dumps(data)))
        except Exception:  # noqa: BLE001 - a lost log line must not fail the measurement
            pass


def _child(fn: Callable[[], Any], kind_file: str | None, fd: int, single_thread: bool) -> None:
    from . import progress

    signal.signal(signal.SIGINT, signal.default_int_handler)
    progress._display = None  # the parent draws the live line
    goni = logging.getLogger("goni")
    goni.handlers, goni.propagate = [_PipeLog(fd)], False
    notes = []
    if single_thread:
        import torch

        torch.set_num_threads(1)
        notes.append("ran with 1 torch thread: forked from a process whose thread pools had started "
                     "(GNU OpenMP deadlocks in such a child)")
    out = _call(fn, kind_file, reraise_interrupt=False)
    out.notes = notes
    try:
        data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        data = pickle.dumps(Outcome(error=f"the measurement returned a value that cannot be sent back from "
                                          f"its process: {_describe(exc)}", memory=out.memory, notes=notes))
    _write_all(fd, _frame(b"R", data))


def run_forked(fn: Callable[[], Any], timeout_s: float, kind_file: str | None = None) -> Outcome:
    """Run in a forked child; a child that dies, hangs past ``timeout_s`` + grace or returns
    something that cannot be pickled gives an outcome with the reason."""
    from . import progress

    single_thread = _native_threads() > 0
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_fd)
            _child(fn, kind_file, write_fd, single_thread)
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    os.close(write_fd)
    buf = bytearray()
    result: Outcome | None = None
    grace = kill_grace(timeout_s)
    deadline = time.monotonic() + timeout_s + grace
    killed = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
            progress.heartbeat()
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[1:9], "little"):
                n = int.from_bytes(buf[1:9], "little")
                kind, payload = bytes(buf[:1]), bytes(buf[9:9 + n])
                del buf[:9 + n]
                if kind == b"L":
                    _relog(payload)
                else:
                    result = _unpickle(payload)
    except BaseException:  # Ctrl-C in the parent: stop the child, then let pytest stop
        _kill(pid)
        raise
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if killed:
        return Outcome(error=f"timeout: killed after {timeout_s + grace:g} s (its process did not stop "
                             "at the measurement's timeout)", timed_out=True)
    if result is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return result
    return Outcome(error=f"process died: {_death(status)}")


def _relog(payload: bytes) -> None:
    try:
        record = logging.makeLogRecord(pickle.loads(payload))
    except Exception:  # noqa: BLE001
        return
    logging.getLogger(record.name).handle(record)


def _unpickle(payload: bytes) -> Outcome:
    try:
        return pickle.loads(payload)
    except Exception as exc:  # noqa: BLE001
        return Outcome(error=f"the measurement's result could not be read back: {_describe(exc)}")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _death(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return name + (" (killed: out of memory?)" if sig == signal.SIGKILL else "")
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)} (os._exit or a library calling exit())"
    return f"status {status}"
