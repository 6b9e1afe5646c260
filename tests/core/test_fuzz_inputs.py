"""Fuzzing the two parsers a spec author feeds: the spec loader (YAML, schema, profiles, gates)
and the gate languages (``value:`` expressions, ``expect:`` comparisons). Any input gives either
a result or one-line errors of the documented types, in bounded time and memory (issue 12).

Deterministic in CI (``derandomize``); ``GONI_FUZZ_EXAMPLES=5000`` runs a longer search locally.
"""

from __future__ import annotations

import os
import tracemalloc
import unicodedata
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pytest_goni.expect import ExpectError, parse_expect  # noqa: E402
from pytest_goni.expr import ExprError, parse  # noqa: E402
from pytest_goni.registry import REGISTRIES, load_builtins  # noqa: E402
from pytest_goni.spec import SpecError, load_spec  # noqa: E402
from pytest_goni.stats import Metric  # noqa: E402
from pytest_goni.units import UnitError  # noqa: E402

SCALE = int(os.environ.get("GONI_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=SCALE or examples, derandomize=not SCALE, database=None,
                    deadline=timedelta(seconds=2), suppress_health_check=list(HealthCheck))


SEED_SPEC = """\
goni: 1
id: fuzz
title: a spec to mutate
profiles:
  cpu: &base {n: 3, lat: 0.01, sizes: [1, 2]}
  gpu: {<<: *base, n: 4}
models:
  cand: {backend: gpt2, d_model: 64}
measurements:
  m: {kind: fuzz_kind, unit: s, values: {lat: "${profile.lat}", mem: 1}}
  t: {kind: fuzz_kind, unit: B, values: {a: 2}, timeout: 10 min}
gates:
  - id: fast
    value: m.lat * 2 + max(m.mem, m.lat) / 3
    expect: "< 100 ms"
    confidence: 0.9
    why: "cite line 3"
  - {id: within, value: m.lat, expect: "within 5% of m.lat"}
  - {id: mem, value: t.a, expect: "between 1 KiB and 2 MiB", severity: red-line}
  - {id: all, kind: checklist, of: [fast, mem]}
"""

# Fragments a hostile or careless author produces: YAML structure, anchors, tags, references,
# operators, units, huge numbers, bytes that are not UTF-8 or not printable.
FRAGMENTS = [
    "&a ", "*a", "*base", "<<: ", "!!python/object:os.system ", "!!set ", "!x ", "[", "]", "{", "}",
    ": ", "\n", "\n  ", "- ", ", ", "'", '"', "|", ">", "#", "${profile.", "${profile.n}", "${", "}",
    "1e400", "1e999999999", "-", "**", "/", "(", ")", "max(", "nan", "inf", "0", "< ", ">= 5K tok/s",
    "between ", " and ", "within 5% of ", "%", "x", " ms", " MiB", "\t", "\x00", "\x1b[31m", "\ufeff",
    "9" * 60, "id", "kind", "gates", "value", "expect", "checklist", "of", "~", "null", "yes",
]


@st.composite
def mutated_spec(draw: st.DrawFn) -> bytes:
    text = SEED_SPEC
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 12)))
        insert = draw(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)))
        text = text[:i] + insert + text[j:]
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and draw(st.booleans()):
        k = draw(st.integers(0, len(data)))
        data = data[:k] + bytes([draw(st.integers(0x80, 0xFF))]) + data[k:]
    return data


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from(FRAGMENTS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@st.composite
def retyped_spec(draw: st.DrawFn) -> bytes:
    """The seed spec with values at random key paths replaced by other data (wrong types, odd
    keys, references), dumped as YAML: exercises the schema, profile and gate stages."""
    data = yaml.safe_load(SEED_SPEC)
    for _ in range(draw(st.integers(1, 4))):
        parent, key = data, None
        for _ in range(draw(st.integers(1, 4))):
            node = parent if key is None else parent[key]
            if isinstance(node, dict) and node:
                parent, key = node, draw(st.sampled_from(sorted(node, key=str)))
            elif isinstance(node, list) and node:
                parent, key = node, draw(st.integers(0, len(node) - 1))
            else:
                break
            if not isinstance(parent[key], (dict, list)) or draw(st.booleans()):
                break
        if key is not None:
            parent[key] = draw(JSONISH)
    return yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def fuzz_kind() -> None:
    load_builtins()

    @REGISTRIES.measurement_kind(
        "fuzz_kind",
        schema={"type": "object", "additionalProperties": False,
                "properties": {"values": {"type": "object"}, "unit": {"type": "string"}}},
        metrics=lambda p: {str(k): p.get("unit", "") for k in p.get("values", {})},
    )
    def _fuzz(ctx, params):  # type: ignore[no-untyped-def]
        return {k: Metric.scalar(1.0) for k in params["values"]}


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "fuzz.yaml"


def check_load(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    tracemalloc.start()
    try:
        load_spec(path, "fuzz.yaml", "auto", cuda=False)
    except SpecError as exc:
        lines = str(exc).splitlines()
        assert lines and len(lines) == len(exc.problems)
        assert all(line.startswith("fuzz.yaml") for line in lines), lines
        assert not any(unicodedata.category(ch) == "Cc" for line in lines for ch in line), lines
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"loading took {peak / 2**20:.0f} MiB"


def test_seed_spec_loads(fuzz_kind: None, spec_file: Path) -> None:
    spec_file.write_text(SEED_SPEC)
    spec = load_spec(spec_file, "fuzz.yaml", "gpu")
    assert [g.id for g in spec.gates] == ["fast", "within", "mem", "all"] and spec.profile_vars["n"] == 4


@fuzz_settings(250)
@given(data=mutated_spec())
def test_mutated_specs_load_or_fail_in_one_line(fuzz_kind: None, spec_file: Path, data: bytes) -> None:
    check_load(spec_file, data)


@fuzz_settings(150)
@given(data=retyped_spec())
def test_retyped_specs_load_or_fail_in_one_line(fuzz_kind: None, spec_file: Path, data: bytes) -> None:
    check_load(spec_file, data)


@fuzz_settings(100)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_load_or_fail_in_one_line(fuzz_kind: None, spec_file: Path, data: bytes) -> None:
    check_load(spec_file, data)


EXPR_ALPHABET = st.sampled_from(list("abm.t_0129 +-*/()," ) + ["**", "max", "min", "log", "sqrt", "abs",
                                                              "1e400", "1e-400", "m.lat", "nan", "."])


@fuzz_settings(400)
@given(text=st.one_of(st.text(max_size=60), st.lists(EXPR_ALPHABET, max_size=40).map("".join)))
def test_expressions_parse_or_fail_in_one_line(text: str) -> None:
    try:
        expr = parse(text)
    except ExprError as exc:  # the spec loader renders it on one line (newlines in quotes escaped)
        assert exc.message and 0 <= exc.col <= len(text) + 1
        return
    assert expr.paths() is not None


EXPECT_ALPHABET = st.sampled_from(["<", ">", "=", "<=", ">=", "==", " ", "1", "5", ".", "e", "400", "9" * 30,
                                   "K", "ms", "s", "MiB", "tok/s", "%", "x", "between", "and", "within", "of",
                                   "m.lat", "true", '"', "-", "/", "e999999999"])


@fuzz_settings(400)
@given(text=st.one_of(st.text(max_size=40), st.lists(EXPECT_ALPHABET, max_size=12).map("".join)))
def test_expect_texts_parse_or_fail_in_one_line(text: str) -> None:
    try:
        parse_expect(text)
    except (ExpectError, UnitError) as exc:
        assert exc.message and (exc.col is None or 0 <= exc.col <= len(text) + 1)
