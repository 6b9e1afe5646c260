"""Table for benchmarks/xdist_pass.sh: per measurement, where it ran serially and under -n 2 (from
each run's results.json), whether every gate that reads it ran on that worker (from the -v log's
'[gwN] ... PASSED specs/x.yaml::gate' lines), GPU load per device, and the wall times.

Usage: python benchmarks/xdist_table.py RESULTS_DIR T0 T1 T2  (writes RESULTS_DIR/xdist.jsonl too)"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


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


def main() -> None:
    root = Path(sys.argv[1])
    t0, t1, t2 = (float(x) for x in sys.argv[2:5])
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
        per_device[b.get("device", "?")] = per_device.get(b.get("device", "?"), 0.0) + b.get("seconds", 0.0)
        kind = b.get("kind", a.get("kind"))
        rows.append(f"| {key[0]}.{key[1]} | {kind} | {a.get('device')}, {a.get('seconds', 0):.1f}"
                    f" | {b.get('worker')}, {b.get('device')}, {b.get('seconds', 0):.1f} | {', '.join(ran_on)} |")
        records.append({"measurement": f"{key[0]}.{key[1]}", "serial_device": a.get("device"),
                        "serial_s": a.get("seconds"), "n2_worker": b.get("worker"), "n2_device": b.get("device"),
                        "n2_s": b.get("seconds"), "gate_workers": ran_on})
    verdicts_s = {(s["id"], g["gate"]): g["status"] for s in serial["specs"] for g in s["gates"]}
    verdicts_p = {(s["id"], g["gate"]): g["status"] for s in par["specs"] for g in s["gates"]}
    differ = sorted(k for k in verdicts_s if verdicts_p.get(k) != verdicts_s[k])
    env = par["environment"]
    summary = {"date": env["date"], "device": env["device"], "devices": env.get("devices"),
               "versions": env["versions"], "git_commit": env.get("git_commit"),
               "command": "bash benchmarks/xdist_pass.sh (pytest --goni-spec specs/demo.yaml --goni-spec "
                          "specs/sys02.yaml -k 'demo or rt- or mem- or checklist-3 or checklist-4' -n 0 | -n 2)",
               "wall_n0_s": round(t1 - t0, 1), "wall_n2_s": round(t2 - t1, 1),
               "ratio": round((t2 - t1) / (t1 - t0), 3), "measured_s_per_device_n2": per_device,
               "verdicts_differ": [f"{a}::{b}" for a, b in differ], "measurements": records}
    (root / "xdist.jsonl").write_text(json.dumps(summary) + "\n")
    print("\n".join(rows))
    print(f"\nwall: -n 0 {t1 - t0:.1f} s, -n 2 {t2 - t1:.1f} s (ratio {summary['ratio']}); measured seconds per "
          f"device under -n 2: {', '.join(f'{d} {s:.1f}' for d, s in per_device.items())}")
    print(f"verdicts that differ between -n 0 and -n 2: {', '.join(summary['verdicts_differ']) or 'none'}")


if __name__ == "__main__":
    main()
