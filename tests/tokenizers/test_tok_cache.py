"""The in-process LRU and the on-disk cache: counters, eviction, staleness, content keys."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from pytest_goni.tokenizers import TokenizerCache

from .conftest import needs_package


def test_lru_hits_misses_and_eviction(tmp_path: Path, tiny_json: Path):
    other = tmp_path / "other" / "tokenizer.json"
    other.parent.mkdir()
    shutil.copy(tiny_json, other)
    cache = TokenizerCache(capacity=1, disk_dir=tmp_path / "d")
    a = cache.get(str(tiny_json))
    assert cache.get(str(tiny_json)) is a
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)
    cache.get(str(other))  # evicts the first
    assert cache.stats.evictions == 1
    assert cache.lookup(str(tiny_json)) is None
    assert cache.get(str(tiny_json)) is not a
    assert cache.stats.misses == 3 and cache.stats.hit_rate == pytest.approx(1 / 4)


def test_changed_file_is_a_miss_not_a_stale_hit(tmp_path: Path, tiny_json: Path):
    cache = TokenizerCache(disk_dir=tmp_path / "d")
    first = cache.get(str(tiny_json))
    st = tiny_json.stat()
    os.utime(tiny_json, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert cache.lookup(str(tiny_json)) is None
    assert cache.get(str(tiny_json)) is not first


@needs_package("llama2-32k")
def test_disk_cache_keyed_by_content(tmp_path: Path):
    disk = tmp_path / "disk"
    first = TokenizerCache(disk_dir=disk).get("llama2-32k")
    assert first.source == "built"
    assert (disk / f"{first.content_hash}.json").is_file()
    fresh = TokenizerCache(disk_dir=disk)
    again = fresh.get("llama2-32k")
    assert again.source == "disk-cache" and fresh.stats.disk_hits == 1
    # the same bytes at another path hit the same entry
    moved = tmp_path / "copy" / "spm.model"
    moved.parent.mkdir()
    shutil.copy(first.files[0], moved)
    copy = TokenizerCache(disk_dir=disk).get(str(moved))
    assert copy.content_hash == first.content_hash and copy.source == "disk-cache"
    text = "Good night, sweet prince:  and flights of angels"
    assert copy.tokenizer.encode(text).ids == first.tokenizer.encode(text).ids


@needs_package("llama2-32k")
def test_corrupt_disk_entry_is_rebuilt(tmp_path: Path):
    disk = tmp_path / "disk"
    first = TokenizerCache(disk_dir=disk).get("llama2-32k")
    entry = disk / f"{first.content_hash}.json"
    entry.write_text('{"truncated": ')
    again = TokenizerCache(disk_dir=disk).get("llama2-32k")
    assert again.source == "built"
    assert entry.read_text().startswith("{") and len(entry.read_text()) > 1000


def test_lookup_is_microseconds(tmp_path: Path, tiny_json: Path):
    cache = TokenizerCache(disk_dir=tmp_path / "d")
    cache.get(str(tiny_json))
    t = time.perf_counter()
    for _ in range(2000):
        assert cache.lookup(str(tiny_json)) is not None
    per = (time.perf_counter() - t) / 2000
    assert per < 1e-3  # a sanity bound on a loaded CI box; the spec gates the seed's 10 us


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        TokenizerCache(capacity=0)
