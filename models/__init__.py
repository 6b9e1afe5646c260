"""Model backends, installed as pytest_goni.models. Importing this registers every backend."""

from . import gpt2, rnn, transformer  # noqa: F401  (registration happens on import)
