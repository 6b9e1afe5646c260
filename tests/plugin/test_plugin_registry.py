"""How third parties add kinds and backends: the entry-point group and module:factory names."""

from __future__ import annotations

import pytest

from pytest_goni import registry
from pytest_goni.registry import REGISTRIES, UnknownName, resolve_backend


class _EntryPoint:
    def __init__(self, obj):
        self.obj = obj

    def load(self):
        return self.obj


def test_entry_point_plugins_receive_the_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def plugin(regs):
        seen.append(regs)

        @regs.measurement_kind("from_entry_point", schema={"type": "object"}, metrics=lambda p: {"x": ""})
        def kind(ctx, params):
            return {}

    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "_declared", False)  # entry points run where built-ins are declared
    monkeypatch.setattr(registry, "entry_points", lambda group: [_EntryPoint(plugin)] if group == "pytest_goni" else [])
    registry.load_builtins()
    assert seen == [REGISTRIES]
    assert "from_entry_point" in REGISTRIES.kinds
    REGISTRIES.kinds.pop("from_entry_point")


def test_backend_named_by_module_and_factory() -> None:
    assert resolve_backend("collections:OrderedDict")() == {}
    with pytest.raises(UnknownName, match="cannot import model factory 'nope.nothing:f'"):
        resolve_backend("nope.nothing:f")


def test_unknown_names_suggest_the_closest_known_one() -> None:
    registry.load_builtins()
    with pytest.raises(UnknownName, match=r"unknown model backend 'gpt3' \(did you mean 'gpt2'\?\)"):
        resolve_backend("gpt3")


def test_a_clash_is_an_error_naming_both_origins() -> None:
    regs = registry.Registries()

    @regs.backend("twin")
    def first(**config):
        return "first"

    with pytest.raises(registry.RegistryClash) as info:
        @regs.backend("twin")
        def second(**config):
            return "second"

    here = "tests/plugin/test_plugin_registry.py"
    first_line, second_line = first.__code__.co_firstlineno, first.__code__.co_firstlineno + 5
    msg = str(info.value)
    assert f"{here}:{first_line}" in msg and f"{here}:{second_line}" in msg and "replace=True" in msg
    assert regs.backends.origin("twin") == f"{here}:{first_line}"

    @regs.backend("twin", replace=True)
    def third(**config):
        return "third"

    assert regs.backends["twin"].factory is third


def test_the_same_code_registering_again_replaces_silently() -> None:
    regs = registry.Registries()
    for _ in range(2):  # a module or conftest.py imported anew
        regs.op("same", make_inputs=lambda *a: (), flops=lambda s: 0, bytes=lambda s: 0)(lambda: None)
    assert regs.ops.origin("same").startswith("tests/plugin/test_plugin_registry.py:")


def test_builtin_kinds_know_where_their_code_is() -> None:
    registry.load_builtins()
    assert "pytest_goni/measurements/op_bench.py:" in REGISTRIES.kinds.origin("op_bench")  # restored


CLASHING_CONFTEST = '''
def pytest_goni_register(registries):
    @registries.measurement_kind("op_bench", schema={"type": "object"}, metrics=lambda p: {"x": ""})
    def my_op_bench(ctx, params):
        return {}
'''


def test_a_plugin_clashing_with_a_builtin_kind_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CLASHING_CONFTEST)
    pytester.path.joinpath("s.yaml").write_text("goni: 1\nid: s\nmeasurements: {}\ngates: []\n")
    res = pytester.runpytest("--goni-spec", "s.yaml")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    err = res.stderr.str()
    assert "measurement kind 'op_bench' is registered twice" in err
    assert "op_bench.py:" in err and "conftest.py:2" in err  # the decorator line
    assert "Traceback" not in err
    pytester.makeconftest(CLASHING_CONFTEST.replace('metrics=lambda p: {"x": ""})', 'metrics=lambda p: {"x": ""}, '
                                                    'replace=True)'))
    res = pytester.runpytest("--goni-spec", "s.yaml")
    assert res.ret != pytest.ExitCode.USAGE_ERROR, res.stderr.str()
    registry.load_builtins()
    assert "pytest_goni/measurements/op_bench.py:" in REGISTRIES.kinds.origin("op_bench")  # restored


def test_builtin_names_are_what_their_modules_register() -> None:
    """BUILTIN_NAMES (how a run knows the built-ins without importing them) lists every built-in
    kind, backend and op, each with the module whose import registers it."""
    import inspect

    registry.load_builtins()
    for what, names in registry.BUILTIN_NAMES.items():
        reg = getattr(REGISTRIES, what)
        for name, module in names.items():
            entry = reg[name]
            func = inspect.unwrap(getattr(entry, "func", None) or getattr(entry, "factory", None) or entry.fn)
            assert func.__module__.startswith(module), (what, name, func.__module__, module)
        code = {n: getattr(e, "func", None) or getattr(e, "factory", None) or e.fn for n, e in dict.items(reg)}
        shipped = {n for n, f in code.items() if inspect.unwrap(f).__module__.startswith("pytest_goni.")}
        assert shipped <= set(names), f"built-in {what} missing from BUILTIN_NAMES: {sorted(shipped - set(names))}"


LOAD_ONLY = r"""
import sys
from pathlib import Path
from pytest_goni.registry import REGISTRIES, declare_builtins
from pytest_goni.spec import load_spec
from pytest_goni.device import no_gpu_driver

declare_builtins()
spec = load_spec(Path(sys.argv[1]), "demo.yaml", "auto", False)
loaded = sorted(m for m in sys.modules if m.startswith("pytest_goni.measurements."))
print("kinds", loaded)
print("torch", "torch" in sys.modules, "no_gpu_driver", no_gpu_driver())
REGISTRIES.kinds["prefill"]
print("after", "pytest_goni.measurements.prefill" in sys.modules, "torch" in sys.modules)
"""


def test_a_spec_loads_without_importing_kinds_it_does_not_use() -> None:
    """A run imports the kinds its specs use, by name, and torch only when one needs it: loading the
    demo spec (op_bench and roofline) imports neither torch nor any other kind."""
    import subprocess
    import sys
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "specs" / "demo.yaml"
    out = subprocess.run([sys.executable, "-c", LOAD_ONLY, str(demo)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["kinds"] == "['pytest_goni.measurements.op_bench', 'pytest_goni.measurements.roofline']"
    if "no_gpu_driver True" in lines["torch"]:  # on a GPU host, picking the profile asks torch
        assert lines["torch"].startswith("False"), lines
    assert lines["after"] == "True True"  # a kind asked for by name is imported then
