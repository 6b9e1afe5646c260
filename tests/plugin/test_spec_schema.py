"""The composed spec schema and the spec reference (issue 18): current with the registry, every
shipped spec valid under it, its errors the plugin's errors, plugin kinds included."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_goni.reference import REFERENCE_PATH
from pytest_goni.registry import Registries
from pytest_goni.spec_schema import COMPOSED_FILE, builtin_registries, composed_schema
from pytest_goni.yaml_positions import load_with_marks

jsonschema = pytest.importorskip("jsonschema")
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "pytest_goni" / "schema" / COMPOSED_FILE
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def validator(schema: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def errors(schema: dict, text: str) -> list[tuple[list, str]]:
    data, _ = load_with_marks(text)
    return [(list(e.absolute_path), e.message) for e in validator(schema).iter_errors(data)]


def _fresh(code: str) -> str:
    """Output of ``code`` in a fresh interpreter: the built-in registry, untouched by this test
    process's other tests (which register kinds of their own)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_shipped_schema_is_current_with_the_registry() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SHIPPED.read_text()))
    now = _fresh("import sys; from pytest_goni.spec_schema import builtin_composed_schema, dumps; "
                 "sys.stdout.write(dumps(builtin_composed_schema()))")
    assert SHIPPED.read_text().splitlines() == now.splitlines(), "regenerate: python -m pytest_goni.spec_schema"


def test_the_spec_reference_is_current_with_the_registry() -> None:
    now = _fresh("import sys; from pytest_goni.reference import reference_markdown; "
                 "from pytest_goni.spec_schema import builtin_registries; "
                 "sys.stdout.write(reference_markdown(builtin_registries()))")
    assert (ROOT / REFERENCE_PATH).read_text().splitlines() == now.splitlines(), \
        "regenerate: python -m pytest_goni.reference"


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_shipped_spec_validates_and_points_editors_at_the_schema(path: Path) -> None:
    text = path.read_text()
    assert text.splitlines()[0] == f"# yaml-language-server: $schema=../pytest_goni/schema/{COMPOSED_FILE}"
    assert (path.parent / f"../pytest_goni/schema/{COMPOSED_FILE}").resolve() == SHIPPED
    assert errors(json.loads(SHIPPED.read_text()), text) == []


DEMO = (ROOT / "specs" / "demo.yaml").read_text()


@pytest.mark.parametrize(("change", "path", "what"), [
    (("    warmup: 3", "    warmup: 3\n    repz: 3"), ["measurements", "attn"], "'repz' was unexpected"),
    (("    warmup: 3", "    warmup: five"), ["measurements", "attn", "warmup"], "five"),
    (("    kind: op_bench", "    kind: op_bnech"), ["measurements", "attn", "kind"], "op_bnech"),
    (("goni: 1", "goni: 1\nbogus: 2"), [], "'bogus' was unexpected"),
])
def test_a_misspelt_or_mistyped_param_is_rejected_with_its_path(change: tuple[str, str], path: list,
                                                                 what: str) -> None:
    assert change[0] in DEMO
    found = errors(json.loads(SHIPPED.read_text()), DEMO.replace(change[0], change[1], 1))
    assert any(p == path and what in m for p, m in found), found


def _malformed_cases() -> dict:
    spec = importlib.util.spec_from_file_location("malformed", Path(__file__).with_name("test_plugin_spec_errors.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.CASES


def _with_fake_kind() -> dict:
    regs = builtin_registries()
    own = Registries()
    own.kinds.update(regs.kinds)
    own.backends.update(regs.backends)

    @own.measurement_kind("fake", schema={"type": "object", "additionalProperties": False,
                                          "properties": {"values": {"type": "object"}, "unit": {"type": "string"},
                                                         "samples": {"type": "integer", "minimum": 1},
                                                         "models": {"type": "array"}}},
                          metrics=lambda p: {k: p.get("unit", "") for k in p.get("values", {})})
    def fake(ctx, params):  # type: ignore[no-untyped-def]
        return {}

    return composed_schema(own)


SCHEMA_CASES = ("wrong-type", "unknown-key", "unknown-kind", "unknown-profile-key")


def test_the_malformed_spec_cases_that_are_schema_errors_fail_the_schema() -> None:
    cases, schema = _malformed_cases(), _with_fake_kind()
    base = cases["wrong-type"][0].replace("goni: 1\ntitle: [not, a, string]", "goni: 1")
    assert errors(schema, base) == []  # the malformed cases' base spec is valid
    for name in SCHEMA_CASES:
        assert errors(schema, cases[name][0]), name


def test_profile_references_are_allowed_where_the_loader_substitutes_them() -> None:
    schema = copy.deepcopy(json.loads(SHIPPED.read_text()))
    text = DEMO.replace("    warmup: 3", "    warmup: '${profile.warmup}'", 1)
    assert "${profile.warmup}" in text and errors(schema, text) == []


CONFTEST = '''
from pytest_goni.stats import Metric

def pytest_goni_register(registries):
    @registries.measurement_kind("frobnicate", schema={"type": "object", "additionalProperties": False,
                                 "required": ["level"],
                                 "properties": {"level": {"type": "integer", "minimum": 1, "default": 3,
                                                          "description": "how hard"}}},
                                 metrics=lambda p: {"speed": "tok/s"})
    def frobnicate(ctx, params):
        """Frobnicates at a level and reports the speed."""
        return {"speed": Metric.scalar(1.0, "tok/s")}
'''


def test_a_conftest_kind_appears_in_goni_kinds_and_the_exported_schema(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    res = pytester.runpytest("--goni-kinds")
    assert res.ret == 0
    res.stdout.fnmatch_lines(["frobnicate*", "*Frobnicates at a level*", "*- level: integer >= 1 (required)*how hard*",
                              "*metrics: For example params: `speed` (tok/s)*"])
    assert "op_bench" in res.stdout.str()
    res = pytester.runpytest("--goni-schema", "out.json")
    assert res.ret == 0 and "spec schema written to" in res.stdout.str()
    schema = json.loads((pytester.path / "out.json").read_text())
    spec = ("goni: 1\nid: f\nmeasurements:\n  m: {kind: frobnicate, level: 0}\n"
            "gates:\n  - {id: g, value: m.speed, expect: '> 1 tok/s'}\n")
    found = errors(schema, spec)
    assert any(p == ["measurements", "m", "level"] for p, _ in found), found
    assert errors(schema, spec.replace("level: 0", "level: 2")) == []
