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
