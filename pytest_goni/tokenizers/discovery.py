"""Find a tokenizer offline from ``tokenizer: NAME | PATH``, in a fixed, reported order.

1. an explicit file or folder (``path``);
2. the Hugging Face hub cache, read locally only (``hf-cache``; never a network call);
3. tokenizer files shipped inside installed packages (``package``; see :mod:`.packaged`).

Every step appends a line to the search log, so a miss names what was searched and why each
place did not hold the tokenizer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..optional import MissingOptional
from . import packaged
from .errors import TokenizerNotFound
from .formats import TIKTOKEN_PATTERNS, TokenizerFiles, sniff_model_file
from .packaged import PackageMissing, Reference

# Anything below that touches huggingface_hub must stay local; make the library agree.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SEARCH_ORDER = ("path", "hf-cache", "package")

#: Files that define a tokenizer in a folder, in the order they are preferred.
FOLDER_LAYOUTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tokenizer.json", ("tokenizer.json",)),
    ("bpe", ("vocab.json", "merges.txt")),
    ("bpe", ("encoder.json", "vocab.bpe")),
    ("model", ("tokenizer.model",)),
)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class Discovered:
    """Where a tokenizer was found: its files, the step that found them, and the search log."""

    spec: str
    found: TokenizerFiles
    origin: str
    searched: list[str] = field(default_factory=list)
    reference: Reference | None = None


def hf_cache_dir(override: str | Path | None = None) -> Path:
    """The hub cache folder: ``override``, else ``HF_HUB_CACHE`` / ``HF_HOME`` / the default."""
    if override:
        return Path(override).expanduser()
    # huggingface_hub.constants.HF_HUB_CACHE's rule, without importing the hub (~30 ms)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def classify_file(path: Path, options: dict[str, Any] | None = None) -> TokenizerFiles:
    """The format of a single tokenizer file (plus its partner file where the format has two)."""
    options = dict(options or {})
    name = path.name
    if name.endswith(".tiktoken"):
        stem = path.name.removesuffix(".tiktoken")
        if stem in TIKTOKEN_PATTERNS:  # cl100k_base.tiktoken: its regex is known by name
            options.setdefault("pattern", stem)
        return TokenizerFiles("tiktoken", [path], options)
    if ".model" in name:  # tokenizer.model, tokenizer.model.v1, spm.model
        fmt = sniff_model_file(path)
        return TokenizerFiles(fmt, [path], options)
    if name in ("vocab.json", "encoder.json"):
        partner = path.with_name("merges.txt" if name == "vocab.json" else "vocab.bpe")
        return TokenizerFiles("bpe", [path, partner], options)
    if name in ("merges.txt", "vocab.bpe"):
        partner = path.with_name("vocab.json" if name == "merges.txt" else "encoder.json")
        return TokenizerFiles("bpe", [partner, path], options)
    return TokenizerFiles("tokenizer.json", [path], options)


def files_in_folder(folder: Path, options: dict[str, Any] | None = None) -> TokenizerFiles | None:
    """The preferred tokenizer files in a folder, or None when it holds none."""
    for fmt, names in FOLDER_LAYOUTS:
        paths = [folder / n for n in names]
        if all(p.is_file() for p in paths):
            if fmt == "model":
                return classify_file(paths[0], options)
            return TokenizerFiles(fmt, paths, dict(options or {}))
    tik = sorted(folder.glob("*.tiktoken"))
    if tik:
        return classify_file(tik[0], options)
    return None


def _reference_for_files(found: TokenizerFiles) -> Reference | None:
    """An independent reference for files found by path or in the HF cache, where one applies."""
    if found.format == "sentencepiece":
        return Reference("sentencepiece", (found.files[0],))
    if found.format == "tiktoken":
        return Reference("tiktoken", (found.files[0],), found.options.get("pattern", ""))
    if found.format == "bpe":  # GPT-2 family: tiktoken reads vocab.bpe/merges + encoder/vocab
        return Reference("tiktoken", (found.files[1], found.files[0]), "gpt2")
    sibling = found.files[0].with_name("tokenizer.model")
    pattern = found.options.get("reference_pattern") or found.options.get("pattern")
    if sibling.is_file() and pattern and sniff_model_file(sibling) == "tiktoken":
        return Reference("tiktoken", (sibling,), pattern)
    return None


def _try_path(spec: str, options: dict[str, Any], log: list[str]) -> Discovered | None:
    path = Path(spec).expanduser()
    if not path.exists():
        log.append(f"path: {path.resolve()} does not exist")
        return None
    if path.is_dir():
        found = files_in_folder(path, options)
        if found is None:
            wanted = ", ".join(" + ".join(n) for _, n in FOLDER_LAYOUTS) + ", *.tiktoken"
            log.append(f"path: folder {path.resolve()} holds none of: {wanted}")
            return None
    else:
        found = classify_file(path, options)
        missing = [str(f) for f in found.files if not f.is_file()]
        if missing:
            log.append(f"path: {path.resolve()} needs its partner file {', '.join(missing)}, missing")
            return None
    log.append(f"path: found {found.describe()}")
    return Discovered(spec, found, "path", reference=_reference_for_files(found))


def _snapshot_dirs(repo_dir: Path) -> list[Path]:
    """The repo's snapshots, the one ``refs/main`` names first, then newest first."""
    snaps = repo_dir / "snapshots"
    if not snaps.is_dir():
        return []
    dirs = sorted((d for d in snaps.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        main = snaps / ref.read_text().strip()
        if main in dirs:
            dirs.remove(main)
            dirs.insert(0, main)
    return dirs


def _try_hf_cache(spec: str, options: dict[str, Any], log: list[str], cache_dir: Path) -> Discovered | None:
    if not _REPO_ID.match(spec):
        log.append(f"hf-cache: {spec!r} is not a hub repo id (org/name), skipped")
        return None
    repo_dir = cache_dir / ("models--" + spec.replace("/", "--"))
    if not repo_dir.is_dir():
        log.append(f"hf-cache: no {repo_dir.name} in {cache_dir}")
        return None
    for snap in _snapshot_dirs(repo_dir):
        found = files_in_folder(snap, options)
        if found is not None:
            log.append(f"hf-cache: found {found.describe()}")
            return Discovered(spec, found, "hf-cache", reference=_reference_for_files(found))
    log.append(f"hf-cache: {repo_dir} has no snapshot with tokenizer files")
    return None


def _try_package(spec: str, options: dict[str, Any], log: list[str],
                 missing: list[MissingOptional] | None = None) -> Discovered | None:
    missing = missing if missing is not None else []
    name = packaged.canonical(spec)
    if name is None:
        log.append(f"package: {spec!r} is none of the packaged tokenizers "
                   f"({', '.join(sorted(packaged.PACKAGED))})")
        return None
    entry = packaged.PACKAGED[name]
    try:
        files = [packaged.locate(entry.dist, rel) for rel in entry.files]
        reference = packaged.reference_for(entry)
    except PackageMissing as exc:
        log.append(f"package: {exc}")
        if isinstance(exc, MissingOptional):
            missing.append(exc)
        return None
    opts = {**entry.options, **options}
    found = TokenizerFiles(entry.format, files, opts)
    log.append(f"package: found {found.describe()} in {entry.dist}")
    return Discovered(spec, found, f"package:{entry.dist}", reference=reference)


def discover(spec: str | Path, *, options: dict[str, Any] | None = None,
             hf_cache: str | Path | None = None, order: tuple[str, ...] = SEARCH_ORDER) -> Discovered:
    """Find the tokenizer ``spec`` names (a path, an HF repo id, or a packaged name), offline.

    ``options`` pass to the format (``pattern`` for a tiktoken file). Raises
    :class:`TokenizerNotFound` listing every place searched, in order.
    """
    spec = str(spec)
    if not spec.strip():
        raise TokenizerNotFound(spec, ["(empty tokenizer name)"])
    options = dict(options or {})
    log: list[str] = []
    missing: list[MissingOptional] = []
    for step in order:
        if step == "path":
            hit = _try_path(spec, options, log)
        elif step == "hf-cache":
            hit = _try_hf_cache(spec, options, log, hf_cache_dir(hf_cache))
        elif step == "package":
            hit = _try_package(spec, options, log, missing)
        else:
            raise ValueError(f"unknown search step {step!r}; known: {', '.join(SEARCH_ORDER)}")
        if hit is not None:
            hit.searched = log
            return hit
    if missing:  # a packaged tokenizer whose package is not installed: an install away, not an error
        raise TokenizerNotFound(spec, log) from missing[0]
    raise TokenizerNotFound(spec, log)

