"""pytest-goni: executable acceptance gates for sequence-model architectures."""
__version__ = "0.1.0"
