"""Tokenizer discovery, loading, caches, streaming detokenization and parity, all offline.

    from pytest_goni.tokenizers import load_tokenizer
    tok = load_tokenizer("llama3").tokenizer        # a tokenizers.Tokenizer

Names: a file or folder path, a Hugging Face repo id already in the local hub cache, or a
tokenizer shipped in an installed package (``gpt2``, ``llama2-32k``, ``llama3``, ``cl100k_base``).
"""

from .cache import DEFAULT_CACHE, CacheStats, LoadedTokenizer, TokenizerCache, load_tokenizer
from .discovery import SEARCH_ORDER, Discovered, discover
from .errors import TokenizerError, TokenizerLoadError, TokenizerNotFound
from .packaged import PACKAGED, Reference
from .streaming import StreamingDetokenizer, stream_decode

__all__ = [
    "DEFAULT_CACHE", "CacheStats", "LoadedTokenizer", "TokenizerCache", "load_tokenizer",
    "SEARCH_ORDER", "Discovered", "discover",
    "TokenizerError", "TokenizerLoadError", "TokenizerNotFound",
    "PACKAGED", "Reference", "StreamingDetokenizer", "stream_decode",
]
