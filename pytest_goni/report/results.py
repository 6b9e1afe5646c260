"""Results JSON (``--goni-report DIR/results.json``): every gate, every sample, the environment."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ..device import cpu_name, no_gpu_driver
from ..jsonsafe import json_safe
from ..status import STATUSES
from . import Collected

GONI_RESULTS_VERSION = 1


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Device, library versions, git commit: what a reader needs to trust or redo a number."""
    env: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(), "python": platform.python_version(), "platform": platform.platform(),
        "cpu": cpu_name(),
        "versions": {d: _version(d) for d in ("pytest-goni", "torch", "triton", "transformers", "tokenizers",
                                               "pytest", "pytest-xdist", "numpy", "cupy-cuda13x", "cupy-cuda12x")},
    }
    try:
        if "torch" not in sys.modules and no_gpu_driver():
            raise ImportError("no GPU here, and nothing imported torch: not worth importing it to say so")
        import torch

        env["cuda"] = torch.version.cuda
        env["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
            if torch.cuda.is_available() else []
    except Exception:
        env["devices"] = []
    env["device"] = env["devices"][0] if env["devices"] else f"cpu: {env['cpu']}"
    env["git_commit"], dirty = git_commit()
    if dirty is not None:
        env["git_dirty"] = dirty
    return env


def git_commit(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the code that ran: ``GONI_GIT_COMMIT`` when set (a lent GPU's copy of the tree
    carries a stale .git; dirty is then unknown), else git's HEAD; (None, None) outside a checkout."""
    if os.environ.get("GONI_GIT_COMMIT"):
        return os.environ["GONI_GIT_COMMIT"], None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              check=True, cwd=cwd).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5,
                               cwd=cwd).stdout.strip()
    except Exception:  # noqa: BLE001 - no git, no checkout: the results say so
        return None, None
    return head, bool(dirty)


def build_results(run: Collected, env: dict[str, Any]) -> dict[str, Any]:
    """results.json's content (before JSON cleaning)."""
    specs = []
    for spec_id, header in run.specs.items():
        gates = sorted((r for r in run.results if r.spec == spec_id), key=lambda r: r.line)
        specs.append({**header, "gates": [g.to_json() for g in gates],
                      "measurements": run.measurements.get(spec_id, {}),
                      "counts": {s: sum(g.status == s for g in gates) for s in STATUSES}})
    done = len(run.results)
    reason = None if run.complete else (run.incomplete_reason or f"{RUNNING} ({done} gate result"
                                                                  f"{'s' * (done != 1)} so far)")
    out = {"goni_results_version": GONI_RESULTS_VERSION, "environment": env, "specs": specs,
           "spec_errors": [{"file": f, "message": m} for f, m in run.spec_errors],
           "complete": run.complete, "incomplete_reason": reason}
    if run.timeline is not None:
        out["timeline"] = run.timeline
    return out


#: What an unfinished results.json says until the run ends (it stays if the run is killed).
RUNNING = ("the run had not finished when this was written: it was still running, or it was killed or "
           "crashed before the end")


def gate_lines(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat record per gate (date, device, versions, config hash): the jsonl committed
    under benchmarks/results/ for results quoted elsewhere."""
    env = results["environment"]
    keep = ("spec", "gate", "status", "value", "display", "expect", "margin", "interval", "reason", "details")
    return [{"date": env["date"], "device": env["device"], "versions": env["versions"], "cuda": env.get("cuda"),
             "git_commit": env.get("git_commit"), "profile": spec["profile"], "config_hash": spec["config_hash"],
             "file": spec["file"], **{k: g.get(k) for k in keep}}
            for spec in results["specs"] for g in spec["gates"]]


def _relative_artifacts(results: dict[str, Any], folder: Path) -> None:
    """Plot paths inside the report folder are written relative to it (the folder can move)."""
    for spec in results["specs"]:
        for m in spec["measurements"].values():
            out = []
            for a in m.get("artifacts", []):
                try:
                    out.append(str(Path(a).resolve().relative_to(folder.resolve())))
                except ValueError:
                    out.append(a)
            m["artifacts"] = out


def write_atomic(path: Path, text: str) -> None:
    """Write next to ``path`` and rename over it: a reader, or a crash mid-write, never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(run: Collected, report_dir: Path, env: dict[str, Any], gate_lines_too: bool = True) -> Path:
    """``results.json`` (everything) and ``gates.jsonl`` (a line per gate) in the report dir.

    Also called as every gate finishes (``gate_lines_too=False``; ``run.complete`` still False),
    so a crash, a kill or Ctrl-C leaves a valid file with every finished gate that says so.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    results = json_safe(build_results(run, env))
    _relative_artifacts(results, report_dir)
    path = report_dir / "results.json"
    write_atomic(path, json.dumps(results, indent=1, default=str))
    if gate_lines_too:
        lines = [json.dumps(line, default=str) for line in gate_lines(results)]
        write_atomic(report_dir / "gates.jsonl", "\n".join(lines) + "\n")
    return path


def write_reports(run: Collected, report_dir: Path | None, env: dict[str, Any]) -> list[str]:
    """Everything a run leaves for people, as lines to print: with a report folder, results.json,
    gates.jsonl, report.html and summary.md in it; the Markdown summary also goes to
    ``$GITHUB_STEP_SUMMARY`` when that is set."""
    from .html import write_html
    from .markdown import write_markdown

    lines = []
    if report_dir is not None:
        path = write_results(run, report_dir, env)
        results = json.loads(path.read_text())
        html = write_html(results, report_dir / "report.html", report_dir)
        lines += [f"results written to {path}", f"report: {html}"]
        md = write_markdown(results, report_dir / "summary.md")
    else:
        if not os.environ.get("GITHUB_STEP_SUMMARY") or not run.results:
            return lines
        md = write_markdown(json_safe(build_results(run, env)), None)
    lines += [f"summary appended to {p}" for p in md if str(p) == os.environ.get("GITHUB_STEP_SUMMARY")]
    return lines
