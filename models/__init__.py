"""Model backends, installed as pytest_goni.models. Importing this registers every backend."""

from . import (  # noqa: F401  (registration happens on import)
    deltanet,
    gla,
    gpt2,
    groundthink,
    mamba2,
    rnn,
    rwkv,
    transformer,
)
