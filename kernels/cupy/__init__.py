"""CuPy kernels: the device's copy-bandwidth probe and on-device token-id work.

CuPy is imported lazily, when a kernel runs: without CuPy or a CUDA device each function raises
:class:`CupyUnavailable` with the reason, and :func:`cupy_available` answers without raising.
Each kernel has a torch reference (``*_reference``) that its GPU test compares against.
"""

from ._runtime import CupyUnavailable, cupy_available
from .bandwidth import copy_bandwidth, copy_device
from .tokens import (
    gather_embeddings,
    gather_embeddings_reference,
    validate_token_ids,
    validate_token_ids_reference,
)

__all__ = [
    "CupyUnavailable",
    "cupy_available",
    "copy_bandwidth",
    "copy_device",
    "gather_embeddings",
    "gather_embeddings_reference",
    "validate_token_ids",
    "validate_token_ids_reference",
]
