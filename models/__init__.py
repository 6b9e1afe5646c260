"""Model backends, installed as pytest_goni.models. Importing this registers every backend."""

from . import (  # noqa: F401  (registration happens on import)
    deltanet,
    gla,
    gpt2,
    groundthink,
    mamba2,
    mincut_gated,
    rnn,
    rwkv,
    transformer,
)


def builtin_backends() -> list[str]:
    """Names of the backends this package ships, sorted; not those that tests or plugins add."""
    from pytest_goni.registry import REGISTRIES

    return sorted(b.name for b in REGISTRIES.backends.values() if b.factory.__module__.startswith(__name__ + "."))
