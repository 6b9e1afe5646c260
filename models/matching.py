"""Resolving a spec's ``match_params: <model>`` into a parameter count a factory can build from.

The V5 spec says ``gpt2: {backend: gpt2, size: ..., match_params: candidate}``: the GPT-2 baseline
gets the shape whose true count is nearest the candidate's. A factory sees only its own config, so
whoever builds models from a spec's ``models:`` section calls :func:`resolve_model_config` first
(``MeasureContext.build_model`` is the place); it counts the referenced model on the meta device
(no memory, no init cost) and replaces the name by that count. The matched model inherits the
referenced model's vocab_size unless it sets its own ("same tokenizer", as the seed asks), and a
``size`` given beside ``match_params`` gives way to the match.
"""

from __future__ import annotations

from typing import Any

import torch

from pytest_goni.registry import resolve_backend

from .base import ConfigError


def count_params(backend: str, config: dict[str, Any]) -> tuple[int, int]:
    """(total, non-embedding) parameters of ``backend`` built from ``config``, on the meta device."""
    cfg = {k: v for k, v in config.items() if k not in ("device", "dtype")}
    with torch.device("meta"):
        model = resolve_backend(backend)(**cfg)
    return model.num_params(), model.num_params(embedding=False)


def resolve_model_config(models: dict[str, dict[str, Any]], name: str,
                         _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config of spec model ``name`` with ``match_params: <other model>`` turned into a count."""
    if name not in models:
        raise ConfigError(f"unknown model {name!r}; the spec defines: {', '.join(sorted(models))}")
    if name in _seen:
        raise ConfigError(f"match_params cycle: {' -> '.join(_seen + (name,))}")
    cfg = dict(models[name])
    ref = cfg.get("match_params")
    if not isinstance(ref, str):
        return cfg
    other = resolve_model_config(models, ref, _seen + (name,))
    backend = other.pop("backend")
    total, non_emb = count_params(backend, other)
    cfg["match_params"] = non_emb if cfg.get("match", "total") == "non_embedding" else total
    cfg.pop("size", None)
    if "vocab_size" not in cfg and "vocab_size" in other:
        cfg["vocab_size"] = other["vocab_size"]
    return cfg
