"""The spec format composed with what is registered: every measurement kind's params (selected by
``kind``), its metric keys, the model backends' config keys and the units grammar, as one JSON
Schema an editor's YAML language server uses for completion and errors, and as a catalogue for
people (``pytest --goni-kinds``, docs/SPEC-REFERENCE.md).

The plain format (``spec.schema.json``) is what the loader validates first; each kind's params
are then validated against the kind's own schema. The composed schema says both in one document,
so the editor and the plugin agree.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
import textwrap
from dataclasses import fields
from importlib import resources
from typing import Any

from .registry import REGISTRIES, Backend, MeasurementKind, Registries

COMPOSED_ID = "https://pytest-goni.dev/schema/spec-composed-1.json"
#: The built-in composed schema shipped in pytest_goni/schema/ (regenerate: python -m pytest_goni.spec_schema)
COMPOSED_FILE = "goni-spec.schema.json"
#: Keys of a ``models:`` entry the spec itself resolves (``match_params: <model>``), for any backend.
SPEC_MODEL_KEYS = {
    "backend": {"type": "string", "description": "a registered model backend or package.module:factory"},
    "match_params": {"type": ["string", "integer"],
                     "description": "another model of this spec (its parameter count is matched) or a count"},
    "match": {"enum": ["total", "non_embedding"], "description": "which parameter count match_params matches"},
}


def _first_paragraph(doc: str) -> str:
    return " ".join(textwrap.dedent(doc or "").strip().split("\n\n")[0].split())


def _metric_paragraph(kind: MeasurementKind) -> str:
    """The 'Metric keys' paragraph of the kind's module docstring, where it has one."""
    module = inspect.getmodule(kind.func)
    doc = inspect.getdoc(module) or "" if module else ""
    for para in doc.split("\n\n"):
        if re.match(r"\s*(Metric keys|Metrics|Keys)\b", para):
            return " ".join(para.split())
    return ""


def _example(schema: dict[str, Any]) -> Any:
    """A small value valid for ``schema`` (defaults first), to ask a kind which metrics it gives."""
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if schema.get(key):
            return _example(schema[key][0])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: _example(props.get(k, {})) for k in schema.get("required", [])}
    if kind == "array":
        n = max(1, int(schema.get("minItems", 1)))
        return [_example(schema.get("items", {"type": "string"})) for _ in range(n)]
    if kind in ("integer", "number"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1)
        return int(lo) if kind == "integer" else float(lo)
    if kind == "boolean":
        return False
    return "model"


def example_metrics(kind: MeasurementKind) -> dict[str, str]:
    """``metrics(params)`` for example params built from the kind's schema; {} if that fails."""
    try:
        out = kind.metrics(_example(kind.schema))
        return {str(k): str(v) for k, v in dict(out).items()}
    except Exception:  # a kind may need real params to name its metrics
        return {}


def kind_description(kind: MeasurementKind) -> str:
    text = _first_paragraph(kind.doc) or f"measurement kind {kind.name}"
    metrics = _metric_paragraph(kind)
    if not metrics:
        ex = example_metrics(kind)
        if ex:
            shown = ", ".join(f"{k} ({u or 'plain'})" for k, u in list(ex.items())[:12])
            metrics = f"Metric keys for example params: {shown}" + (" ..." if len(ex) > 12 else "")
    cuda = " Needs CUDA (its gates skip without it)." if kind.requires_cuda else ""
    return f"{text}{cuda}" + (f" {metrics}" if metrics else "")


def kind_params_schema(kind: MeasurementKind, base_item: dict[str, Any]) -> dict[str, Any]:
    """The kind's params schema, also allowing the measurement keys every kind has."""
    schema = copy.deepcopy(kind.schema) if isinstance(kind.schema, dict) else {}
    props = schema.setdefault("properties", {})
    props["kind"] = {"const": kind.name, "description": kind_description(kind)}
    props["timeout"] = copy.deepcopy(base_item["properties"]["timeout"])
    schema.setdefault("type", "object")
    return schema


def backend_keys(backend: Backend) -> list[str] | None:
    """The config keys a backend accepts, read from the error it raises for an unknown key (the
    models/ contract: a ConfigError naming the allowed ones), plus keys its docstring names in
    double backticks (a factory may take some before that check, as gpt2's ``pretrained``);
    None when it does not say."""
    try:
        backend.factory(_goni_probe_key_=1)
    except Exception as exc:  # noqa: BLE001 - only the message is read
        match = re.search(r"allowed: ([\w, ]+)$", str(exc))
        if match:
            keys = [k.strip() for k in match.group(1).split(",") if k.strip()]
            named = re.findall(r"``([a-z_][a-z0-9_]*)``", backend.doc or "")
            return keys + [k for k in dict.fromkeys(named) if k not in keys]
    return None


def _common_model_keys() -> dict[str, Any]:
    try:
        from .models.base import SIZES, ModelConfig
    except Exception:  # models need torch; without it the common keys are not described
        return {}
    types = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}
    out: dict[str, Any] = {}
    for f in fields(ModelConfig):
        names = [t.strip() for t in str(f.type).split("|")]
        json_types = [types[n] for n in names if n in types] + (["null"] if "None" in names else [])
        out[f.name] = {"type": json_types if len(json_types) > 1 else json_types[0]} if json_types else {}
        out[f.name]["description"] = f"common key (default {f.default!r})"
    out["size"] = {"enum": list(SIZES), "description": "a V5 preset: the seed's depth and width"}
    return out


def backend_schema(backend: Backend, common: dict[str, Any]) -> dict[str, Any]:
    keys = backend_keys(backend)
    props: dict[str, Any] = {"backend": {"const": backend.name, "description": _first_paragraph(backend.doc)}}
    props.update({k: v for k, v in SPEC_MODEL_KEYS.items() if k != "backend"})
    if keys is None:
        return {"properties": props}
    for key in keys:
        props.setdefault(key, copy.deepcopy(common.get(key, {"description": f"{backend.name}'s own key"})))
    return {"properties": props, "additionalProperties": False}


def units_description() -> str:
    from .units import _KNOWN_SPELLINGS

    return ("A threshold: a number (optionally with a K/M/G/T multiplier right after it: 5K, 3.5M) and a unit. "
            "Units: " + ", ".join(u for u in _KNOWN_SPELLINGS if u) + "; 'x' or nothing for a ratio, '%' for a "
            "percent. Forms: '< 100 ms', '>= 5K tok/s', '<= 1.15', 'between 0.3 and 0.4', "
            "'within 5% of other.metric', '== true'. The unit's dimension must match the value's.")


#: A whole-value ``${profile.NAME}`` reference: the loader substitutes it (any type) before it
#: validates, so in the YAML an editor sees, any value under measurements, models and gates may be one.
PROFILE_REF = {"type": "string", "pattern": r"^\s*\$\{profile\.[^}]+\}\s*$",
               "description": "a value of the active profile, ${profile.NAME}"}


def allow_refs_inside(schema: dict[str, Any]) -> dict[str, Any]:
    """A mapping's schema whose values (not the mapping itself) also accept profile references, so
    an error still names the key at fault."""
    out = dict(schema)
    for key in ("properties", "patternProperties"):
        if isinstance(out.get(key), dict):
            out[key] = {k: allow_refs(v) for k, v in out[key].items()}
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = allow_refs(out["additionalProperties"])
    if isinstance(out.get("allOf"), list):
        out["allOf"] = [dict(c, then=allow_refs_inside(c["then"])) if isinstance(c.get("then"), dict) else c
                        for c in out["allOf"]]
    return out


def allow_refs(schema: Any) -> Any:
    """``schema`` with every constrained value (recursively) also accepting a profile reference."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("properties", "patternProperties", "$defs"):
        if isinstance(out.get(key), dict):
            out[key] = {k: allow_refs(v) for k, v in out[key].items()}
    for key in ("items", "additionalProperties", "then", "else"):
        if isinstance(out.get(key), dict):
            out[key] = allow_refs(out[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [allow_refs(v) for v in out[key]]
    if any(k in out for k in ("type", "enum", "const", "pattern", "minimum", "anyOf", "oneOf")) and \
            out.get("type") != "string" and "const" not in out:
        desc = out.pop("description", None)
        wrapped: dict[str, Any] = {"anyOf": [out, {"$ref": "#/$defs/profile_ref"}]}
        if desc:
            wrapped["description"] = desc
        return wrapped
    return out


def composed_schema(registries: Registries = REGISTRIES) -> dict[str, Any]:
    """The spec schema with every registered kind and backend spelled out (see the module doc)."""
    from .spec import spec_schema

    schema = copy.deepcopy(spec_schema())
    schema["$id"] = COMPOSED_ID
    schema["title"] = "pytest-goni spec, format 1, with the registered measurement kinds and model backends"
    kinds = sorted(registries.kinds.values(), key=lambda k: k.name)
    item = schema["properties"]["measurements"]["additionalProperties"]
    item["properties"]["kind"] = {
        "enum": [k.name for k in kinds],
        "description": "a registered measurement kind: " + "; ".join(
            f"{k.name}: {_first_paragraph(k.doc)}" for k in kinds)}
    item["allOf"] = [{"if": {"properties": {"kind": {"const": k.name}}, "required": ["kind"]},
                      "then": allow_refs_inside(kind_params_schema(k, item))} for k in kinds]
    common = _common_model_keys()
    backends = sorted(registries.backends.values(), key=lambda b: b.name)
    model = schema["properties"]["models"]["additionalProperties"]
    model["properties"] = {**copy.deepcopy(SPEC_MODEL_KEYS), **copy.deepcopy(common)}
    model["properties"]["backend"] = {
        "anyOf": [{"enum": [b.name for b in backends]}, {"type": "string", "pattern": r"^[\w.]+:\w+$"}],
        "description": "a registered model backend (" + ", ".join(b.name for b in backends)
                       + ") or package.module:factory"}
    model["allOf"] = [{"if": {"properties": {"backend": {"const": b.name}}, "required": ["backend"]},
                       "then": allow_refs_inside(backend_schema(b, common))} for b in backends]
    model["properties"] = allow_refs_inside({"properties": model["properties"]})["properties"]
    schema["$defs"]["profile_ref"] = PROFILE_REF
    gate = schema["$defs"]["gate"]["properties"]
    gate["expect"]["description"] = units_description()
    gate["value"]["description"] = ("an expression over metric paths <measurement>.<key> (see each kind's "
                                    "metric keys): numbers, + - * / **, min max abs log sqrt")
    schema["$defs"]["gate"] = allow_refs_inside(schema["$defs"]["gate"])
    return schema


def builtin_registries() -> Registries:
    """The built-in kinds, backends and ops only (no conftest or plugin entries)."""
    from .registry import load_builtins

    load_builtins()
    own = Registries()
    for reg, mine in ((REGISTRIES.kinds, own.kinds), (REGISTRIES.backends, own.backends), (REGISTRIES.ops, own.ops)):
        for name, entry in reg.items():
            if _is_builtin(entry):
                mine[name] = entry
    return own


def builtin_composed_schema() -> dict[str, Any]:
    """The composed schema of the built-in kinds and backends (what the package ships)."""
    return composed_schema(builtin_registries())


def _is_builtin(entry: Any) -> bool:
    func = getattr(entry, "func", None) or getattr(entry, "factory", None) or getattr(entry, "fn", None)
    return getattr(func, "__module__", "").startswith("pytest_goni.")


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=False) + "\n"


def shipped_composed_schema() -> str:
    return resources.files("pytest_goni.schema").joinpath(COMPOSED_FILE).read_text()


if __name__ == "__main__":
    from pathlib import Path

    Path(__file__).parent.joinpath("schema", COMPOSED_FILE).write_text(dumps(builtin_composed_schema()))
