"""Tables for benchmarks/xdist_pass.sh, from the -n 0 and -n 2 runs' results.json (their
``timeline``) and the wall-clock bracket the script took around each pytest process:

1. where the wall time went: each row a phase on the way from the shell's start to the process's
   exit, one column per process path (-n 0; -n 2 through each worker); a column sums to its wall;
2. the -n 2 work units: worker, expected seconds (last run), sent, started, ended, measured;
3. per measurement, where it ran and how long under -n 0 and -n 2 (a measurement split into parts:
   each part's worker, device and seconds), and whether every gate reading it ran on its worker
   (the -v log's '[gwN] ... PASSED x.yaml::gate' lines).

Usage: python benchmarks/xdist_table.py DIR N0_START N0_END N2_START N2_END  (epoch seconds; DIR has
serial/results.json, n2/results.json, n2.log; writes DIR/xdist.jsonl too)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


def measurements(results: dict) -> dict[tuple[str, str], dict]:
    return {(s["id"], n): m for s in results["specs"] for n, m in s["measurements"].items()}


def readers(results: dict) -> dict[tuple[str, str], set[str]]:
    """(spec, measurement) -> node ids of the gates that read it (from their evidence paths)."""
    out: dict[tuple[str, str], set[str]] = {}
    for s in results["specs"]:
        for g in s["gates"]:
            for path in g.get("evidence") or {}:
                if "." in path and isinstance(g["evidence"][path], dict) and "unit" in g["evidence"][path]:
                    out.setdefault((s["id"], path.split(".", 1)[0]), set()).add(f"{s['file']}::{g['gate']}")
    return out


def _span(ev: dict[str, Any], a: str, b: str) -> float | None:
    return None if ev.get(a) is None or ev.get(b) is None else ev[b] - ev[a]


NA = "-"  # a phase that does not exist on that path (a worker's start-up under -n 0)


def phases(results: dict, start: float, end: float, worker: str | None) -> list[tuple[str, float | str | None]]:
    """(phase, seconds) from the shell's start to the process's exit, through ``worker`` (None: -n 0).
    The phases follow one another, so they add up to the wall time (None: an event was not recorded)."""
    tl = results.get("timeline")
    if tl is None:
        return [("(no timeline in results.json: a run from before timelines were recorded)", None)]
    procs = tl["processes"]
    c = procs.get("controller") or procs.get("main") or next(iter(procs.values()))
    origin = tl["origin_epoch"]
    w = c if worker is None else procs[worker]
    runs = [m for m in tl["measurements"] if worker is None or m["worker"] == worker]
    measured = sum((m["end"] or 0) - (m["start"] or 0) for m in runs)
    ready = "warmup_end" if w.get("warmup_end") is not None else "collected"
    gates = _span(w, "first_gate", "last_gate_end")
    on_worker = worker is not None
    return [
        ("shell -> controller process start", origin - start),
        ("controller: interpreter, pytest, plugins", _span(c, "process_start", "configured")),
        ("controller: built-in kinds declared (by name; imported by the specs that use them)",
         _span(c, "configured", "kinds_loaded")),
        ("controller: rest of configure -> session start", _span(c, "kinds_loaded", "session_start")),
        ("xdist starts the worker (controller session start -> its process start)",
         (None if w.get("process_start") is None else w["process_start"] - c["session_start"]) if on_worker else NA),
        ("worker: interpreter, pytest, plugins", _span(w, "process_start", "configured") if on_worker else NA),
        ("worker: built-in kinds declared", _span(w, "configured", "kinds_loaded") if on_worker else NA),
        ("worker: rest of configure -> session start", _span(w, "kinds_loaded", "session_start") if on_worker else NA),
        ("collection (imports the kinds the specs use, torch with them)", _span(w, "session_start", "collected")),
        ("CUDA warm-up", _span(w, "collected", "warmup_end") if ready == "warmup_end" else 0.0),
        ("waiting for the first unit", _span(w, ready, "first_gate")),
        (f"measurements ({', '.join(m['measurement'] for m in runs)})", measured),
        ("gates besides measurements, idle between units", None if gates is None else gates - measured),
        ("after its last gate: the other worker's gates -> controller's session finish",
         None if w.get("last_gate_end") is None else c["session_finish"] - w["last_gate_end"]),
        ("controller: reports, waiting for the workers to exit, summary, exit", end - (origin + c["session_finish"])),
    ]


def accounting(serial: dict, par: dict, walls: tuple[float, ...]) -> tuple[list[str], dict]:
    """The phases table: one column for -n 0, one per -n 2 worker (the busiest is the wall's path)."""
    n0_start, n0_end, n2_start, n2_end = walls
    cols = {"-n 0": (phases(serial, n0_start, n0_end, None), n0_end - n0_start)}
    for w in sorted(k for k in (par.get("timeline") or {}).get("processes", {}) if k.startswith("gw")):
        cols[f"-n 2 via {w}"] = (phases(par, n2_start, n2_end, w), n2_end - n2_start)
    lines = ["| phase | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    labels = max((rows for rows, _ in cols.values()), key=len)

    def cell(v: float | str | None) -> str:
        return "?" if v is None else v if isinstance(v, str) else f"{v:.2f}"

    for i, (label, _) in enumerate(labels):
        if re.match(r"measurements \(", label):
            label = "measurements on that path"
        lines.append(f"| {label} | " + " | ".join(cell(rows[i][1]) if i < len(rows) else "" for rows, _ in
                                                 cols.values()) + " |")
    lines.append("| **wall** | " + " | ".join(f"**{wall:.2f}**" for _, wall in cols.values()) + " |")
    return lines, {k: {label: v for label, v in rows} | {"wall": wall} for k, (rows, wall) in cols.items()}


def units_table(par: dict) -> list[str]:
    tl = par.get("timeline") or {}
    runs = {m["measurement"]: m for m in tl.get("measurements", [])}
    lines = ["| unit | worker | expected s | sent | start | end | s |", "|---|---|---:|---:|---:|---:|---:|"]
    for u in tl.get("units", []):
        f = lambda x: "" if x is None else f"{x:.2f}"  # noqa: E731
        took = None if u["start"] is None or u["end"] is None else u["end"] - u["start"]
        lines.append(f"| {u['unit']} | {u['worker']} | {f(u['expected_s'])} | {f(u['sent'])} | {f(u['start'])}"
                     f" | {f(u['end'])} | {f(took)} |")
    if runs:
        lines += ["", "| measurement | worker | device | start | end | s |", "|---|---|---|---:|---:|---:|"]
        for m in sorted(runs.values(), key=lambda m: (m["worker"] or "", m["start"] or 0)):
            lines.append(f"| {m['measurement']} | {m['worker']} | {m['device']} | {m['start']:.2f} | {m['end']:.2f}"
                         f" | {m['end'] - m['start']:.2f} |")
    return lines


def main() -> None:
    root = Path(sys.argv[1])
    walls = tuple(float(x) for x in sys.argv[2:6])
    n0_start, n0_end, n2_start, n2_end = walls
    serial = json.loads((root / "serial" / "results.json").read_text())
    par = json.loads((root / "n2" / "results.json").read_text())
    log = (root / "n2.log").read_text(errors="replace")
    gate_worker = {m.group(2): m.group(1) for m in
                   re.finditer(r"\[(gw\d+)\][^\n]*?(?:PASSED|FAILED|ERROR|SKIPPED|XFAIL) (\S+)", log)}
    ms, mp, rd = measurements(serial), measurements(par), readers(par)
    rows = ["| measurement | kind | -n 0: device, s | -n 2: worker, device, s | gates reading it ran on |",
            "|---|---|---|---|---|"]
    per_device: dict[str, float] = {}
    records = []
    for key in sorted(set(ms) | set(mp)):
        a, b = ms.get(key, {}), mp.get(key, {})
        ran_on = sorted({gate_worker.get(g, "?") for g in rd.get(key, set())})
        for run in b.get("parts") or [b]:  # a split measurement: each part on its own device
            dev = run.get("device") or "?"
            per_device[dev] = per_device.get(dev, 0.0) + (run.get("seconds") or 0.0)
        kind = b.get("kind", a.get("kind"))
        where = (f"{b.get('worker')}, {b.get('device')}, {b.get('seconds', 0):.1f}" if not b.get("parts") else
                 "; ".join(f"[{p['part']['label']}] {p.get('worker')}, {p.get('device')}, {p.get('seconds') or 0:.1f}"
                           for p in b["parts"]))
        rows.append(f"| {key[0]}.{key[1]} | {kind} | {a.get('device')}, {a.get('seconds', 0):.1f}"
                    f" | {where} | {', '.join(ran_on)} |")
        records.append({"measurement": f"{key[0]}.{key[1]}", "serial_device": a.get("device"),
                        "serial_s": a.get("seconds"), "n2_worker": b.get("worker"), "n2_device": b.get("device"),
                        "n2_s": b.get("seconds"), "gate_workers": ran_on,
                        "n2_parts": [{k: p.get(k) for k in ("part", "worker", "device", "seconds")}
                                     for p in b.get("parts") or []]})
    verdicts_s = {(s["id"], g["gate"]): g["status"] for s in serial["specs"] for g in s["gates"]}
    verdicts_p = {(s["id"], g["gate"]): g["status"] for s in par["specs"] for g in s["gates"]}
    differ = sorted(k for k in verdicts_s if verdicts_p.get(k) != verdicts_s[k])
    acc_lines, acc = accounting(serial, par, walls)  # type: ignore[arg-type]
    env = par["environment"]
    wall0, wall2 = n0_end - n0_start, n2_end - n2_start
    summary = {"date": env["date"], "device": env["device"], "devices": env.get("devices"),
               "versions": env["versions"], "git_commit": env.get("git_commit"),
               "command": "bash benchmarks/xdist_pass.sh (pytest --goni-spec specs/demo.yaml --goni-spec "
                          "specs/sys02.yaml -k 'demo or rt- or mem- or checklist-3 or checklist-4' -n 0 | -n 2)",
               "wall_n0_s": round(wall0, 1), "wall_n2_s": round(wall2, 1), "ratio": round(wall2 / wall0, 3),
               "measured_s_per_device_n2": per_device, "verdicts_differ": [f"{a}::{b}" for a, b in differ],
               "measurements": records, "accounting": acc}
    (root / "xdist.jsonl").write_text(json.dumps(summary) + "\n")
    print("\n".join(rows))
    print("\nwork units under -n 2 (seconds after the controller's process start):\n")
    print("\n".join(units_table(par)))
    print("\nwhere the wall time went (seconds; each column adds up to its wall):\n")
    print("\n".join(acc_lines))
    print(f"\nwall: -n 0 {wall0:.1f} s, -n 2 {wall2:.1f} s (ratio {summary['ratio']}); measured seconds per "
          f"device under -n 2: {', '.join(f'{d} {s:.1f}' for d, s in per_device.items())}")
    print(f"verdicts that differ between -n 0 and -n 2: {', '.join(summary['verdicts_differ']) or 'none'}")


if __name__ == "__main__":
    main()
