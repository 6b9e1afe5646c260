"""The import structure of the package: no cycles, and no import from a lower floor to a higher one.

Every ``import`` in pytest_goni/ (and in models/ and kernels/, installed as pytest_goni.models and
pytest_goni.kernels) counts, at module level or inside a function. The floors, lowest first; a
module may import from its own floor and the floors below it:

1. base: statuses, JSON cleaning, units, YAML positions, registries, statistics, timing, devices,
   progress lines, plots, scheduling rules, measurement parts, the hook specs, the JSON schemas,
   optional extras, exception notes, lazy imports.
2. machinery: kernels, models, training, tokenizers and corpora, the inference drivers, the
   benchmarkable ops, the measurement context, the V5 helpers, the synthetic tasks: the code
   measurements run.
3. language: expressions, expect:, the judge and its gate kinds, gate results, spec loading, the
   spec schema composed with the registered kinds and backends.
4. measurements: one module per measurement kind.
5. running: measurement isolation (a child process per measurement) and the measurement contract,
   the runner (measurement cache), gates (judging into results), baselines.
6. reporting: report/ (terminal, results.json, HTML, Markdown), the spec reference (--goni-kinds).
7. pytest: the session, the collection nodes, the options.
8. plugin.py: the hooks.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"pytest_goni": ROOT / "pytest_goni", "pytest_goni.models": ROOT / "models",
            "pytest_goni.kernels": ROOT / "kernels"}

FLOORS: list[tuple[str, ...]] = [
    ("pytest_goni", "status", "jsonsafe", "units", "yaml_positions", "registry", "stats", "timing", "device",
     "progress", "plots", "scheduling", "parts", "hookspecs", "schema", "optional", "timeline", "errors",
     "lazy"),
    ("kernels", "models", "losses", "distributed", "training", "tokenizers", "corpora", "lm_data",
     "inference", "bench_ops", "context", "tier_workload", "v5", "tasks"),
    ("expr", "expect", "judge", "gate_kinds", "gate_result", "spec", "spec_schema"),
    ("measurements",),
    ("isolation", "contract", "runner", "gates", "baselines"),
    ("report", "reference"),
    ("session", "items", "options"),
    ("plugin",),
]


def modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if package == "pytest_goni" and parts[:1] in (["models"], ["kernels"]):
                continue
            out[".".join([package, *parts])] = path
    return out


@functools.cache
def import_graph() -> dict[str, set[str]]:
    return imports(modules())


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from pkg import sub`` counts as ``pkg.sub``)."""

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[: len(here) - node.level + 1] + [node.module or ""]).strip(".") \
                    if node.level else (node.module or "")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            found |= {t for t in map(known, targets) if t and t != name}
        graph[name] = found
    return graph


def floor(module: str) -> int:
    rest = module.split(".")[1:] or ["pytest_goni"]
    for i, names in enumerate(FLOORS):
        if rest[0] in names:
            return i + 1
    raise AssertionError(f"{module} has no floor: add it to FLOORS (and to this module's docstring)")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walk_sees_the_whole_package() -> None:
    graph = import_graph()
    assert {"pytest_goni.plugin", "pytest_goni.kernels.ops", "pytest_goni.models.gla"} <= set(graph)
    assert "pytest_goni.session" in graph["pytest_goni.plugin"]
    assert "pytest_goni.units" in graph["pytest_goni.expr"]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_every_module_has_a_floor_and_imports_only_downwards() -> None:
    graph = import_graph()
    upward = [f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
              for a in sorted(graph) for b in sorted(graph[a]) if floor(b) > floor(a)]
    assert upward == []


def test_plugin_py_is_hooks_only() -> None:
    tree = ast.parse((ROOT / "pytest_goni" / "plugin.py").read_text())
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert all(isinstance(n, ast.FunctionDef) and n.name.startswith("pytest_") for n in defs)
    assert len((ROOT / "pytest_goni" / "plugin.py").read_text().splitlines()) <= 150
