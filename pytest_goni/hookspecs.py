"""Hooks pytest-goni adds to pytest, so conftest.py files and plugins extend it."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(historic=True)
def pytest_goni_register(registries):  # type: ignore[no-untyped-def]
    """Register measurement kinds, model backends and ops.

    ``registries`` is :class:`pytest_goni.registry.Registries`: use
    ``registries.measurement_kind(...)``, ``registries.backend(...)`` and ``registries.op(...)``
    as decorators. The call is historic: a conftest.py loaded later still receives it.
    """
