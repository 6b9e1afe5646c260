"""Fresh-process probes for the tokenizer measurement (see :data:`BOOTSTRAP` for how it starts).

Reads one JSON job from stdin, prints one JSON result line on stdout. Jobs:

- ``start``: time import + discovery + load in this fresh process (cold with an empty disk
  cache, warm with a populated one), and the RSS the tokenizer adds once loaded and used;
- ``encode``: encode the given text slices one document per call and as batches, under the
  rayon thread count the parent set (``RAYON_NUM_THREADS``), returning throughputs and a digest
  of every document's ids (determinism across processes and thread counts).

The parent starts ``python -c BOOTSTRAP``: the clock starts before this package is imported,
so ``start`` times every import a fresh process pays.
"""

from __future__ import annotations

import json
import sys
import time

#: What the parent runs with ``python -c``: take the clock first, then import and run.
BOOTSTRAP = ("import time; t0 = time.perf_counter(); "
             "import pytest_goni.tokenizers.worker as w; raise SystemExit(w.main(t0))")


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # Linux fallback
        with open("/proc/self/statm") as fh:
            import os

            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _start(job: dict, t0: float) -> dict:
    from pytest_goni.tokenizers.cache import TokenizerCache

    t_import = time.perf_counter()
    rss0 = _rss_bytes()
    cache = TokenizerCache(disk_dir=job["disk_dir"])
    loaded = cache.get(job["tokenizer"], options=job.get("options"), hf_cache=job.get("hf_cache"))
    t_loaded = time.perf_counter()
    tok = loaded.tokenizer
    n = sum(len(e.ids) for e in tok.encode_batch(job.get("sample_docs", []), add_special_tokens=False))
    rss1 = _rss_bytes()
    try:
        import psutil

        since_exec = time.time() - psutil.Process().create_time()
    except ImportError:  # no psutil: unknown (None keeps the results JSON strict)
        since_exec = None
    return {"load_s": t_loaded - t0, "import_s": t_import - t0, "since_exec_s": since_exec,
            "rss_delta_B": rss1 - rss0, "rss_B": rss1, "source": loaded.source, "sample_tokens": n}


def _encode(job: dict, t0: float) -> dict:
    import hashlib

    from pytest_goni.tokenizers.cache import TokenizerCache

    cache = TokenizerCache(disk_dir=job["disk_dir"])
    tok = cache.get(job["tokenizer"], options=job.get("options"), hf_cache=job.get("hf_cache")).tokenizer
    slices: list[list[str]] = job["slices"]
    single, batch, digests = [], [], None
    tok.encode_batch(job.get("warmup", []), add_special_tokens=False)  # code path, not the corpus
    for docs in slices:
        t = time.perf_counter()
        encs = [tok.encode(d, add_special_tokens=False) for d in docs]
        dt = time.perf_counter() - t
        single.append(sum(len(e.ids) for e in encs) / dt)
        t = time.perf_counter()
        benc = tok.encode_batch(docs, add_special_tokens=False)
        dt = time.perf_counter() - t
        batch.append(sum(len(e.ids) for e in benc) / dt)
    all_docs = [d for docs in slices for d in docs]
    digests = [hashlib.sha256(json.dumps(e.ids).encode()).hexdigest()[:16]
               for e in tok.encode_batch(all_docs, add_special_tokens=False)]
    return {"single_tok_s": single, "batch_tok_s": batch, "digests": digests}


def main(t0: float | None = None) -> int:
    t0 = time.perf_counter() if t0 is None else t0
    job = json.loads(sys.stdin.read())
    try:
        out = {"start": _start, "encode": _encode}[job["job"]](job, t0)
    except Exception as exc:  # reported to the parent, which fails the measurement with it
        out = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
