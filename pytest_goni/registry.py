"""Registries of measurement kinds, model backends and benchmarkable ops.

A spec names these by string; the registries are how names become code. Built-ins register
themselves on import; third parties add theirs through the ``pytest_goni_register`` hook
(a conftest.py or an installed pytest plugin) or the ``pytest_goni`` entry-point group
(a module or callable that receives the :class:`Registries`).

A run declares the built-ins by name only (:func:`declare_builtins`, from :data:`BUILTIN_NAMES`)
and imports a built-in's module when a spec first asks for it: a process imports the kinds its
specs use (and torch only if they need it), not all of them. :func:`load_builtins` imports them all
(listings, the composed schema).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "pytest_goni"

_KINDS = "pytest_goni.measurements."
_MODELS = "pytest_goni.models"
#: Each built-in name and the module whose import registers it (tests/plugin/test_plugin_registry.py
#: checks this against what importing BUILTIN_MODULES registers).
BUILTIN_NAMES: dict[str, dict[str, str]] = {
    "kinds": {
        **{k: _KINDS + k for k in ("context_scaling", "decode", "memory", "model_stats", "op_bench", "prefill",
                                   "recall", "roofline", "synthetic_task", "tiers", "train_lm", "v5_compare")},
        "param_match": _KINDS + "v5_params", "pretrained_ppl": _KINDS + "v5_pretrained",
        "state_checks": _KINDS + "v5_state", "tokenizer": _KINDS + "tokenizer", "tokenizer_gpu": _KINDS + "tokenizer",
    },
    "backends": {
        **dict.fromkeys(("deltanet", "gated-deltanet", "gla", "gpt2", "groundthink", "gru", "lstm", "mamba2",
                         "mincut-gated", "retnet", "rwkv6", "rwkv7", "transformer-rope", "transformer-vanilla"),
                        _MODELS),
        "groundthink-reset": "pytest_goni.v5.broken",
    },
    "ops": dict.fromkeys(("copy", "matmul", "naive_attention", "sdpa_attention"), "pytest_goni.bench_ops"),
}

#: Modules whose import registers the built-in kinds, backends and ops.
BUILTIN_MODULES = tuple(sorted({m for names in BUILTIN_NAMES.values() for m in names.values()}))

_loading_builtins = 0  # > 0 while a built-in module is imported: what it registers is a built-in


class UnknownName(LookupError):
    """A spec named something no registry holds; the message lists what is known."""


class RegistryClash(ValueError):
    """Two pieces of code register the same name; the message names both places (file:line)."""


def origin_of(obj: Any) -> str:
    """``/abs/file.py:line`` where ``obj`` (a function, class or callable) is defined."""
    obj = inspect.unwrap(obj) if callable(obj) else obj
    code = getattr(obj, "__code__", None)
    if code is not None:
        return f"{os.path.abspath(code.co_filename)}:{code.co_firstlineno}"
    try:
        return f"{os.path.abspath(inspect.getsourcefile(obj) or '?')}:{inspect.getsourcelines(obj)[1]}"
    except (TypeError, OSError):
        return getattr(obj, "__module__", None) or repr(obj)


def shown(origin: str) -> str:
    """An origin as people read it: relative to the working directory when inside it."""
    path, sep, line = origin.rpartition(":")
    if not sep or not os.path.isabs(path):
        return origin
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return origin
    return f"{path if rel.startswith('..') else rel}:{line}"


@dataclass
class MeasurementKind:
    """A measurement kind: code that turns validated params into named metrics.

    ``func(ctx, params) -> dict[str, Metric]`` where ``ctx`` is a
    :class:`pytest_goni.context.MeasureContext`. ``metrics(params)`` returns ``{key: unit}`` for
    every metric the kind will produce for those params, so a gate reading a key it never
    produces, or comparing it in the wrong unit, is a collection-time spec error.

    ``split`` names a list param (its *axis*, e.g. ``contexts``) whose values the kind measures
    independently: the measurement with ``params[split] = [a, b]`` returns exactly the metrics of
    ``[a]`` and of ``[b]`` together. Under xdist each value can then run as a part of its own on
    another worker (``pytest_goni.parts``); the gates read the parts' metrics merged.
    """

    name: str
    func: Callable[..., dict[str, Any]]
    schema: dict[str, Any]
    metrics: Callable[[dict[str, Any]], dict[str, str]]
    requires_cuda: bool = False
    default_timeout_s: float = 900.0
    doc: str = ""
    origin: str = ""         # file:line of func
    split: str | None = None  # the list param whose values are measured independently (see above)


@dataclass
class Backend:
    """A model backend: ``factory(**config) -> nn.Module`` honouring the models/ contract."""

    name: str
    factory: Callable[..., Any]
    doc: str = ""
    origin: str = ""         # file:line of factory


@dataclass
class Op:
    """A benchmarkable operator for ``op_bench``.

    ``make_inputs(shape: dict, device, dtype) -> tuple`` builds inputs, ``fn(*inputs)`` runs it,
    ``flops(shape)`` and ``bytes(shape)`` count the work so the bench reports FLOP/s, B/s and the
    fraction of the measured roofline.
    """

    name: str
    fn: Callable[..., Any]
    make_inputs: Callable[..., tuple]
    flops: Callable[[dict[str, Any]], float]
    bytes: Callable[[dict[str, Any]], float]
    requires_cuda: bool = False
    doc: str = ""
    origin: str = ""         # file:line of fn


class Registry(dict):
    """A name -> entry mapping whose misses say what is known and what was probably meant."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what
        self.lazy: dict[str, str] = {}      # declared built-in name -> the module that registers it
        self.builtin: dict[str, Any] = {}   # built-in entries once imported (restore() may drop them)

    def declare(self, names: dict[str, str]) -> None:
        """Know built-in ``names`` (name -> module) without importing them; imported on first use."""
        for name, module in names.items():
            self.lazy.setdefault(name, module)

    def _load(self, name: str) -> None:
        """Import the module of a declared built-in not registered yet (once per process; a session
        end's restore() may have dropped the entry since: it comes back from ``builtin``)."""
        global _loading_builtins
        module = self.lazy.get(name)
        if module is None or dict.__contains__(self, name):
            return
        _loading_builtins += 1
        try:
            importlib.import_module(module)
        finally:
            _loading_builtins -= 1
        if not dict.__contains__(self, name) and name in self.builtin:
            dict.__setitem__(self, name, self.builtin[name])

    def __getitem__(self, name: str) -> Any:
        self._load(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        self._load(name)
        return super().get(name, default)

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or name in self.lazy

    def names(self) -> list[str]:
        """Every name known: registered, or a declared built-in not imported yet."""
        return sorted(set(self.keys()) | set(self.lazy))

    def load_all(self) -> None:
        for name in list(self.lazy):
            self._load(name)

    def add(self, entry: Any, *, replace: bool = False) -> Any:
        """Register ``entry`` under its name. Another entry of that name is a
        :class:`RegistryClash` naming both origins, unless ``replace`` is asked; the same code
        registering again (a module or conftest.py imported anew) replaces it silently."""
        old = self.get(entry.name)
        if old is not None and not replace and old is not entry and old.origin != entry.origin:
            raise RegistryClash(f"{self.what} {entry.name!r} is registered twice: at {shown(old.origin)} and "
                                f"at {shown(entry.origin)} (rename one, or pass replace=True to replace it)")
        self[entry.name] = entry
        if _loading_builtins:
            self.builtin[entry.name] = entry
        return entry

    def origin(self, name: str) -> str:
        """Where this name's code is: ``file:line`` (relative to the working directory when inside it)."""
        return shown(self.get_or_explain(name).origin)

    def get_or_explain(self, name: str) -> Any:
        if name in self:
            return self[name]
        raise UnknownName(explain_unknown(self.what, name, self.names()))


def explain_unknown(what: str, name: str, known: Iterable[str], *, adjective: str = "unknown",
                    listed: str = "known") -> str:
    """``unknown kind 'faek' (did you mean 'fake'?); known: ...`` — one wording for every miss."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{adjective} {what} {name!r}{hint}; {listed}: {', '.join(known) or 'none'}"


@dataclass
class Registries:
    kinds: Registry = field(default_factory=lambda: Registry("measurement kind"))
    backends: Registry = field(default_factory=lambda: Registry("model backend"))
    ops: Registry = field(default_factory=lambda: Registry("op"))

    def measurement_kind(
        self,
        name: str,
        *,
        schema: dict[str, Any],
        metrics: Callable[[dict[str, Any]], dict[str, str]],
        requires_cuda: bool = False,
        default_timeout_s: float = 900.0,
        split: str | None = None,
        replace: bool = False,
    ) -> Callable:
        """Decorator registering ``func(ctx, params) -> dict[str, Metric]`` as a kind.
        ``split``: the list param measured value by value (see :class:`MeasurementKind`).
        ``replace=True`` replaces a kind of that name (else a clash is an error)."""

        def deco(func: Callable) -> Callable:
            self.kinds.add(
                MeasurementKind(name, func, schema, metrics, requires_cuda, default_timeout_s,
                                (func.__doc__ or "").strip(), origin_of(func), split),
                replace=replace,
            )
            return func

        return deco

    def backend(self, name: str, *, replace: bool = False) -> Callable:
        """Decorator registering ``factory(**config) -> nn.Module`` as a model backend."""

        def deco(factory: Callable) -> Callable:
            self.backends.add(Backend(name, factory, (factory.__doc__ or "").strip(), origin_of(factory)),
                              replace=replace)
            return factory

        return deco

    def op(self, name: str, *, make_inputs: Callable, flops: Callable, bytes: Callable,
           requires_cuda: bool = False, replace: bool = False) -> Callable:
        """Decorator registering ``fn(*inputs)`` as a benchmarkable op."""

        def deco(fn: Callable) -> Callable:
            self.ops.add(Op(name, fn, make_inputs, flops, bytes, requires_cuda,
                            (fn.__doc__ or "").strip(), origin_of(fn)), replace=replace)
            return fn

        return deco

    def snapshot(self) -> tuple[dict[str, Any], ...]:
        """The current entries, to :meth:`restore` when a pytest session ends (its plugins'
        registrations go with it, so an in-process run does not see the previous one's)."""
        return tuple(dict(r) for r in (self.kinds, self.backends, self.ops))

    def restore(self, snapshot: tuple[dict[str, Any], ...]) -> None:
        for registry, entries in zip((self.kinds, self.backends, self.ops), snapshot):
            registry.clear()
            registry.update(entries)


#: The process-wide registries. Built-ins and plugins all register here.
REGISTRIES = Registries()
measurement_kind = REGISTRIES.measurement_kind
backend = REGISTRIES.backend
op = REGISTRIES.op

_declared = False
_loaded = False


def declare_builtins() -> Registries:
    """Declare the built-ins by name (imported when first used) and run the entry-point group's
    plugins (idempotent)."""
    global _declared
    if _declared:
        return REGISTRIES
    _declared = True
    for what, names in BUILTIN_NAMES.items():
        getattr(REGISTRIES, what).declare(names)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if callable(obj):
            obj(REGISTRIES)
    return REGISTRIES


def load_builtins() -> Registries:
    """Import every built-in module (idempotent), as :func:`declare_builtins` and more: for
    listings and the composed schema, which enumerate what is registered."""
    global _loaded, _loading_builtins
    declare_builtins()
    if _loaded:
        return REGISTRIES
    _loaded = True
    _loading_builtins += 1
    try:
        for mod in BUILTIN_MODULES:
            importlib.import_module(mod)
    finally:
        _loading_builtins -= 1
    for registry in (REGISTRIES.kinds, REGISTRIES.backends, REGISTRIES.ops):
        registry.load_all()
    return REGISTRIES


def resolve_backend(name: str) -> Callable[..., Any]:
    """A registered backend's factory, or ``package.module:factory`` imported on demand."""
    if ":" in name:
        mod_name, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UnknownName(f"cannot import model factory {name!r}: {exc}") from None
    return REGISTRIES.backends.get_or_explain(name).factory
