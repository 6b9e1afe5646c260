"""Two caches in front of discovery and conversion, with hit/miss counters.

- in-process LRU: ``spec -> LoadedTokenizer``; a hit costs a dict lookup plus one ``stat`` per
  file (a tokenizer edited on disk is a miss, never a stale hit);
- on disk: the converted ``tokenizer.json`` under the sha256 of the source files' bytes (plus
  format, options and converter version), so a conversion (SentencePiece, tiktoken: 0.1-2 s) is
  paid once per content, whatever path the files sit at.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tokenizers

from .discovery import Discovered, discover
from .errors import TokenizerLoadError
from .formats import FormatError, build
from .packaged import Reference

#: Bump when a converter changes what it builds: old disk entries then miss.
CONVERTER_VERSION = "2"

#: Formats whose build is a conversion, so the disk cache keeps the result.
CONVERTED_FORMATS = ("sentencepiece", "tiktoken")


def default_disk_dir() -> Path:
    """``$GONI_TOKENIZER_CACHE``, else ``$XDG_CACHE_HOME/pytest-goni/tokenizers``."""
    env = os.environ.get("GONI_TOKENIZER_CACHE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-goni" / "tokenizers"


@dataclass
class LoadedTokenizer:
    """A ready tokenizer and its evidence: where it came from, what it was built from."""

    spec: str
    tokenizer: tokenizers.Tokenizer
    format: str
    files: list[Path]
    origin: str
    content_hash: str
    file_bytes: int
    searched: list[str]
    reference: Reference | None
    source: str  # "built" (converted or parsed now) or "disk-cache"
    load_s: float
    signature: tuple = field(default=(), repr=False)

    @property
    def vocab_size(self) -> int:
        """Largest id + 1, added tokens included (the embedding table's row count)."""
        vocab = self.tokenizer.get_vocab(with_added_tokens=True)
        return max(vocab.values()) + 1 if vocab else 0


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    disk_hits: int = 0
    disk_misses: int = 0
    evictions: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else float("nan")


def _signature(files: list[Path]) -> tuple:
    out = []
    for f in files:
        st = os.stat(f)
        out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


def content_hash(discovered: Discovered) -> str:
    """sha256 over the files' bytes, the format, the options and the converter version."""
    h = hashlib.sha256()
    h.update(f"{discovered.found.format}|{CONVERTER_VERSION}|{sorted(discovered.found.options.items())}".encode())
    for f in discovered.found.files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


class TokenizerCache:
    """LRU of loaded tokenizers over an on-disk cache of converted ones. Thread-safe."""

    def __init__(self, capacity: int = 8, disk_dir: str | Path | None = None, use_disk: bool = True):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.disk_dir = Path(disk_dir) if disk_dir else default_disk_dir()
        self.use_disk = use_disk
        self.stats = CacheStats()
        self._lru: OrderedDict[tuple, LoadedTokenizer] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(spec: Any, options: dict[str, Any] | None, hf_cache: Any) -> tuple:
        if not options and not hf_cache:
            return (str(spec),)
        return (str(spec), tuple(sorted((options or {}).items())), str(hf_cache or ""))

    def lookup(self, spec: str | Path, *, options: dict[str, Any] | None = None,
               hf_cache: str | Path | None = None) -> LoadedTokenizer | None:
        """The cached tokenizer when present and its files unchanged (counts a hit), else None."""
        key = self._key(spec, options, hf_cache)
        with self._lock:
            entry = self._lru.get(key)
            if entry is None:
                return None
            try:
                fresh = _signature(entry.files) == entry.signature
            except OSError:
                fresh = False
            if not fresh:
                del self._lru[key]
                return None
            self._lru.move_to_end(key)
            self.stats.hits += 1
            return entry

    def get(self, spec: str | Path, *, options: dict[str, Any] | None = None,
            hf_cache: str | Path | None = None) -> LoadedTokenizer:
        """The tokenizer ``spec`` names: from the LRU, else discovered and loaded (a miss)."""
        hit = self.lookup(spec, options=options, hf_cache=hf_cache)
        if hit is not None:
            return hit
        loaded = self.load_uncached(spec, options=options, hf_cache=hf_cache)
        key = self._key(spec, options, hf_cache)
        with self._lock:
            self.stats.misses += 1
            self._lru[key] = loaded
            self._lru.move_to_end(key)
            while len(self._lru) > self.capacity:
                self._lru.popitem(last=False)
                self.stats.evictions += 1
        return loaded

    def clear_memory(self) -> None:
        """Drop the in-process entries (the disk cache stays)."""
        with self._lock:
            self._lru.clear()

    def disk_path(self, digest: str) -> Path:
        return self.disk_dir / f"{digest}.json"

    def load_uncached(self, spec: str | Path, *, options: dict[str, Any] | None = None,
                      hf_cache: str | Path | None = None) -> LoadedTokenizer:
        """Discover and load, going through the disk cache but not the LRU."""
        t0 = time.perf_counter()
        disc = discover(spec, options=options, hf_cache=hf_cache)
        files = disc.found.files
        try:
            sig = _signature(files)
            digest = content_hash(disc)
        except OSError as exc:
            raise TokenizerLoadError(str(spec), [str(f) for f in files], disc.found.format,
                                     f"cannot read: {exc}", disc.searched) from None
        tok, source = None, "built"
        # Only conversions are worth caching: a tokenizer.json is its own serialization, and a
        # vocab + merges pair parses as fast as the JSON a cache entry would hold.
        cacheable = self.use_disk and disc.found.format in CONVERTED_FORMATS
        if cacheable:
            path = self.disk_path(digest)
            if path.is_file():
                try:
                    tok = tokenizers.Tokenizer.from_file(str(path))
                    source = "disk-cache"
                    self.stats.disk_hits += 1
                except Exception:  # a torn or corrupt cache entry: rebuild it
                    path.unlink(missing_ok=True)
        if tok is None:
            try:
                tok = build(disc.found)
            except FormatError as exc:
                raise TokenizerLoadError(str(spec), [str(f) for f in files], disc.found.format,
                                         str(exc), disc.searched) from None
            if cacheable:
                self.stats.disk_misses += 1
                self._write_disk(digest, tok)
        return LoadedTokenizer(
            spec=str(spec), tokenizer=tok, format=disc.found.format, files=list(files),
            origin=disc.origin, content_hash=digest, file_bytes=sum(os.path.getsize(f) for f in files),
            searched=disc.searched, reference=disc.reference, source=source,
            load_s=time.perf_counter() - t0, signature=sig)

    def _write_disk(self, digest: str, tok: tokenizers.Tokenizer) -> None:
        """Atomic write (temp file + rename): a concurrent reader never sees half an entry."""
        try:
            self.disk_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.disk_dir, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(tok.to_str())
            os.replace(tmp, self.disk_path(digest))
        except OSError:
            pass  # a read-only cache folder costs speed, not correctness


#: The process-wide cache :func:`load_tokenizer` uses.
DEFAULT_CACHE = TokenizerCache()


def load_tokenizer(spec: str | Path, *, options: dict[str, Any] | None = None,
                   hf_cache: str | Path | None = None,
                   cache: TokenizerCache | None = None) -> LoadedTokenizer:
    """Find and load a tokenizer offline, through the in-process and on-disk caches."""
    return (cache or DEFAULT_CACHE).get(spec, options=options, hf_cache=hf_cache)
