"""Loading a spec: YAML with positions, profiles and ``${}`` references, schema validation,
measurement-kind params, model references and gate compilation — all before any test runs.

Every problem becomes a :class:`SpecError` whose lines read ``file:line:col: key.path: what``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from .parts import Split, plan_split
from .registry import REGISTRIES, UnknownName, explain_unknown
from .yaml_positions import (
    KeyPath,
    Mark,
    YamlLoadError,
    format_path,
    load_with_marks,
    nearest_mark,
    printable,
    read_spec_text,
)

#: Keys a measurement's YAML mapping holds besides the kind's own params.
MEASUREMENT_RESERVED = ("kind", "timeout")
#: Property annotation in a kind's params schema marking values that name models of the spec.
MODEL_REF = "x-goni-ref"
_REF = re.compile(r"\$\{([^}]*)\}")


@dataclass
class Problem:
    line: int
    col: int
    path: str
    message: str

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}:{self.col}" if self.line else file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return printable(text).replace("\n", "\\n").replace("\r", "\\r")


class SpecError(Exception):
    """One or more problems in one spec file; ``str()`` is one line per problem."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file, self.problems = file, problems
        super().__init__("\n".join(p.render(file) for p in problems))


@dataclass
class MeasurementSpec:
    name: str
    kind: str
    params: dict[str, Any]
    timeout_s: float
    mark: Mark
    requires_cuda: bool
    split: Split | None = None  # its parts, when the kind declares a split axis (parts.py)


@dataclass
class GateSpec:
    id: str
    raw: dict[str, Any]
    mark: Mark
    compiled: Any  # judge.CompiledGate, or None for checklists
    measurements: set[str]
    severity: str = "normal"
    requires: str | None = None
    profiles: list[str] | None = None
    of: list[str] = field(default_factory=list)

    @property
    def is_checklist(self) -> bool:
        return self.raw.get("kind") == "checklist"


@dataclass
class Spec:
    path: Path
    display_path: str
    id: str
    title: str
    source: str
    profile: str
    profile_vars: dict[str, Any]
    models: dict[str, dict[str, Any]]
    measurements: dict[str, MeasurementSpec]
    gates: list[GateSpec]
    metric_units: dict[str, str]
    config_hash: str
    lines: list[str]
    id_mark: Mark = field(default_factory=lambda: Mark(1, 1, 1))

    def gate_yaml(self, gate: GateSpec) -> str:
        """The YAML lines of one gate, numbered, for failure panels (up to its next sibling)."""
        lo, hi = gate.mark.line, min(max(gate.mark.end_line, gate.mark.line), len(self.lines))
        indent = _indent(self.lines[lo - 1])
        out = []
        for n in range(lo, hi + 1):
            line = self.lines[n - 1]
            if n > lo and line.strip() and _indent(line) <= indent:
                break
            if line.strip():
                out.append(f"{n:>4} | {line}")
        return "\n".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


@cache
def spec_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) shipped in the package: the one truth of the format."""
    return json.loads(resources.files("pytest_goni.schema").joinpath("spec.schema.json").read_text())


def choose_profile(requested: str, available: list[str], cuda: bool) -> str:
    """``auto`` is ``gpu`` with a usable CUDA device, else ``cpu`` (whichever the spec defines)."""
    if requested != "auto":
        return requested
    order = ["gpu", "cpu"] if cuda else ["cpu"]
    for name in order:
        if name in available:
            return name
    return available[0] if available else ("gpu" if cuda else "cpu")


def profile_names(path: Path) -> list[str]:
    """The profiles a spec file defines; [] when it cannot be read (collection reports why)."""
    try:
        data, _ = load_with_marks(read_spec_text(path))
    except (OSError, YamlLoadError):
        return []
    profiles = data.get("profiles") if isinstance(data, dict) else None
    return [str(k) for k in profiles] if isinstance(profiles, dict) else []


def load_spec(path: Path, display_path: str, profile: str = "auto", cuda: bool = False) -> Spec:
    """Load and fully validate one spec; raise :class:`SpecError` naming every problem's place."""
    loader = _Loader(path, display_path)
    return loader.load(profile, cuda)


class _Loader:
    def __init__(self, path: Path, display_path: str):
        self.path, self.display = path, display_path
        self.marks: dict[KeyPath, Mark] = {}
        self.problems: list[Problem] = []
        self.lines: list[str] = []
        self.profile = ""

    # -- error helpers ---------------------------------------------------------------------------
    def problem(self, path: KeyPath, message: str, col_offset: int | None = None) -> None:
        """Record a problem at ``path``; ``col_offset`` points inside a one-line scalar value."""
        m = nearest_mark(self.marks, path)
        col = m.col
        if col_offset is not None and m.end_line <= m.line and 0 < m.line <= len(self.lines):
            quoted = self.lines[m.line - 1][m.col - 1:m.col] in ("'", '"')
            col = m.col + col_offset + (1 if quoted else 0)
        self.problems.append(Problem(m.line, col, format_path(path), message))

    def fail_if_problems(self) -> None:
        if self.problems:
            raise SpecError(self.display, self.problems)

    # -- stages ----------------------------------------------------------------------------------
    def load(self, requested_profile: str, cuda: bool) -> Spec:
        if self.path.is_dir():
            raise SpecError(self.display, [Problem(0, 0, "", "is a directory, not a spec file")])
        if not self.path.is_file():
            raise SpecError(self.display, [Problem(0, 0, "", "spec file not found")])
        try:
            text = read_spec_text(self.path)
            self.lines = text.splitlines()
            data, self.marks = load_with_marks(text)
        except OSError as exc:
            raise SpecError(self.display, [Problem(0, 0, "", f"cannot read: {exc.strerror or exc}")]) from None
        except YamlLoadError as exc:
            raise SpecError(self.display, [Problem(exc.line, exc.col, "", exc.message)]) from None
        if data is None or data == {}:
            raise SpecError(self.display, [Problem(1, 1, "", "empty spec (expected a mapping with goni, id, "
                                                               "measurements and gates)")])
        if not isinstance(data, dict):
            raise SpecError(self.display, [Problem(1, 1, "", f"a spec is a mapping, got {_kind(data)}")])

        profile, profile_vars = self.pick_profile(data, requested_profile, cuda)
        self.profile = profile
        self.fail_if_problems()
        profile_vars = self.resolve_profile_vars(profile, profile_vars)
        self.fail_if_problems()
        resolved = {k: (v if k == "profiles" else self.substitute(v, (k,), profile, profile_vars))
                    for k, v in data.items()}
        self.fail_if_problems()
        self.validate_schema(resolved)
        self.fail_if_problems()

        models = resolved.get("models") or {}
        self.check_models(models)
        measurements, metric_units = self.check_measurements(resolved["measurements"], models)
        self.fail_if_problems()
        gates = self.compile_gates(resolved["gates"], metric_units, measurements)
        self.fail_if_problems()
        canonical = json.dumps({k: v for k, v in resolved.items() if k != "profiles"}, sort_keys=True,
                               default=str)
        return Spec(
            path=self.path, display_path=self.display, id=resolved["id"], title=resolved.get("title", ""),
            source=resolved.get("source", ""), profile=profile, profile_vars=profile_vars, models=models,
            measurements=measurements, gates=gates, metric_units=metric_units,
            config_hash=hashlib.sha256(f"{profile}\n{canonical}".encode()).hexdigest()[:16],
            lines=self.lines, id_mark=nearest_mark(self.marks, ("id",)),
        )

    def pick_profile(self, data: dict, requested: str, cuda: bool) -> tuple[str, dict[str, Any]]:
        profiles = data.get("profiles") or {}
        if not isinstance(profiles, dict):
            self.problem(("profiles",), f"expected a mapping of profile name -> values, got {_kind(profiles)}")
            return requested, {}
        for name, values in profiles.items():
            if not isinstance(values, dict):
                self.problem(("profiles", name), f"expected a mapping of values, got {_kind(values)}")
        name = choose_profile(requested, list(profiles), cuda)
        if profiles and name not in profiles:
            self.problem(("profiles",), f"profile {name!r} is not defined here; defined: {', '.join(profiles)}")
            return name, {}
        values = profiles.get(name)
        return name, dict(values) if isinstance(values, dict) else {}

    def resolve_profile_vars(self, profile: str, raw: dict[str, Any]) -> dict[str, Any]:
        """The profile's values with their own ``${profile.x}`` references resolved; a value that
        reaches itself is reported as a cycle (``a -> b -> a``), not as a type error later."""
        done: dict[str, Any] = {}
        active: list[str] = []

        def top(var: str) -> Any:
            if var in done:
                return done[var]
            if var in active:
                raise _ProfileCycle(active[active.index(var):] + [var])
            active.append(var)
            try:
                done[var] = self.substitute(raw[var], ("profiles", profile, var), profile, raw, top)
            finally:
                active.pop()
            return done[var]

        for var in raw:
            try:
                top(var)
            except _ProfileCycle as cycle:
                chain = " -> ".join(f"${{profile.{v}}}" for v in cycle.chain)
                self.problem(("profiles", profile, cycle.chain[0]), f"cycle in profile references: {chain}")
                done.update({v: None for v in cycle.chain})
        return done

    def substitute(self, value: Any, path: KeyPath, profile: str, pvars: dict[str, Any],
                   top: Callable[[str], Any] | None = None) -> Any:
        """Replace ``${profile.x}``: a whole-string reference keeps the value's type. ``top``
        resolves a profile variable on first use (while the profile's own values are resolved)."""
        if isinstance(value, dict):
            return {k: self.substitute(v, path + (k,), profile, pvars, top) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, path + (i,), profile, pvars, top) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _REF.fullmatch(value.strip())
        if whole:
            return self.lookup_ref(whole.group(1), path, profile, pvars, top)
        return _REF.sub(lambda m: str(self.lookup_ref(m.group(1), path, profile, pvars, top)), value)

    def lookup_ref(self, ref: str, path: KeyPath, profile: str, pvars: dict[str, Any],
                   top: Callable[[str], Any] | None = None) -> Any:
        parts = ref.strip().split(".")
        if parts[0] != "profile" or len(parts) < 2:
            self.problem(path, f"unresolvable ${{{ref}}}: only ${{profile.NAME}} references are supported")
            return None
        cur: Any = pvars
        for i, part in enumerate(parts[1:], 1):
            if not isinstance(cur, dict) or part not in cur:
                known = ", ".join(sorted(map(str, cur))) if isinstance(cur, dict) else "nothing"
                close = difflib.get_close_matches(part, list(map(str, cur)) if isinstance(cur, dict) else [], n=1)
                hint = f" (did you mean {'.'.join(parts[:i] + [close[0]])!r}?)" if close else ""
                self.problem(path, f"unresolvable ${{{ref}}}: profile {profile!r} has no "
                                   f"{'.'.join(parts[1:i + 1])!r}{hint}; it has: {known}")
                return None
            cur = top(part) if i == 1 and top is not None else cur[part]
        return cur

    def validate_schema(self, data: dict) -> None:
        self.report_schema_errors(spec_schema(), data, ())

    def report_schema_errors(self, schema: dict, data: Any, prefix: KeyPath) -> None:
        validator = jsonschema.Draft202012Validator(schema)
        found: list[tuple[KeyPath, str, str | None]] = []
        for err in sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.message))):
            for path, msg, meant in _explain(err):
                if (prefix + path, msg) not in {(p, m) for p, m, _ in found}:
                    found.append((prefix + path, msg, meant))
        # A misspelt key is also a missing one: say "unknown key 'expcet' (did you mean 'expect'?)"
        # first and drop "missing required key 'expect'" for the key it was meant to be.
        meant_here = {(path[:-1], meant) for path, _, meant in found if meant}
        unknown_first = sorted(found, key=lambda f: not f[1].startswith("unknown key"))
        for path, msg, _ in unknown_first:
            missing = _MISSING.fullmatch(msg)
            if missing and (path, missing.group(1)) in meant_here:
                continue
            self.problem(path, msg)

    def check_models(self, models: dict) -> None:
        for name, cfg in models.items():
            backend = cfg.get("backend")
            if isinstance(backend, str) and ":" not in backend and backend not in REGISTRIES.backends:
                # known by name: a built-in backend's module (and torch) is imported when a model is built
                self.problem(("models", name, "backend"),
                             explain_unknown("model backend", backend, REGISTRIES.backends.names()))
            ref = cfg.get("match_params")
            if ref is not None and ref not in models:
                self.problem(("models", name, "match_params"), _undefined("model", ref, models))

    def check_measurements(self, defs: dict, models: dict) -> tuple[dict[str, MeasurementSpec], dict[str, str]]:
        out: dict[str, MeasurementSpec] = {}
        units: dict[str, str] = {}
        for name, mdef in defs.items():
            path = ("measurements", name)
            try:
                kind = REGISTRIES.kinds.get_or_explain(mdef["kind"])
            except UnknownName as exc:
                self.problem(path + ("kind",), str(exc))
                continue
            params = {k: v for k, v in mdef.items() if k not in MEASUREMENT_RESERVED}
            before = len(self.problems)
            self.report_schema_errors(kind.schema, params, path)
            if len(self.problems) > before:
                continue
            self.check_model_refs(kind.schema, params, path, models)
            timeout = self.parse_timeout(mdef.get("timeout"), kind.default_timeout_s, path + ("timeout",))
            try:
                declared = dict(kind.metrics(params))
            except Exception as exc:  # a kind's metrics() rejecting params is a spec error
                self.problem(path, f"{mdef['kind']}: {exc}")
                continue
            units.update({f"{name}.{key}": unit for key, unit in declared.items()})
            out[name] = MeasurementSpec(name, kind.name, params, timeout, nearest_mark(self.marks, path),
                                        kind.requires_cuda, plan_split(kind, params))
        return out, units

    def check_model_refs(self, schema: dict, params: dict, path: KeyPath, models: dict) -> None:
        """Params naming models (``x-goni-ref: model``, else ``model``/``models``) must name models of
        the spec: a string, a list of strings, or entries like ``{model: NAME, label: ...}``."""
        annotated = {k for k, p in schema.get("properties", {}).items() if p.get(MODEL_REF) == "model"}
        for key in sorted((annotated or {"model", "models"}) & params.keys()):
            value = params[key]
            entries = value if isinstance(value, list) else [value]
            for i, entry in enumerate(entries):
                where = path + (key,) + ((i,) if isinstance(value, list) else ())
                if isinstance(entry, dict):
                    entry, where = entry.get("model"), where + ("model",)
                if isinstance(entry, str) and entry not in models:
                    self.problem(where, _undefined("model", entry, models))

    def parse_timeout(self, value: Any, default: float, path: KeyPath) -> float:
        if value is None:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        from .units import UnitError, parse_quantity, unit

        try:
            seconds, dim = parse_quantity(str(value))
            if dim != unit("s")[1] or seconds <= 0:
                raise UnitError("not a positive time")
            return seconds
        except (UnitError, ValueError):
            self.problem(path, f"{value!r} is not a timeout (try 600 or '10 min')")
            return default

    def compile_gates(self, raw_gates: list, metric_units: dict[str, str],
                      measurements: dict[str, MeasurementSpec]) -> list[GateSpec]:
        from .gate_kinds import compile_gate
        from .judge import GateSpecError

        ids = [g["id"] for g in raw_gates]
        gates: list[GateSpec] = []
        first_seen: dict[str, int] = {}
        for i, raw in enumerate(raw_gates):
            path = ("gates", i)
            if raw["id"] in first_seen:
                self.problem(path + ("id",), f"duplicate gate id {raw['id']!r} (first used by gates"
                                             f"[{first_seen[raw['id']]}], line "
                                             f"{nearest_mark(self.marks, ('gates', first_seen[raw['id']])).line})")
                continue
            first_seen[raw["id"]] = i
            compiled, used = None, set()
            if raw.get("profiles") and self.profile not in raw["profiles"]:
                pass  # judged (and its metric paths checked) only in its own profiles; skipped here
            elif raw.get("kind") == "checklist":
                for j, ref in enumerate(raw["of"]):
                    if ref not in ids:
                        self.problem(path + ("of", j), _undefined("gate", ref, ids))
                    elif ref == raw["id"]:
                        self.problem(path + ("of", j), "a checklist cannot list itself")
            else:
                try:
                    compiled = compile_gate(raw, metric_units)
                except GateSpecError as exc:
                    key = exc.key if exc.key in raw else None
                    self.problem(path + ((key,) if key else ()), exc.message, col_offset=exc.col)
                    continue
                used = set(compiled.measurements)
                for m in sorted(used - set(measurements)):
                    self.problem(path, _undefined("measurement", m, measurements))
            gates.append(GateSpec(
                id=raw["id"], raw=raw, mark=nearest_mark(self.marks, path), compiled=compiled,
                measurements=used, severity=raw.get("severity", "normal"), requires=raw.get("requires"),
                profiles=raw.get("profiles"), of=list(raw.get("of", [])),
            ))
        self.check_checklist_cycles(gates)
        return gates

    def check_checklist_cycles(self, gates: list[GateSpec]) -> None:
        of = {g.id: g.of for g in gates}
        index = {g.id: i for i, g in enumerate(gates)}

        def reaches(start: str, target: str, seen: set[str]) -> bool:
            for ref in of.get(start, []):
                if ref == target or (ref not in seen and (seen.add(ref) or reaches(ref, target, seen))):
                    return True
            return False

        for g in gates:
            if g.of and reaches(g.id, g.id, set()):
                self.problem(("gates", index[g.id], "of"), f"checklist {g.id!r} depends on itself through "
                                                           "its evidence gates")


class _ProfileCycle(Exception):
    def __init__(self, chain: list[str]):
        super().__init__(" -> ".join(chain))
        self.chain = chain


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _undefined(what: str, name: str, known: Any) -> str:
    return explain_unknown(what, str(name), known, adjective="undefined", listed="defined")


_JSON_TYPES = {"object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
               "integer": "an integer", "boolean": "true/false", "null": "nothing"}


_MISSING = re.compile(r"missing required key '(.*)'")


def _explain(err: jsonschema.ValidationError) -> list[tuple[KeyPath, str, str | None]]:
    """Turn one jsonschema error into plain-words problems at the right key paths; the third
    item is the key a misspelt one was probably meant to be."""
    path = tuple(err.absolute_path)
    v, inst, sch = err.validator, err.instance, err.schema
    if v == "additionalProperties" and isinstance(inst, dict):
        allowed = list(sch.get("properties", {}))
        out: list[tuple[KeyPath, str, str | None]] = []
        for key in inst:
            if key in allowed or any(re.search(p, str(key)) for p in sch.get("patternProperties", {})):
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append((path + (key,), f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}",
                        close[0] if close else None))
        return out
    return [(p, m, None) for p, m in _explain_one(path, err)]


def _explain_one(path: KeyPath, err: jsonschema.ValidationError) -> list[tuple[KeyPath, str]]:
    v, inst, sch = err.validator, err.instance, err.schema
    if v == "required":
        missing = [k for k in sch.get("required", []) if k not in inst] if isinstance(inst, dict) else []
        return [(path, f"missing required key {k!r}") for k in missing] or [(path, err.message)]
    if v == "type":
        want = sch["type"] if isinstance(sch["type"], list) else [sch["type"]]
        return [(path, f"expected {' or '.join(_JSON_TYPES.get(t, t) for t in want)}, got {_kind(inst)} {inst!r}")]
    if v == "enum":
        return [(path, f"{inst!r} is not one of: {', '.join(map(str, sch['enum']))}")]
    if v == "const":
        return [(path, f"must be {sch['const']!r}, got {inst!r}")]
    if v == "pattern":
        return [(path, f"{inst!r} is not a valid name (must match {sch['pattern']})")]
    if v == "propertyNames":
        return [(path, f"invalid name {inst!r}: {err.message}")]
    if v in ("minProperties", "minItems"):
        return [(path, "must not be empty")]
    desc = sch.get("description") if isinstance(sch, dict) else None
    return [(path, err.message + (f" ({desc})" if desc else ""))]
