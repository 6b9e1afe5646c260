"""Where a training step's time goes, beside what a plain nanoGPT-style step reaches on the same GPU.

    source benchmarks/device_env.sh && python3 benchmarks/train_profile.py --out $OUT/train-profile.jsonl
    python benchmarks/train_profile.py --cpu-smoke --out /tmp/train-profile.jsonl   # plumbing, seconds

Issue 13 asks GPT-2 125M (B=16, T=1024, GPT-2 vocabulary, bf16) for >= 40% MFU; the loop reached
23.2% compiled on 2026-12-01 (66.4 ms a step where 40% is 38.5 ms), then 38.3% with the loss in the
compiled graph (``loop-whole``, 40.1 ms; the default since); GPT-2 now trains through its plain forward
by default (``loop-plain``, not measured yet). This script measures, side by side in one process, the
parts that could hold it back:

- ``loop``: ``pytest_goni.training.train`` with ``compile_loss=False`` (compiled ``features``, the
  eager chunked loss with its Triton kernel, fused AdamW; the loop's default until 2026-12-01):
  tokens/s; then more steps of the same model under torch.profiler:
  GPU time per step by kind of kernel (matmul, our loss kernel, attention, Inductor's fused kernels,
  optimizer and clipping, other) and GPU busy time against the step's wall time (busy << wall: the
  host or a sync holds the GPU back). ``loop-pad64``: the same with the head padded to 50,304 rows.
- ``loop-whole``: the loop with ``compile_loss`` (``train(..., compile_loss=True)``; the loop's
  default whenever it compiles since 2026-12-01's H200 rows, 40.1 ms a step against the ``loop``
  row's 66.6): features, head and a torch-only chunked cross-entropy compiled as one graph, so
  Inductor sees the loss too (no Triton kernel of ours, no eager chunk loop); measured and profiled
  exactly as ``loop``. Every loop
  row says how many graphs Dynamo compiled and how many graph breaks it took (``dynamo``; with the
  profiled steps' recompilations, if any): loop-whole should be one graph for GPT-2.
  ``loop-whole-pad64`` (asked for): the same with the head padded to 50,304 rows.
  Every row above trains through transformers' module (``plain_forward=False``), as measured before.
- ``loop-plain``: the loop as it now runs GPT-2 (``train``'s defaults when compiling): ``loop-whole``
  with the features through the plain forward over the same parameters (``GPT2Backend.train_features``:
  one qkv addmm, SDPA causal, tanh GELU); ``loop-plain-pad64``: the same with the head padded to
  50,304 rows. Beside ``loop-whole``, ``loop-whole-pad64`` and ``reference`` they split what is left
  between transformers' module and the unaligned vocabulary width.
- ``loss``: ``linear_cross_entropy`` forward+backward alone on [B*T, d] x [V, d] under autocast,
  V as is (50,257) and padded to a multiple of 64; ``head-mm``: one chunk's head matmul at both widths.
- ``features``: the compiled ``features`` forward+backward alone (the loss replaced by a fixed
  gradient), the step minus the loss and the optimizer.
- ``loop-shifted`` / ``loop-triton-conv`` (asked for): the loop of each ``--backends`` entry that has a
  short conv (deltanet, gated-deltanet, mamba2, groundthink) with ShortConv as shifted multiply-adds /
  as the Triton kernel with its backward (``models.layers.SHORT_CONV_FORM``).
- ``loop-delta-qk16`` (asked for): the loop of each ``--backends`` entry with a delta rule (deltanet,
  gated-deltanet) with q, k handed to it in the projections' dtype (``models.deltanet.QK_PROJ_DTYPE``;
  otherwise CUDA autocast's float32 ``F.normalize`` makes them float32 and the kernels run at float32).
- ``conv``: ShortConv forward+backward alone at the models' widths: cuDNN, shifted and Triton, eager
  and compiled.
- ``reference``: a plain GPT of GPT-2 125M's shape (pre-LayerNorm blocks, fused qkv, SDPA causal,
  tanh GELU, tied head with the vocabulary padded to 50,304), its whole step's forward compiled with
  ``F.cross_entropy``, fused AdamW, clipping, bf16 autocast: what this shape reaches without the harness.
- ``hf-whole``: the loop's transformers GPT-2, whole model + ``F.cross_entropy`` compiled in one piece.

MFU is 6 N tokens/s over the bf16 matmul rate measured at the start (N: a loop row's own model; the
other rows at 125M use GPT-2 125M's 124,439,808, so they compare as tokens/s do). ``--size 8M
--backends gpt2 gated-deltanet ... --parts loop`` profiles other backends' steps the same way.
Every row: date, device, versions, commit, command, config. Nothing here changes the loop; a faster
variant becomes the loop's default only after its row shows it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch._dynamo.utils import counters

sys.path.insert(0, str(Path(__file__).parent))
from training import device_name, git_commit, markov_tokens, matmul_rate, sync, versions  # noqa: E402

from pytest_goni import losses  # noqa: E402
from pytest_goni.lm_data import WindowBatches  # noqa: E402
from pytest_goni.registry import load_builtins, resolve_backend  # noqa: E402
from pytest_goni.training import OptimConfig, autocast_context, make_optimizer, train  # noqa: E402

GPT2_125M = 124_439_808
#: kernel-name fragments -> kind, first match wins (lower case)
KINDS = (("convolution", ("conv", "dgrad", "wgrad", "fprop_implicit")),
         ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "splitk", "cublas", "gemv")),
         ("attention", ("flash", "fmha", "sdpa", "attention")),
         ("loss kernel", ("_ce_rows",)),
         ("loss kernel (Inductor)", ("logsumexp",)),  # loop-whole: the fused softmax (+ gradient) kernels
         ("optimizer + clip", ("adam", "multi_tensor", "foreach", "l2norm")),
         ("inductor fused", ("triton_",)),
         ("memcpy / memset", ("memcpy", "memset")),
         ("embedding", ("embedding", "index", "scatter", "gather")),
         ("elementwise / reduce (aten)", ("elementwise", "reduce", "vectorized")))


#: kernels listed by name in a loop row (``top_kernels``), the most GPU time first
TOP_KERNELS = 15


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, parts in KINDS:
        if any(p in low for p in parts):
            return kind
    return "other"


class PlainGPT(nn.Module):
    """GPT-2's shape, written plainly (the nanoGPT layout): the reference step's model."""

    def __init__(self, vocab: int, d: int = 768, layers: int = 12, heads: int = 12, seq: int = 1024):
        super().__init__()
        self.heads = heads
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "ln1": nn.LayerNorm(d), "qkv": nn.Linear(d, 3 * d), "proj": nn.Linear(d, d),
            "ln2": nn.LayerNorm(d), "up": nn.Linear(d, 4 * d), "down": nn.Linear(4 * d, d)})
            for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        b, t = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))  # [B, T, d]
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["ln1"](x)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, D]
            x = x + blk["proj"](o.transpose(1, 2).reshape(b, t, -1))
            x = x + blk["down"](F.gelu(blk["up"](blk["ln2"](x)), approximate="tanh"))
        return self.ln_f(x) @ self.wte.weight.T  # [B, T, V] logits, tied head


def timed_steps(step: Any, batches: WindowBatches, device: str, warmup: int, steps: int) -> tuple[float, float]:
    """(first ``warmup`` steps' seconds, mean seconds of the next ``steps``): host-timed, synced once."""
    t0 = time.perf_counter()
    for i in range(warmup):
        step(*batches(i))
    sync(device)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        step(*batches(warmup + i))
    sync(device)
    return first, (time.perf_counter() - t0) / steps


def whole_step(model: nn.Module, forward: Any, device: str, compile: bool) -> Any:
    """A step whose loss is F.cross_entropy of the full logits, ``forward`` compiled as one piece."""
    opt = make_optimizer(model, OptimConfig())
    loss_fn = torch.compile(forward) if compile else forward
    params = [p for p in model.parameters() if p.requires_grad]
    dev = torch.device(device)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast_context(dev, None):
            loss = loss_fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True if dev.type == "cuda" else None)
        opt.step()
    return step


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = "cpu" if args.cpu_smoke else args.device
        if self.device.startswith("cuda"):
            torch.cuda.set_device(torch.device(self.device))
        smoke = args.cpu_smoke
        self.vocab = 256 if smoke else 50257
        self.cfg: dict[str, Any] = ({"vocab_size": 256, "d_model": 32, "n_layers": 2, "n_heads": 2, "max_seq_len": 64}
                                    if smoke else {"size": args.size, "vocab_size": 50257, "max_seq_len": 1024})
        self.batch, self.seq = (2, 32) if smoke else (args.batch, args.seq)
        self.compile = not smoke and not args.eager
        self.meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "device": device_name(self.device), "versions": versions(), "commit": git_commit(),
                     "command": " ".join(sys.argv), "batch": self.batch, "seq": self.seq,
                     "autocast": "bf16" if self.device.startswith("cuda") else "off"}
        self.meta["matmul_flops"] = matmul_rate(self.device)
        self.ids = markov_tokens(1 << 14 if smoke else 1 << 21, self.vocab)
        self.out = open(args.out, "a")  # noqa: SIM115 - closed in main()

    def emit(self, part: str, **rec: Any) -> None:
        rec = {**self.meta, "part": part, "config": {**self.cfg, **rec.pop("config", {})}, **rec}
        tok_s = rec.get("tokens_per_s")
        if tok_s:
            n = rec.get("params") or (GPT2_125M if self.cfg.get("size") == "125M" else None)
            rec["mfu"] = 6 * n * tok_s / self.meta["matmul_flops"] if n else None
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()
        print(summary(rec), flush=True)

    def batches(self) -> WindowBatches:
        return WindowBatches(self.ids, self.seq, self.batch, seed=0)

    def model(self, backend: str = "gpt2") -> nn.Module:
        torch.manual_seed(0)
        cfg = self.cfg if backend == "gpt2" else {k: v for k, v in self.cfg.items() if k != "max_seq_len"}
        return resolve_backend(backend)(**cfg).to(self.device)


def summary(r: dict[str, Any]) -> str:
    head = f"{r['part']:>12} {r['config'].get('backend', '')}"
    if r.get("status", "ok") != "ok":
        return f"{head}  [{r['status']}: {r.get('note', '')[:160]}]"
    parts = []
    if "step_ms" in r:
        parts.append(f"{r['step_ms']:8.2f} ms/step")
    if "tokens_per_s" in r:
        mfu = f"  MFU {100 * r['mfu']:5.1f}%" if r.get("mfu") else ""
        parts.append(f"{r['tokens_per_s']:>10,.0f} tok/s{mfu}")
    if "gpu_busy_ms" in r:
        parts.append(f"GPU busy {r['gpu_busy_ms']:.2f} ms/step")
    for key in ("ms", "ms_by_kind", "top_kernels"):
        if r.get(key):
            parts.append("\n" + " " * 14 + ("\n" + " " * 14).join(
                f"{k}: {v:.3g}" if "not ms" in k else f"{k}: {v:.3f} ms" for k, v in r[key].items()))
    return f"{head}  " + "  ".join(parts)


def guarded(run: Run, part: str, fn: Any) -> None:
    """Run one part; a failure (OOM, compile error) is a row and the run goes on."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - recorded
        first = str(exc).splitlines()[0] if str(exc) else ""
        run.emit(part, status="error", note=f"{type(exc).__name__}: {first}"[:300])
    finally:
        torch._dynamo.reset()
        if run.device.startswith("cuda"):
            torch.cuda.empty_cache()


def part_loop(run: Run, part: str, pad: int, backend: str = "gpt2", conv_form: str = "conv1d",
              compile_loss: bool = False, plain: bool = False, delta_qk16: bool = False) -> None:
    """The loop itself: tokens/s, then per-kind GPU time per step under torch.profiler. ``conv_form``:
    ShortConv's parallel form (models.layers.SHORT_CONV_FORM) for this row; ``compile_loss``: the
    loss compiled with the features (``train(..., compile_loss=True)``); ``plain``: the model's plain
    training forward where it has one (``train(..., plain_forward=True)``, GPT-2's); ``delta_qk16``:
    (gated) DeltaNet hands the delta rule q, k in the projections' dtype (models.deltanet.QK_PROJ_DTYPE)."""
    from pytest_goni.models import deltanet, layers

    a = run.args
    saved = losses.DEFAULT_PAD_VOCAB, layers.SHORT_CONV_FORM, deltanet.QK_PROJ_DTYPE
    losses.DEFAULT_PAD_VOCAB = pad
    layers.SHORT_CONV_FORM = conv_form
    deltanet.QK_PROJ_DTYPE = delta_qk16 or deltanet.QK_PROJ_DTYPE
    try:
        model = run.model(backend)
        if conv_form != "conv1d" and not any(isinstance(m, layers.ShortConv) for m in model.modules()):
            return  # no short conv: the row would repeat the loop's
        if delta_qk16 and not any(isinstance(m, deltanet.DeltaNetMixer) for m in model.modules()):
            return  # no delta rule: the row would repeat the loop's
        counters.clear()
        res = train(model, run.batches(), a.warmup + a.steps, OptimConfig(lr=1e-3, warmup=0.1), device=run.device,
                    compile=run.compile, untimed_steps=a.warmup, log_every=64, compile_loss=compile_loss,
                    plain_forward=plain)
        step_s = res.train_seconds / a.steps
        kinds, busy, top = profile_steps(run, model, a.profile_steps, compile_loss, plain)
        dynamo = {"graphs": counters["stats"]["unique_graphs"], "graph_breaks": sum(counters["graph_break"].values())}
        run.emit(part, config={"backend": backend, "pad_vocab": pad, "short_conv": conv_form,
                               "delta_qk_proj_dtype": deltanet.QK_PROJ_DTYPE, "wy_mask_result": wy_mask_result(),
                               "compiled": res.compiled, "compile_loss": compile_loss, "forward": res.forward},
                 params=model.num_params(), tokens_per_s=res.tokens_per_second,
                 step_ms=1e3 * step_s, first_steps_s=res.first_step_seconds, compile_error=res.compile_error,
                 gpu_busy_ms=busy, ms_by_kind=kinds, gpu_busy_fraction=busy / (1e3 * step_s) if step_s else None,
                 top_kernels=top, losses=res.losses, dynamo=dynamo)
    finally:
        losses.DEFAULT_PAD_VOCAB, layers.SHORT_CONV_FORM, deltanet.QK_PROJ_DTYPE = saved


def wy_mask_result() -> bool | None:
    """The delta rules' WY inverse form this process runs (kernels/triton/common.py, GONI_WY_MASK_RESULT)."""
    try:
        from pytest_goni.kernels.triton import common
    except ImportError:  # no Triton here: the torch forms run
        return None
    return common.WY_MASK_RESULT


def profile_steps(run: Run, model: nn.Module, steps: int, compile_loss: bool = False, plain: bool = False
                  ) -> tuple[dict[str, float], float, dict[str, float]]:
    """GPU ms per step by kind over ``steps`` more steps of ``model`` (already compiled and warm), their
    sum, and the :data:`TOP_KERNELS` kernels with the most ms per step by name (which attention kernel
    ran, which GEMMs)."""
    if not run.device.startswith("cuda") or steps < 1:
        return {}, 0.0, {}
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        train(model, run.batches(), steps, OptimConfig(lr=1e-3, warmup=0.1), device=run.device,
              compile=run.compile, untimed_steps=1, log_every=64, compile_loss=compile_loss, plain_forward=plain)
    by_kind: Counter = Counter()
    by_name: Counter = Counter()
    for ev in prof.events():
        if ev.device_type != torch.autograd.DeviceType.CUDA or getattr(ev, "is_user_annotation", False):
            continue
        ms = ev.time_range.elapsed_us() / 1e3
        by_kind[kind_of(ev.name)] += ms
        by_name[ev.name[:120]] += ms
    per_step = {k: round(v / steps, 3) for k, v in by_kind.most_common()}
    top = {k: round(v / steps, 3) for k, v in by_name.most_common(TOP_KERNELS)}
    return per_step, sum(per_step.values()), top


def part_loss(run: Run) -> None:
    """linear_cross_entropy forward+backward alone, unpadded and padded; one chunk's head matmul."""
    n, d = run.batch * run.seq, (32 if run.args.cpu_smoke else 768)
    g = torch.Generator(device=run.device).manual_seed(0)
    half = torch.bfloat16 if run.device.startswith("cuda") else torch.float32  # what autocast hands the loss
    h = torch.randn(n, d, device=run.device, generator=g, dtype=half)
    w = torch.randn(run.vocab, d, device=run.device, generator=g) * 0.02
    t = torch.randint(0, run.vocab, (n,), device=run.device, generator=g)
    h.requires_grad_(True)
    w.requires_grad_(True)
    dev = torch.device(run.device)
    ms: dict[str, float] = {}
    for pad in (0, 64):
        def fwd_bwd(pad: int = pad) -> None:
            with autocast_context(dev, None):
                loss = losses.linear_cross_entropy(h, w, t, pad_vocab=pad)
            loss.backward()
        ms[f"loss fwd+bwd, pad {pad}"] = 1e3 * device_time(run, fwd_bwd)
    chunk = losses.chunk_tokens(run.vocab, n)
    a = h.detach()[:chunk]
    for width in (run.vocab, losses.padded(run.vocab, 64)):
        wb = torch.zeros(width, d, device=run.device, dtype=a.dtype)
        ms[f"head mm [{chunk}, {d}] x [{d}, {width}]"] = 1e3 * device_time(run, lambda wb=wb: a @ wb.T)
    run.emit("loss", config={"tokens": n, "d": d, "chunk": chunk}, ms=ms)


def device_time(run: Run, fn: Any, reps: int = 10) -> float:
    """Median seconds of ``fn`` (after 2 warm-ups): CUDA events on a GPU, the host clock on the CPU."""
    if run.args.cpu_smoke:
        reps = 1  # plumbing only
    for _ in range(2):
        fn()
    sync(run.device)
    out = []
    for _ in range(reps):
        if run.device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(out)


def part_features(run: Run) -> None:
    """The compiled features forward+backward alone (a fixed output gradient instead of the loss)."""
    model = run.model()
    body = torch.compile(model.features) if run.compile else model.features
    dev = torch.device(run.device)
    x, _ = run.batches()(0)
    x = x.to(run.device)
    grad = None

    def fwd_bwd() -> None:
        nonlocal grad
        with autocast_context(dev, None):
            hidden = body(x)
        if grad is None:
            grad = torch.randn_like(hidden) * 1e-3
        hidden.backward(grad)

    sec = device_time(run, fwd_bwd, reps=5)
    run.emit("features", step_ms=1e3 * sec)  # no tokens/s: a part of a step, not a step


def part_whole(run: Run, part: str) -> None:
    """``reference`` (PlainGPT, vocabulary padded to 50,304) or ``hf-whole`` (the loop's GPT-2): model
    and F.cross_entropy compiled as one piece, fused AdamW, clipping, autocast."""
    a = run.args
    if part == "reference":
        vocab = losses.padded(run.vocab, 64)
        d, layers, heads = (32, 2, 2) if a.cpu_smoke else (768, 12, 12)
        torch.manual_seed(0)
        model = PlainGPT(vocab, d, layers, heads, run.seq).to(run.device)
        config = {"model": "PlainGPT", "vocab_padded": vocab, "d_model": d, "n_layers": layers,
                  "params": sum(p.numel() for p in model.parameters())}
    else:
        model = run.model()
        config = {"model": "transformers GPT2LMHeadModel, whole"}

    def forward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.view(-1))

    step = whole_step(model, forward, run.device, run.compile)
    first, sec = timed_steps(step, run.batches(), run.device, a.warmup, a.steps)
    run.emit(part, config=config, step_ms=1e3 * sec, tokens_per_s=run.batch * run.seq / sec, first_steps_s=first)


def fwd_bwd(dev: torch.device, fn: Any, args: tuple) -> None:
    """``fn(*args)`` under the run's autocast, then a backward through a scalar of it."""
    with autocast_context(dev, None):
        y = fn(*args)
    y.float().square().mean().backward()


def with_conv_form(form: str, fn: Any) -> Any:
    """``fn`` called with ShortConv's parallel form set to ``form`` (and the default restored). On the
    CPU the "triton" form runs the kernels in Triton's interpreter when TRITON_INTERPRET=1 (a dry run)."""
    import contextlib

    from pytest_goni.kernels import ops
    from pytest_goni.models import layers

    def call(*args: Any) -> Any:
        layers.SHORT_CONV_FORM = form
        interpret = form == "triton" and os.environ.get("TRITON_INTERPRET") == "1"
        try:
            with ops.dispatch_as("cuda") if interpret else contextlib.nullcontext():
                return fn(*args)
        finally:
            layers.SHORT_CONV_FORM = "conv1d"
    return call


#: (channels, bias) of the short convs in the models: gated-deltanet's q/k and v convs at 8M (deltanet
#: has the 384 one only), mamba2's (with bias); then the same at 30M
CONV_SHAPES = ((384, False), (768, False), (896, True), (512, False), (1024, False), (1152, True))
#: Triton conv tiles (tokens, channels) also timed eagerly beside the default (64, 64): for tuning
CONV_TILES = ((32, 64), (64, 128), (128, 64), (32, 128))


def part_conv(run: Run) -> None:
    """ShortConv (the deltanet / gated-deltanet / mamba2 short causal conv, SiLU and bias as the models)
    forward+backward at the 8M and 30M training shapes, its input in the autocast dtype as a projection
    hands it over: cuDNN's depthwise nn.Conv1d as the models run it, the shifted multiply-adds form and
    the Triton kernel (kernels/triton/short_conv.py), each eager and compiled. Suspect: the backends
    with the widest short convs are the slowest to train."""
    from pytest_goni.kernels.short_conv import causal_conv_triton
    from pytest_goni.models.layers import ShortConv

    b, t = run.batch, run.seq
    dev = torch.device(run.device)
    half = torch.bfloat16 if run.device.startswith("cuda") else torch.float32
    ms: dict[str, float] = {}
    for c, bias in (((32, True),) if run.args.cpu_smoke else CONV_SHAPES):
        torch.manual_seed(c)
        conv = ShortConv(c, 4, bias=bias).to(run.device)
        x = torch.randn(b, t, c, device=run.device, dtype=half, requires_grad=True)
        forms = {}
        for form in ("conv1d", "shifted", "triton"):
            label = "nn.Conv1d (cuDNN)" if form == "conv1d" else form
            forms[f"{label}, eager"] = with_conv_form(form, conv)
            if run.compile:
                torch._dynamo.reset()
                forms[f"{label}, compiled"] = with_conv_form(form, torch.compile(conv))
        for bt, bc in (CONV_TILES if run.device.startswith("cuda") or os.environ.get("TRITON_INTERPRET") == "1"
                       else ()):
            forms[f"triton tiles {bt}x{bc}, eager"] = (
                lambda x, bt=bt, bc=bc, m=conv.conv: causal_conv_triton(x, m.weight[:, 0], m.bias, True, bt, bc))
        for label, fn in forms.items():
            ms[f"C {c}{' +bias' if bias else ''}: {label}"] = 1e3 * device_time(
                run, lambda fn=fn, x=x: fwd_bwd(dev, fn, (x,)))
        with torch.no_grad(), autocast_context(dev, None):
            ref = conv(x).float()
            for form in ("shifted", "triton"):
                err = (with_conv_form(form, conv)(x).float() - ref).abs().max().item()
                ms[f"C {c}: {form} max |difference| from cuDNN (not ms)"] = err
    run.emit("conv", config={"B": b, "T": t, "kernel": 4, "activation": "silu", "input_dtype": str(half),
                             "shapes": [list(s) for s in CONV_SHAPES]}, ms=ms)


#: loop part -> ShortConv's parallel form in it
LOOP_CONV_FORMS = {"loop-shifted": "shifted", "loop-triton-conv": "triton"}


PARTS = ("loop", "loop-pad64", "loop-whole", "loop-whole-pad64", "loop-plain", "loop-plain-pad64", "loop-shifted",
         "loop-triton-conv", "loop-delta-qk16", "loss", "features", "reference", "hf-whole", "conv")
DEFAULT_PARTS = ("loop-whole", "loop-whole-pad64", "loop-plain", "loop-plain-pad64", "reference", "loop", "loss",
                 "features", "hf-whole", "conv")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="jsonl file to append rows to")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--parts", nargs="+", default=list(DEFAULT_PARTS), choices=PARTS,
                   help="loop-shifted / loop-triton-conv: the loop with ShortConv as shifted multiply-adds / the "
                        "Triton kernel (backends that have one)")
    p.add_argument("--size", default="125M", choices=["8M", "30M", "125M"], help="size preset of every model")
    p.add_argument("--backends", nargs="+", default=["gpt2"],
                   help="backends the loop part profiles (the other parts are GPT-2's)")
    p.add_argument("--eager", action="store_true", help="the loop parts without torch.compile")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation, JIT)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--profile-steps", type=int, default=4, help="steps under torch.profiler (loop parts)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny model on the CPU, no compile: plumbing only")
    args = p.parse_args(argv)
    load_builtins()
    run = Run(args)
    print(f"{run.meta['device']}: bf16 matmul {run.meta['matmul_flops'] / 1e12:.0f} TFLOP/s", flush=True)
    for part in args.parts:
        if part.startswith("loop"):
            per_backend = part in ("loop", "loop-delta-qk16") or part in LOOP_CONV_FORMS
            for backend in args.backends if per_backend else ["gpt2"]:
                form = LOOP_CONV_FORMS.get(part, "conv1d")
                guarded(run, part, lambda part=part, backend=backend, form=form:
                        part_loop(run, part, 64 if part.endswith("pad64") else 0, backend, form,
                                  compile_loss=part.startswith(("loop-whole", "loop-plain")),
                                  plain=part.startswith("loop-plain"), delta_qk16=part == "loop-delta-qk16"))
        elif part == "loss":
            guarded(run, part, lambda: part_loss(run))
        elif part == "features":
            guarded(run, part, lambda: part_features(run))
        elif part == "conv":
            guarded(run, part, lambda: part_conv(run))
        else:
            guarded(run, part, lambda part=part: part_whole(run, part))
    run.out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
