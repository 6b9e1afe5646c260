"""Progress of long measurements through Python logging (logger ``goni``).

Every measurement logs when it starts and ends, and what it says through ``ctx.log()`` (the point
of a sweep, a training step's loss and tokens/s, the seed) goes to ``goni.<spec>.<measurement>``.
So ``--log-cli-level=INFO`` shows it as pytest's live log, ``--log-level`` / ``caplog`` capture it,
and without either the plugin shows it itself:

- in a terminal (or with ``--color=yes``): one live line at the bottom, redrawn in place with the
  elapsed time while the measurement runs and erased when it ends;
- with ``-v`` and no terminal (CI logs): one plain line per message;
- under ``-q``, or when pytest's live log is on: nothing of its own.

xdist workers have no terminal: there the records go to each gate's captured log only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

LOGGER = logging.getLogger("goni")
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class _Display(logging.Handler):
    """Shows ``goni`` records on pytest's terminal: a live line, or plain lines under -v."""

    def __init__(self, config: Any, live: bool):
        super().__init__(logging.INFO)
        self.config, self.live = config, live
        self.current = ""        # the live line's message
        self.started = 0.0       # when the running measurement began
        self.shown_at = 0.0
        self.frame = 0
        self.drawn = False

    def _write(self, text: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if tr is None:
            return
        if capman is not None:
            with capman.global_and_fixture_disabled():
                self._write_now(tr, text)
        else:
            self._write_now(tr, text)

    def _write_now(self, tr: Any, text: str) -> None:
        if self.live:
            # Drawn after pytest's own unfinished line ("specs/x.yaml .."), which is written again
            # as it was when the line is erased: pytest's output carries on untouched.
            prefix = getattr(tr._tw, "_current_line", "")
            room = max(_terminal_width(self.config) - len(prefix) - 1, 20)
            tr._tw._file.write("\r" + prefix + text[:room] + "\x1b[K")
            tr._tw._file.flush()
            self.drawn = bool(text)
        else:
            tr.ensure_newline()
            tr.write_line(text)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = record.name.removeprefix("goni.").removeprefix("goni")
            msg = f"{name}: {record.getMessage()}" if name else record.getMessage()
            if getattr(record, "goni_start", False):
                self.started = time.monotonic()
            if getattr(record, "goni_end", False) and self.live:
                self.clear()
                return
            self.current = msg
            self.draw(force=True)
        except Exception:  # a display problem must never fail a measurement
            self.handleError(record)

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.shown_at < 0.25:
            return
        self.shown_at = now
        if not self.live:
            if force:
                self._write(f"goni {self.current}")
            return
        self.frame = (self.frame + 1) % len(SPINNER)
        elapsed = f"{now - self.started:5.1f} s" if self.started else ""
        self._write(f"{SPINNER[self.frame]} {elapsed} {self.current}")

    def clear(self) -> None:
        if self.drawn:
            self._write("")
        self.current, self.started = "", 0.0


def _terminal_width(config: Any) -> int:
    tr = config.pluginmanager.get_plugin("terminalreporter")
    return int(getattr(getattr(tr, "_tw", None), "fullwidth", 80) or 80)


_display: _Display | None = None


def install(config: Any) -> None:
    """Attach the display to the ``goni`` logger for this session (controller / plain runs only)."""
    global _display
    uninstall()
    if hasattr(config, "workerinput") or config.get_verbosity() < 0:
        return
    if config.getoption("log_cli_level", None) or _ini_true(config, "log_cli"):
        return  # pytest's own live log shows goni records
    tr = config.pluginmanager.get_plugin("terminalreporter")
    live = bool(getattr(getattr(tr, "_tw", None), "hasmarkup", False))
    if not live and config.get_verbosity() < 1:
        return
    _display = _Display(config, live)
    LOGGER.addHandler(_display)
    if LOGGER.level == logging.NOTSET or LOGGER.level > logging.INFO:
        LOGGER.setLevel(logging.INFO)


def _ini_true(config: Any, name: str) -> bool:
    try:
        return bool(config.getini(name))
    except ValueError:
        return False


def uninstall() -> None:
    global _display
    if _display is not None:
        _display.clear()
        LOGGER.removeHandler(_display)
        _display = None


def heartbeat() -> None:
    """Redraw the live line (elapsed time) from inside a measurement's loop; cheap, throttled."""
    if _display is not None and _display.live and _display.current:
        _display.draw()


def measurement_logger(spec_id: str, measurement: str) -> logging.Logger:
    return LOGGER.getChild(f"{spec_id}.{measurement}")


def started(spec_id: str, measurement: str, kind: str, device: str) -> None:
    measurement_logger(spec_id, measurement).info("%s on %s", kind, device, extra={"goni_start": True})


def finished(spec_id: str, measurement: str, seconds: float, failure: str | None) -> None:
    log = measurement_logger(spec_id, measurement)
    if failure:
        log.warning("failed after %.1f s: %s", seconds, failure, extra={"goni_end": True})
    else:
        log.info("done in %.1f s", seconds, extra={"goni_end": True})


def step_check(ctx: Any, label: str, steps: int, times: int = 10) -> Callable[[], None]:
    """A per-step ``check`` for ``training.train``: the deadline check, and a log line about
    ``times`` times per run ("gla seed 1: step 40/400")."""
    every = max(steps // max(times, 1), 1)
    count = 0

    def check() -> None:
        nonlocal count
        ctx.check_deadline()
        if count % every == 0:
            ctx.log(f"{label}: step {count + 1}/{steps}")
        count += 1

    return check
