"""Model backends, installed as pytest_goni.models. Importing this registers every backend."""

from . import deltanet, gla, gpt2, mamba2, rnn, transformer  # noqa: F401  (registration on import)
