"""Measurement kind ``v5_compare``: the V5 seed's candidate-vs-GPT-2 comparison at each size rung.

For every rung (a shape for the candidate; the baseline GPT-2 matched to its parameter count) and
every seed, both models are trained by the shared loop (pytest_goni.training) on the same stream:
corpus windows mixed with the statefulness dialogues, the same batches in the same order (their
SHA-256 recorded per run), the same steps, batch and schedule (the seed's matching recipe, lines
137-170; AdamW, cosine, warm-up, betas 0.9/0.95, clip 1.0 are the loop's defaults). Then each
trained model is evaluated on:

- validation loss on held-out corpus windows, and perplexity as lm-evaluation-harness pins it (token,
  word and byte perplexity, bits per byte; disjoint windows, EOT prefix) plus the rolling variant
  (a recurrent model carries its state across windows; an attention model reads a sliding window);
- the statefulness family (pytest_goni.v5.dialogue): the seed's six tests and fact recall at the
  given distances, multiple choice with chance known, the oracle and alignment check first — a task
  that fails its check marks every accuracy metric INVALID (``meta["invalid"]``);
- loss by position up to ``16 C`` (C the training context) and the useful context window;
- compute: 6 N D FLOPs, training seconds, tokens/s and peak memory.

Keys (``R`` a rung label, ``M`` ``candidate`` or ``baseline``): ``R.M.params``,
``R.M.params_non_embedding``, ``R.M.val_loss``, ``R.M.val_ppl``, ``R.M.token_ppl``, ``R.M.word_ppl``,
``R.M.byte_ppl``, ``R.M.bits_per_byte``, ``R.M.rolling_token_ppl``, ``R.M.rolling_bits_per_byte``,
``R.M.train_tok_s``, ``R.M.train_seconds``, ``R.M.flops``, ``R.M.peak_mem``, ``R.M.max_spike``,
``R.M.grad_norm``, ``R.M.state.<item>``, ``R.M.state_score``, ``R.M.persistence_turns``,
``R.candidate.s_checks.<k>`` (GroundThink's S0-S4 on each *trained* candidate, one sample per seed, and
``persistence_max_diff`` of a state resumed in a fresh process, the first seed; the ``state_checks``
kind's keys),
``R.M.ctx_loss.<k>``, ``R.M.useful_context``; per rung ``R.task.<item>.chance``,
``R.task.<item>.oracle``, ``R.task_valid``, ``R.same_batches``, ``R.same_tokenizer``,
``R.same_steps``, ``R.same_val_set``, ``R.ppl_multiwindow_docs`` (perplexity documents longer than one
window: the rolling metrics are INVALID when there is none), ``R.M.state_chance_p`` (one-sided p of the
model's statefulness answers against chance, pytest_goni.v5.chance) and ``R.state_comparable`` (0 when
neither model beats chance: ``state_score`` and ``persistence_turns`` of both are then INVALID with the
reason); one sample per seed where a quantity is per run.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytest_goni.device import release, under_cpu_threads
from pytest_goni.jsonsafe import config_hash
from pytest_goni.lm_data import eval_batches, get_tokenizer, load_text, tokenize_corpus
from pytest_goni.measurements.schemas import COUNT, CPU_THREADS, as_count, params_schema
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric
from pytest_goni.training import OptimConfig, describe_config, evaluate_loss, max_loss_spike, seed_everything, train
from pytest_goni.v5 import broken as _registers_groundthink_reset  # noqa: F401
from pytest_goni.v5 import dialogue
from pytest_goni.v5.chance import ChanceTest, beats_chance
from pytest_goni.v5.datasets import FORMATS, read_eval_set, resolve_path
from pytest_goni.v5.evaluate import (
    blind_sheet,
    bucket_losses,
    continue_text,
    is_recurrent,
    item_accuracy,
    position_losses,
    useful_context,
)
from pytest_goni.v5.perplexity import (
    disjoint_loglik,
    rolling_invalid,
    rolling_loglik,
    split_documents,
    windows_spanned,
)
from pytest_goni.v5.rungs import RungPair, rung_pair
from pytest_goni.v5.state_checks import STATE_KEYS, persistence_diff, s_checks
from pytest_goni.v5.stream import CompactVocab, MixedBatches, train_flops

ROLES = ("candidate", "baseline")
STATE_LENGTH, RESUME_TOKENS = 64, 16   # tokens before the state is read; tokens stepped after a resume
MODEL_REF = {"type": "string", "x-goni-ref": "model"}
RUNG_LABEL = "^[A-Za-z_][A-Za-z0-9_]*$"

SCHEMA: dict[str, Any] = params_schema(["candidate", "baseline", "rungs", "corpus", "tokenizer", "tokens"], {
    "cpu_threads": CPU_THREADS,
    "candidate": MODEL_REF,
    "baseline": MODEL_REF,
    "rungs": {"type": "object", "minProperties": 1, "propertyNames": {"pattern": RUNG_LABEL},
              "additionalProperties": {"type": "object"},
              "description": "rung label -> candidate config overrides ({size: 8M} or widths)"},
    "match": {"enum": ["total", "non_embedding"]},
    "corpus": {"type": "string"},
    "corpus_chars": COUNT,
    "tokenizer": {"type": "string"},
    "compact_vocab": {"type": "boolean"},
    "tokens": COUNT,
    "seq_len": {"type": "integer", "minimum": 8},
    "batch_size": {"type": "integer", "minimum": 1},
    "seeds": {"type": "array", "minItems": 1, "items": {"type": "integer"}},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "warmup": {"type": "number", "minimum": 0},
    "weight_decay": {"type": "number", "minimum": 0},
    "task_fraction": {"type": "number", "minimum": 0, "maximum": 1},
    "max_train_distance": {"type": "integer", "minimum": 0},
    "distance_law": {"enum": list(dialogue.DISTANCE_LAWS),
                     "description": "how training episodes' distractor turns are drawn up to max_train_distance: "
                                    "uniform (default) or harmonic, P(d) ~ 1/(d+1) (more, shorter episodes)"},
    "eval_tokens": COUNT,
    "ppl_docs": {"type": "integer", "minimum": 1},
    "ppl_doc_chars": {"type": "integer", "minimum": 50},
    "ppl_doc_windows": {"type": "integer", "minimum": 1,
                        "description": "perplexity documents of at least this many training windows (default 2), "
                                       "so the rolling variant carries a state across windows"},
    "episodes": {"type": "integer", "minimum": 2},
    "tiers": {"type": "array", "items": {"enum": list(dialogue.TIERS)}},
    "tier_distance": {"type": "integer", "minimum": 0},
    "recall_distances": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
    "context_multiples": {"type": "array", "items": {"type": "integer", "minimum": 2}},
    "context_sequences": {"type": "integer", "minimum": 1},
    "misalign": {"type": "integer", "description": "shift the scored position (tests the task check)"},
    "compile": {"type": "boolean", "description": "torch.compile the training step (default: the loop's "
                                                "choice, on for long CUDA runs)"},
    "samples": {"type": "integer", "minimum": 0, "description": "blind-sheet prompts"},
    "eval_sets": {"type": "object", "propertyNames": {"pattern": RUNG_LABEL},
                  "additionalProperties": {"type": "object", "required": ["format", "path"],
                                           "properties": {"format": {"enum": list(FORMATS)},
                                                          "path": {"type": "string"},
                                                          "max_docs": {"type": "integer", "minimum": 1}}},
                  "description": "name -> {format, path ($VARS expanded; empty: its gates SKIP)}"},
    "sample_tokens": {"type": "integer", "minimum": 1},
})

PER_RUN = {"params": "", "params_non_embedding": "", "val_loss": "", "val_ppl": "", "token_ppl": "",
           "word_ppl": "", "byte_ppl": "", "bits_per_byte": "", "rolling_token_ppl": "",
           "rolling_bits_per_byte": "", "train_tok_s": "tok/s", "train_seconds": "s", "flops": "",
           "peak_mem": "B", "max_spike": "", "grad_norm": "", "state_score": "", "persistence_turns": "",
           "useful_context": "", "final_train_loss": "", "loss_drop": ""}


PPL_KEYS = ("token_ppl", "word_ppl", "byte_ppl", "bits_per_byte")


def _items(params: dict[str, Any]) -> list[str]:
    tiers = params.get("tiers", list(dialogue.TIERS))
    return [*tiers, *(f"recall_{d}" for d in params.get("recall_distances", [5, 10, 20, 50]))]


def _multiples(params: dict[str, Any]) -> list[int]:
    return sorted({1, *params.get("context_multiples", [4, 8, 16])})


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units: dict[str, str] = {}
    items = _items(params)
    for r in params["rungs"]:
        for m in ROLES:
            units.update({f"{r}.{m}.{k}": u for k, u in PER_RUN.items()})
            units.update({f"{r}.{m}.state.{i}": "" for i in items})
            units.update({f"{r}.{m}.ctx_loss.{k}": "" for k in _multiples(params)})
            for e in params.get("eval_sets", {}):
                units.update({f"{r}.{m}.{e}.{k}": "" for k in PPL_KEYS})
        units.update({f"{r}.candidate.s_checks.{k}": "" for k in STATE_KEYS})
        for i in items:
            units[f"{r}.task.{i}.chance"] = ""
            units[f"{r}.task.{i}.oracle"] = ""
        units.update({f"{r}.{k}": "" for k in ("task_valid", "same_batches", "same_tokenizer", "same_steps",
                                               "same_val_set", "task_chance", "ppl_multiwindow_docs",
                                               "state_comparable")})
        units.update({f"{r}.{m}.state_chance_p": "" for m in ROLES})
    return units


@measurement_kind("v5_compare", schema=SCHEMA, metrics=metric_units, default_timeout_s=1800)
@under_cpu_threads()
def measure_v5_compare(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Train the candidate and its parameter-matched GPT-2 per rung and seed; evaluate both."""
    return _V5Run(ctx, params).run()


class _V5Run:
    def __init__(self, ctx: Any, params: dict[str, Any]):
        self.ctx, self.p = ctx, params
        self.seq_len = int(params.get("seq_len", 128))
        self.batch = int(params.get("batch_size", 8))
        self.seeds = [int(s) for s in params.get("seeds", [0])]
        self.steps = max(1, as_count(params["tokens"]) // (self.seq_len * self.batch))
        self.cfg = OptimConfig(lr=float(params.get("lr", 3e-4)), warmup=float(params.get("warmup", 0.1)),
                               weight_decay=float(params.get("weight_decay", 0.1)))
        self.items = _items(params)
        self.multiples = _multiples(params)
        self._data()

    # ------------------------------------------------------------------------------ data
    def _data(self) -> None:
        p = self.p
        max_chars = as_count(p["corpus_chars"]) if "corpus_chars" in p else None
        text = load_text(p["corpus"], max_chars, self.ctx.resolve_path)
        tok = get_tokenizer(p["tokenizer"], text)
        self.tok = tok
        split = tokenize_corpus(text, tok, p["corpus"], 0.1)
        cut = split.train_chars
        self.train_text, self.val_text = text[:cut], text[cut:]
        self.train_lines = dialogue.distractor_lines(self.train_text)
        self.val_lines = dialogue.distractor_lines(self.val_text)
        self.eval_docs: dict[str, list[str]] = {}
        self.eval_skip: dict[str, str] = {}
        for name, es in p.get("eval_sets", {}).items():
            path, why = resolve_path(es["path"], self.ctx.resolve_path)
            if path is None:
                self.eval_skip[name] = f"eval set {name!r} ({es['format']}): {why}"
            else:
                self.eval_docs[name] = read_eval_set(es["format"], path, es.get("max_docs", 200))
        eot_raw = self._eot_id(tok)
        encode = tok.encode
        vocab = tok.vocab_size
        if p.get("compact_vocab", False):
            task_text = self._task_text()
            extra = [tok.encode(d) for docs in self.eval_docs.values() for d in docs]
            compact = CompactVocab([split.train_ids.tolist(), split.val_ids.tolist(), tok.encode(task_text), *extra],
                                   always=[eot_raw])
            encode, vocab = compact.encode(tok.encode), compact.size
            self.train_ids = torch.tensor([compact.index[int(t)] for t in split.train_ids])
            self.val_ids = torch.tensor([compact.index[int(t)] for t in split.val_ids])
            self.eot = compact.index[eot_raw]
            self.raw_id = compact.ids
        else:
            self.train_ids, self.val_ids, self.eot, self.raw_id = split.train_ids, split.val_ids, eot_raw, None
        self.encode, self.vocab = encode, vocab
        self.val = eval_batches(self.val_ids, self.seq_len, self.batch,
                                as_count(p["eval_tokens"]) if "eval_tokens" in p else None)
        self.val_hash = hashlib.sha256(self.val_ids.numpy().tobytes()).hexdigest()[:16]
        # Documents of at least ``ppl_doc_windows`` training windows, so the rolling variant carries a
        # state across windows (capped at 1,600 characters they fitted one 512-token window: rolling ==
        # disjoint by construction); how many span more than one window is recorded.
        self.docs = split_documents(self.val_text, min_chars=int(p.get("ppl_doc_chars", 400)),
                                    max_docs=int(p.get("ppl_docs", 8)),
                                    min_tokens=int(p.get("ppl_doc_windows", 2)) * self.seq_len, encode=self.encode)
        self.doc_windows = windows_spanned(self.docs, self.encode, self.seq_len)
        self.rolling_invalid = rolling_invalid(self.doc_windows, self.seq_len)
        n = int(p.get("episodes", 32))
        suite = dialogue.suite(p.get("tiers", list(dialogue.TIERS)), int(p.get("tier_distance", 10)),
                               p.get("recall_distances", [5, 10, 20, 50]), n, 1234, self.val_lines)
        self.task = {name: dialogue.tokenize_item(name, eps, self.encode, int(p.get("misalign", 0)))
                     for name, eps in suite.items()}
        self.checks = {name: dialogue.check_task(item) for name, item in self.task.items()}
        self.ctx_seqs = self._context_sequences()

    def _eot_id(self, tok: Any) -> int:
        if tok.name == "byte":
            return 0
        ids = tok.encode("<|endoftext|>")
        return ids[0] if len(ids) == 1 else 0

    def _task_text(self) -> str:
        """Every word the templates can produce, so a compact vocabulary holds them all."""
        rng = np.random.default_rng(0)
        eps = [dialogue.make_episode(t, 2, rng, self.train_lines + self.val_lines)
               for t in dialogue.TIERS for _ in range(40)]
        words = " ".join(" " + w for pool in (dialogue.COLOURS, dialogue.CITIES, dialogue.FRUITS, dialogue.NAMES,
                                              dialogue.ROLES, dialogue.TOPICS) for w in pool)
        return "\n".join(e.prompt + " " + e.answer for e in eps) + words + " " + " ".join(
            str(i) for i in range(20, 60)) + "\n" + "\n".join(
            f"{s}: {line}" for s in dialogue.OTHERS for line in self.train_lines + self.val_lines)

    def _context_sequences(self) -> torch.Tensor | None:
        length = max(self.multiples) * self.seq_len + 1
        n = min(int(self.p.get("context_sequences", 4)), len(self.val_ids) // length)
        if n < 1:
            return None
        return self.val_ids[:n * length].reshape(n, length)

    # ------------------------------------------------------------------------------ runs
    def run(self) -> dict[str, Metric]:
        out: dict[str, Metric] = {}
        match = self.p.get("match", "non_embedding")
        chash = config_hash({"params": self.p, "optim": describe_config(self.cfg), "steps": self.steps,
                             "vocab": self.vocab, "val": self.val_hash})
        self.curves: dict[str, list[list[float]]] = {}
        self.streams: dict[int, dict[int, torch.Tensor]] = {}  # seed -> step -> rows: built once, read by every run
        self.samples: dict[str, list[tuple[str, str]]] = {}
        matrix_rows = {}
        for rung, overrides in self.p["rungs"].items():
            pair = rung_pair(self.ctx.models, self.p["candidate"], self.p["baseline"], rung, dict(overrides),
                             self.vocab, self.seq_len, match)
            per: dict[str, dict[str, list[float]]] = {m: {} for m in ROLES}
            hashes: dict[str, list[str]] = {m: [] for m in ROLES}
            steps_run: dict[str, list[int]] = {m: [] for m in ROLES}
            for i, seed in enumerate(self.seeds):
                for role in ROLES:
                    rec, digest, nsteps = self._one_run(pair, role, seed, sample=(i == 0))
                    for k, v in rec.items():
                        per[role].setdefault(k, []).append(v)
                    hashes[role].append(digest)
                    steps_run[role].append(nsteps)
            out.update(self._rung_metrics(rung, pair, per, hashes, steps_run, chash))
            matrix_rows[rung] = {m: {k: float(np.mean(v)) for k, v in per[m].items()} for m in ROLES}
        self._artifacts(matrix_rows, out)
        return out

    def _one_run(self, pair: RungPair, role: str, seed: int, sample: bool) -> tuple[dict[str, float], str, int]:
        ctx = self.ctx
        batches = MixedBatches(self.train_ids, self.seq_len, self.batch, seed,
                               float(self.p.get("task_fraction", 0.5)), self.encode, self.train_lines,
                               self.eot, int(self.p.get("max_train_distance", 4)),
                               str(self.p.get("distance_law", "uniform")),
                               store=self.streams.setdefault(seed, {}))
        seed_everything(seed)
        model = pair.build(role, seed, ctx.device)
        if ctx.is_cuda:
            torch.cuda.reset_peak_memory_stats(ctx.device)
        t0 = time.perf_counter()
        res = train(model, batches, self.steps, self.cfg, device=ctx.device, check=ctx.check_deadline,
                    compile=self.p.get("compile"))
        wall = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated(ctx.device) if ctx.is_cuda else math.nan
        total, non_emb = pair.counts[role]
        rec: dict[str, float] = {
            "params": total, "params_non_embedding": non_emb,
            "final_train_loss": res.final_loss, "train_tok_s": res.tokens_per_second,
            "loss_drop": res.losses[0] - res.final_loss,
            "train_seconds": wall, "flops": train_flops(total, res.tokens), "peak_mem": float(peak),
            "max_spike": max_loss_spike(res.losses, 20),
            "grad_norm": float(np.median(res.grad_norms)) if res.grad_norms else math.nan,
        }
        rec["val_loss"] = evaluate_loss(model, self.val, device=ctx.device)
        rec["val_ppl"] = math.exp(min(rec["val_loss"], 700.0))
        ll = disjoint_loglik(model, self.docs, self.encode, self.seq_len, self.eot, ctx.device).metrics()
        rec.update({k: ll[k] for k in ("token_ppl", "word_ppl", "byte_ppl", "bits_per_byte")})
        for name, docs in self.eval_docs.items():
            em = disjoint_loglik(model, docs, self.encode, self.seq_len, self.eot, ctx.device).metrics()
            rec.update({f"{name}.{k}": em[k] for k in PPL_KEYS})
        for name in self.eval_skip:
            rec.update({f"{name}.{k}": math.nan for k in PPL_KEYS})
        rolling, _how = rolling_loglik(model, self.docs, self.encode, self.seq_len, self.eot, ctx.device)
        rm = rolling.metrics()
        rec["rolling_token_ppl"], rec["rolling_bits_per_byte"] = rm["token_ppl"], rm["bits_per_byte"]
        accs = {}
        for name, item in self.task.items():
            ctx.check_deadline()
            accs[name], _ = item_accuracy(model, item, self.seq_len, ctx.device)
            rec[f"state.{name}"] = accs[name]
        rec["state_score"] = float(np.mean(list(accs.values())))
        recall = {int(k.split("_")[1]): v for k, v in accs.items() if k.startswith("recall_")}
        chance = float(np.mean([self.task[k].chance for k in self.task if k.startswith("recall_")] or [0.0]))
        rec["persistence_turns"] = dialogue.persistence_score(recall, chance) if recall else math.nan
        if self.ctx_seqs is not None:
            losses = position_losses(model, self.ctx_seqs, self.seq_len, ctx.device)
            buckets = bucket_losses(losses, self.seq_len, self.multiples)
            rec.update({f"ctx_loss.{k}": v for k, v in buckets.items()})
            rec["useful_context"] = useful_context(buckets)
        else:
            rec.update({f"ctx_loss.{k}": math.nan for k in self.multiples})
            rec["useful_context"] = math.nan
        label = f"{pair.rung}.{role}"
        self.curves.setdefault(label, []).append(res.losses)
        if sample and int(self.p.get("samples", 3)) > 0:
            self.samples[f"{label} ({'recurrent' if is_recurrent(model) else 'attention'})"] = \
                self._continuations(model, seed)
        if role == "candidate":  # last: it moves the model to the CPU
            rec.update(self._state_checks(model, pair, persistence=sample))
        del model
        release(ctx.device)
        return rec, batches.digest(), res.steps

    def _state_checks(self, model: torch.nn.Module, pair: RungPair, persistence: bool) -> dict[str, float]:
        """GroundThink's S0-S4 on this *trained* candidate (on the CPU, float32), and on the first seed
        the state saved, resumed in a fresh process and continued (pytest_goni.v5.state_checks)."""
        model = model.cpu().float().eval()
        res = s_checks(model, self.vocab, STATE_LENGTH)
        if persistence:
            with tempfile.TemporaryDirectory(prefix="goni-resume-") as tmp:
                res["persistence_max_diff"] = persistence_diff(model, dict(pair.candidate), self.vocab, STATE_LENGTH,
                                                               RESUME_TOKENS, Path(tmp))
        return {f"s_checks.{k}": v for k, v in res.items()}

    def _decode(self, ids: list[int]) -> str:
        raw = [self.raw_id[i] for i in ids] if self.raw_id is not None else ids
        if self.tok.name == "byte":
            return bytes(raw).decode("utf-8", errors="replace")
        from pytest_goni.tokenizers import load_tokenizer

        return load_tokenizer(self.tok.name).tokenizer.decode(raw)

    def _continuations(self, model: torch.nn.Module, seed: int) -> list[tuple[str, str]]:
        n = int(self.p.get("samples", 3))
        prompts = [self.task["interrupted_dialogue"].episodes[0].prompt]
        prompts += [d[:160] for d in self.docs[:max(0, n - 1)]]
        out = []
        for k, prompt in enumerate(prompts[:n]):
            ids = self.encode(prompt)
            cont = continue_text(model, ids, int(self.p.get("sample_tokens", 24)), self.seq_len,
                                 self.ctx.device, np.random.default_rng([seed, k]))
            out.append((prompt, self._decode(cont)))
        return out

    # ------------------------------------------------------------------------------ metrics
    def _rung_metrics(self, rung: str, pair: RungPair, per: dict, hashes: dict, steps_run: dict,
                      chash: str) -> dict[str, Metric]:
        out: dict[str, Metric] = {}
        meta = {"config_hash": chash, "seeds": self.seeds, "steps": self.steps, "match": pair.match,
                "configs": {"candidate": pair.candidate, "baseline": pair.baseline}}
        failed = [why for _, why in self.checks.values() if why]
        task_invalid = "statefulness task failed its known-answer check: " + "; ".join(failed) if failed else None
        tests = {role: beats_chance({k: per[role][f"state.{k}"] for k in self.task}, self.task) for role in ROLES}
        compare_invalid = None if failed else comparison_invalid(tests)
        for role in ROLES:
            for k, vals in per[role].items():
                unit = PER_RUN.get(k, "")
                extra = metric_flags(k, task_invalid, compare_invalid, self.rolling_invalid, self.eval_skip)
                exact = {"exact": True} if k in ("params", "params_non_embedding") else {}
                m = Metric.of(vals if not exact else vals[:1], unit, **meta, **extra, **exact)
                if k == "peak_mem" and not self.ctx.is_cuda:
                    m.note = "training peak memory is measured on CUDA only (max_memory_allocated)"
                out[f"{rung}.{role}.{k}"] = m
        for name, item in self.task.items():
            acc, why = self.checks[name]
            out[f"{rung}.task.{name}.chance"] = Metric.scalar(item.chance, "", exact=True)
            out[f"{rung}.task.{name}.oracle"] = Metric.scalar(acc, "", exact=True, note=why or "")
        for role, t in tests.items():
            out[f"{rung}.{role}.state_chance_p"] = Metric.scalar(
                t.p, "", exact=True, hits=t.hits, expected=t.expected, answers=t.n, z=t.z, seed_rule=t.seed_rule,
                note=f"one-sided test of the statefulness answers against chance: {t.text()}")
        out[f"{rung}.state_comparable"] = Metric.scalar(float(compare_invalid is None and not failed), "", exact=True,
                                                        note=compare_invalid or task_invalid or "")
        out[f"{rung}.task_chance"] = Metric.scalar(float(np.mean([i.chance for i in self.task.values()])), "",
                                                   exact=True)
        out[f"{rung}.task_valid"] = Metric.scalar(0.0 if failed else 1.0, "", exact=True,
                                                  note="; ".join(failed))
        same = hashes["candidate"] == hashes["baseline"]
        out[f"{rung}.same_batches"] = Metric.scalar(float(same), "", exact=True, batch_hashes=hashes,
                                                    note="SHA-256 of every batch served, per seed")
        out[f"{rung}.same_tokenizer"] = Metric.scalar(1.0, "", exact=True, tokenizer=self.tok.name,
                                                      vocab_size=self.vocab,
                                                      note="both models read one tokenized stream")
        out[f"{rung}.same_steps"] = Metric.scalar(float(steps_run["candidate"] == steps_run["baseline"]), "",
                                                  exact=True, steps=steps_run, optim=describe_config(self.cfg))
        out[f"{rung}.same_val_set"] = Metric.scalar(1.0, "", exact=True, val_hash=self.val_hash)
        multi = sum(w > 1 for w in self.doc_windows)
        out[f"{rung}.ppl_multiwindow_docs"] = Metric.scalar(
            float(multi), "", exact=True, windows=self.doc_windows, window=self.seq_len,
            note=f"{multi} of {len(self.doc_windows)} perplexity documents span more than one {self.seq_len}-token "
                 "window (only those can score differently rolling)")
        return out

    def _artifacts(self, rows: dict[str, dict[str, dict[str, float]]], out: dict[str, Metric]) -> None:
        text = matrix_markdown(rows, self.multiples)
        self.ctx.artifact("matrix.md").write_text(text)
        self.ctx.log(text)
        first = next(iter(out.values()))
        first.meta["matrix"] = rows
        first.meta["report"] = "The seed's 4-way comparison matrix (means over seeds)\n\n" + text
        if self.samples:
            sheet, key = blind_sheet(self.samples, self.seeds[0])
            self.ctx.artifact("blind_samples.md").write_text(sheet)
            first.meta["blind_key"] = key
        try:
            _plots(self.ctx, self.curves, rows, self.multiples, self.seeds)
        except Exception as exc:  # a plot must never cost the measurement
            self.ctx.log(f"plots failed: {exc}")


#: Per-run keys that compare the two models' statefulness: INVALID when neither beats chance.
COMPARED = ("state_score", "persistence_turns")


def comparison_invalid(tests: dict[str, ChanceTest]) -> str | None:
    """Why the statefulness comparison is not evidence, or None: when neither model's answers beat
    chance significantly, whichever scores higher does so by the draw of the episodes (as
    specs/archcomp.yaml's tasks are INVALID when the strong baseline does not learn them)."""
    if any(t.significant for t in tests.values()):
        return None
    shown = "; ".join(f"{'GPT-2' if role == 'baseline' else role} {t.text()}" for role, t in tests.items())
    alpha = next(iter(tests.values())).alpha
    return (f"neither model beats chance on the statefulness family at alpha {alpha:g} ({shown}): a comparison "
            "neither side can perform is not evidence")


def metric_flags(key: str, task_invalid: str | None, compare_invalid: str | None, rolling_why: str | None,
                 eval_skip: dict[str, str]) -> dict[str, str]:
    """The validity meta of one per-run metric: ``invalid`` (the task failed its known-answer check:
    every statefulness value; neither model beats chance: the compared ones; no document spans two
    windows: the rolling ones) or ``skip`` (an evaluation set without a path)."""
    if key.split(".")[0] in eval_skip:
        return {"skip": eval_skip[key.split(".")[0]]}
    if task_invalid and (key.startswith("state") or key == "persistence_turns"):
        return {"invalid": task_invalid}
    if compare_invalid and key in COMPARED:
        return {"invalid": compare_invalid}
    if rolling_why and key.startswith("rolling_"):
        return {"invalid": rolling_why}
    return {}


def matrix_markdown(rows: dict[str, dict[str, dict[str, float]]], multiples: list[int]) -> str:
    """The seed's 4-way comparison matrix (lines 606-616), one table per rung (means over seeds)."""
    kmax = max(multiples)
    spec = [("Perplexity (validation)", "val_ppl", "{:.2f}", "Ours <= GPT-2"),
            ("Training speed (tokens/s)", "train_tok_s", "{:,.0f}", "Ours > GPT-2 (efficiency claim)"),
            ("Memory usage (training peak, MiB)", "peak_mem", "{:.1f}", "Ours < GPT-2 (state-space advantage)"),
            (f"Context scaling (loss at {kmax}C / at C)", "ctx_ratio", "{:.3f}", "Ours degrades slower"),
            ("Stateful task accuracy", "state_score", "{:.3f}", "Ours >>> GPT-2 (our specialty)")]
    lines = []
    for rung, per in rows.items():
        lines += [f"### Rung {rung}", "", "| Metric | Our model | GPT-2 (custom) | Ideal outcome |",
                  "|---|---:|---:|---|"]
        for title, key, fmt, ideal in spec:
            vals = []
            for role in ROLES:
                r = per[role]
                if key == "ctx_ratio":
                    v = r.get(f"ctx_loss.{kmax}", math.nan) / r.get("ctx_loss.1", math.nan)
                elif key == "peak_mem":
                    v = r.get(key, math.nan) / 2**20
                else:
                    v = r.get(key, math.nan)
                vals.append(fmt.format(v) if math.isfinite(v) else "n/a")
            lines.append(f"| {title} | {vals[0]} | {vals[1]} | {ideal} |")
        lines.append("")
    return "\n".join(lines)


def _plots(ctx: Any, curves: dict, rows: dict, multiples: list[int], seeds: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pytest_goni.plots import plot_loss_curves

    plot_loss_curves(curves, seeds, ctx.artifact("training-loss-per-step.png"), title=f"{ctx.spec_id}: training loss",
                     gate_lines=getattr(ctx, "gate_lines", ()))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for rung, per in rows.items():
        for role in ROLES:
            r = per[role]
            axes[0].plot(multiples, [r.get(f"ctx_loss.{k}", math.nan) for k in multiples], marker="o",
                         label=f"{rung} {role}")
            dists = sorted(int(k.split("_")[1]) for k in r if k.startswith("state.recall_"))
            axes[1].plot(dists, [r[f"state.recall_{d}"] for d in dists], marker="o", label=f"{rung} {role}")
    axes[0].set(xscale="log", xlabel="position (multiples of the training context)", ylabel="loss",
                title="context degradation")
    axes[1].set(xlabel="distractor turns", ylabel="recall accuracy", title="retention vs turns")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ctx.artifact("loss-vs-position-and-recall-vs-turns.png"), dpi=110)
    plt.close(fig)
    _plot_scaling(ctx, rows, plt)


def _plot_scaling(ctx: Any, rows: dict, plt: Any) -> None:
    """Validation loss against non-embedding parameters per model, log-log, with the fitted law
    L = a N^-b + c (c held at 0 below three rungs), as the seed asks (lines 502: 'Plot loss vs
    params for both models on log-log scale. Curves should be parallel')."""
    from pytest_goni.gate_kinds.fit import fit_law, law

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for role in ROLES:
        n = np.array([per[role]["params_non_embedding"] for per in rows.values()])
        y = np.array([per[role]["val_loss"] for per in rows.values()])
        (line,) = ax.plot(n, y, "o", label=role)
        if len(set(n.tolist())) >= 2 and np.isfinite(y).all():
            f = fit_law(n, y, fix_c=None if len(set(n.tolist())) >= 3 else 0.0)
            grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 50)
            ax.plot(grid, [law(f, g) for g in grid], "-", color=line.get_color(),
                    label=f"{role}: {f['a']:.3g} N^-{f['b']:.3f} + {f['c']:.3g}")
    ax.set(xscale="log", yscale="log", xlabel="non-embedding parameters", ylabel="validation loss",
           title="scaling (means over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ctx.artifact("validation-loss-vs-parameters.png"), dpi=110)
    plt.close(fig)
