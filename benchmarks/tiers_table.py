"""The tiers seed's claims beside the measured values: a Markdown table from gates.jsonl results.

    python benchmarks/tiers_table.py CPU_GATES.jsonl [GPU_GATES.jsonl] [--write benchmarks/README.md]
    python benchmarks/tiers_table.py --write benchmarks/README.md      # every committed run

Each row is a gate of specs/tiers.yaml: the seed lines it cites, the claim (its ``expect:``), and per
results file the measured value and verdict. ``--write`` replaces the block between the markers in
the file, so the README table is generated from committed results, not typed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- tiers:claims:start -->", "<!-- tiers:claims:end -->"
_LINES = re.compile(r"lines? [0-9][0-9 ,and-]*")


def committed_results(root: Path = ROOT) -> list[Path]:
    """Every committed tiers run's gates.jsonl (a run folder holds it at its top or under report/),
    CPU runs first, then by date: the README table's columns."""
    found = [*root.glob("benchmarks/results/tiers-*/gates.jsonl"),
             *root.glob("benchmarks/results/tiers-*/report/gates.jsonl")]

    def order(path: Path) -> tuple[bool, str]:
        first = json.loads(path.read_text().splitlines()[0])
        return not first["device"].startswith("cpu"), first["date"]
    return sorted(found, key=order)


def _rows(path: Path) -> dict[str, dict]:
    return {r["gate"]: r for r in map(json.loads, path.read_text().splitlines()) if r.get("spec") == "tiers"}


def _cell(r: dict | None) -> str:
    if r is None:
        return "—"
    mark = {"PASS": "PASS", "FAIL": "**FAIL**"}.get(r["status"], r["status"])
    shown = r.get("display") or "n/a"
    return f"{shown.split(' [')[0]} {mark}"


def markdown(results: list[Path]) -> str:
    spec = yaml.safe_load((ROOT / "specs" / "tiers.yaml").read_text())
    runs = [_rows(p) for p in results]
    heads = []
    for rows in runs:
        any_row = next(iter(rows.values()))
        heads.append(f"{any_row['device']} ({any_row['profile']} profile, {any_row['date'][:10]})")
    lines = ["| gate | seed | claim | " + " | ".join(heads) + " |",
             "|---|---|---|" + "---|" * len(heads)]
    for gate in spec["gates"]:
        gid = gate["id"]
        cited = _LINES.search(gate.get("why", ""))
        ran = next((rows[gid] for rows in runs if gid in rows), {})
        claim = ran.get("expect") or gate.get("expect") or "all of " + ", ".join(gate.get("of", []))
        if gate.get("stat"):
            claim = f"{gate['stat']} {claim}"
        info = " (info)" if gate.get("severity") == "info" else ""
        cells = " | ".join(_cell(rows.get(gid)) for rows in runs)
        lines.append(f"| `{gid}`{info} | {cited.group(0).strip() if cited else ''} | {claim} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", type=Path,
                    help="gates.jsonl files (CPU first); none: every committed run")
    ap.add_argument("--write", type=Path, help="replace the marked block in this file")
    args = ap.parse_args(argv)
    table = markdown(args.results or committed_results())
    if not args.write:
        sys.stdout.write(table)
        return 0
    text = args.write.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{args.write} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    args.write.write_text(head + START + "\n" + table + END + rest.split(END, 1)[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
