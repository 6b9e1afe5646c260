"""The training loop shared by the measurement kinds that train a model (train_lm, recall; V5 later).

One loop, so every model compared is trained the same way: AdamW (decoupled weight decay on
matrices only; the fused CUDA kernel on a GPU), cosine schedule with linear warm-up, gradient
clipping, bf16 autocast on CUDA, and batches that come from a caller-supplied function of the step
index, so two models given the same function see exactly the same batches in the same order.

What makes it fast without changing what it computes:

- no host synchronisation per step: losses and gradient norms stay on the device and are copied
  back every ``log_every`` steps (a non-finite loss still stops the run, at most two reads late);
- the LM head's cross-entropy is taken in chunks of tokens (:mod:`pytest_goni.losses`) when the
  model exposes ``features`` and ``head``, so [B, T, V] float32 logits never exist at once;
- ``torch.compile`` where it pays for itself (on CUDA, for runs of at least
  :data:`COMPILE_MIN_STEPS` steps, unless asked otherwise) of the whole forward: ``features``, the
  head and a torch-only chunked cross-entropy as one graph (``compile_loss``, on whenever the loop
  compiles), so Inductor fuses each chunk's softmax and gradient and schedules the head's matmuls
  with the body. Measured on the H200 (GPT-2 125M, B 16, T 1024, 2026-12-01,
  benchmarks/results/2026-12-01-h200-train-profile/): 40.1 ms a step against 66.6 ms with the
  loss eager beside compiled ``features``. The first step, which holds the compilation and the
  kernels' JIT, is timed apart (``first_step_seconds``) and never enters tokens/s. If the first
  step fails with compilation on (or, on CUDA, in the Triton loss kernel), the run falls back to
  eager torch with the eager loss and ``compile_error`` says why;
- without compilation (the CPU, short runs), or with ``compile_loss=False`` beside compiled
  ``features``, the loss is an eager chunk loop; on CUDA each chunk's softmax and gradient are one
  Triton kernel, in place on its bf16 logits;
- a model's plain training forward (``train_features``, same parameters and values as
  ``features``: GPT-2's nanoGPT-style block over transformers' weights) when it has one, unless
  ``plain_forward=False``; evaluation keeps ``features``. ``TrainResult.forward`` says which ran.

Several processes (``gpus > 1``, or a torchrun launch) run the same loop under
DistributedDataParallel: see :mod:`pytest_goni.distributed`. Each rank takes its rows of the same
global batch and the loss is normalised by the global count of scored targets, so the gradients,
and hence the run, are the single-process run's up to reduction order.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytest_goni.errors import exception_note
from pytest_goni.losses import compilable_linear_cross_entropy, linear_cross_entropy

#: Targets equal to this are not scored (padding, non-query positions of a recall task).
IGNORE_INDEX = -100

#: Below this many steps compilation (tens of seconds) costs more than it saves; see ``train``.
COMPILE_MIN_STEPS = 2000

BatchFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class OptimConfig:
    """Optimizer and schedule settings; the defaults are the V5 matching recipe's."""

    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup: float = 0.1  # a fraction of the steps when < 1, else a number of steps
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    autocast: bool | None = None  # None: bf16 autocast on CUDA, off on CPU

    def warmup_steps(self, total_steps: int) -> int:
        w = self.warmup * total_steps if self.warmup < 1 else self.warmup
        return int(min(max(w, 0), total_steps))


@dataclass
class TrainResult:
    """What one training run leaves behind: the curves, the final numbers, and how it ran."""

    losses: list[float]
    lrs: list[float]
    grad_norms: list[float]
    steps: int
    tokens: int
    train_seconds: float  # steps after the first, evaluation excluded
    eval_points: list[tuple[int, float]] = field(default_factory=list)
    timed_tokens: int = 0  # the tokens of the steps inside train_seconds
    first_step_seconds: float = 0.0  # the untimed first step(s): compilation, kernel JIT, warm-up
    compiled: bool = False
    compile_error: str | None = None
    loss: str = ""  # which loss ran (LossModule.describe), after any fallback
    world_size: int = 1  # processes (GPUs on CUDA) that trained the model together
    devices: list[str] = field(default_factory=list)
    stopped_at: int | None = None  # the step whose evaluation reached ``stop_at`` (None: ran every step)
    forward: str = ""  # the model function the loss trained through (LossModule.forward_name)

    @property
    def tokens_per_second(self) -> float:
        if self.train_seconds > 0 and self.timed_tokens:
            return self.timed_tokens / self.train_seconds
        total = self.train_seconds + self.first_step_seconds
        return self.tokens / total if total > 0 else math.nan  # a one-step run: all it has

    @property
    def final_loss(self) -> float:
        """Mean of the last tenth of the steps' losses (a single step is too noisy)."""
        tail = self.losses[-max(1, len(self.losses) // 10):]
        return sum(tail) / len(tail)


def cosine_lr(step: int, total_steps: int, warmup_steps: int, peak: float, min_ratio: float) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up to ``peak``, cosine decay to
    ``peak * min_ratio`` at the last step."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def max_loss_spike(losses: list[float], window: int = 20) -> float:
    """Largest ratio of a step's loss to the mean of the ``window`` steps before it.

    The reproducibility item's "no loss spike over 2x the running average" reads this. Early
    steps without a full window are compared against what there is (at least one step).
    NaN or inf losses make the spike infinite: a diverged run has the worst possible spike.
    """
    worst = 0.0
    for t in range(1, len(losses)):
        if not math.isfinite(losses[t]):
            return math.inf
        prev = losses[max(0, t - window):t]
        ref = sum(prev) / len(prev)
        if ref > 0:
            worst = max(worst, losses[t] / ref)
    return worst


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (dim >= 2) only; biases, norms and gains go undecayed.
    The fused (single-kernel) implementation when every parameter is on CUDA."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.is_cuda for p in decay + no_decay) and bool(decay + no_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused or None)


def autocast_context(device: torch.device, enabled: bool | None) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (``enabled=None``), or as asked."""
    use = device.type == "cuda" if enabled is None else enabled
    if not use:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def features_of(model: nn.Module, plain: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model.features``, or its plain training forward ``train_features`` (same parameters, same
    values; GPT-2's) when ``plain`` and the model has one."""
    fast = getattr(model, "train_features", None) if plain else None
    return fast if callable(fast) else model.features


def has_chunked_head(model: nn.Module) -> bool:
    """True when ``model(x) == model.head(model.features(x))`` with a bias-free linear head, so the
    loss can be taken in chunks (the models/ backends all qualify)."""
    head = getattr(model, "head", None)
    return callable(getattr(model, "features", None)) and isinstance(head, nn.Linear) and head.bias is None


class LossModule(nn.Module):
    """``forward(x, y) -> summed cross-entropy`` of ``model``: the unit that DDP wraps.

    ``compile_loss`` puts the loss in the same function as the features: tokens -> features ->
    head -> chunked cross-entropy (:func:`pytest_goni.losses.compilable_linear_cross_entropy`,
    torch ops only), compiled as one graph when ``compile`` is on, so Inductor sees the whole
    step's forward (what :func:`train` runs when it compiles); eager it runs the same torch ops.
    Without it ``compile`` compiles the model's ``features`` only and the chunked loss's loop
    stays eager (:func:`pytest_goni.losses.linear_cross_entropy`), ``fused_loss`` taking each
    chunk's softmax and gradient in one Triton kernel (None: on CUDA). ``plain_forward``: the
    features through the model's ``train_features`` when it has one (:func:`features_of`)."""

    def __init__(self, model: nn.Module, compile: bool = False, fused_loss: bool | None = None,
                 compile_loss: bool = False, plain_forward: bool = False):
        super().__init__()
        self.model = model
        self.chunked = has_chunked_head(model)
        self.fused_loss = fused_loss
        self.compile_loss = compile_loss
        self.compiled = compile
        self.plain = plain_forward and self.chunked
        fn = features_of(model, self.plain) if self.chunked else model
        self.forward_name = f"{type(model).__name__}.{getattr(fn, '__name__', 'forward')}"
        if compile_loss:  # a function of the model, so a second LossModule of it reuses the compiled code
            self._whole = torch.compile(model_loss) if compile else model_loss
        else:
            self._body = torch.compile(fn) if compile else fn

    def describe(self) -> str:
        """Which loss this module runs, for results (``TrainResult.loss``)."""
        mode = "compiled" if self.compiled else "eager"
        if not self.chunked:
            return f"full logits, F.cross_entropy ({mode}, with the model)"
        if self.compile_loss:
            where = "in one graph with the features" if self.compiled else "eager torch ops"
            return f"chunked, compilable_linear_cross_entropy ({where})"
        kinds = {None: "Triton chunk kernel on CUDA", True: "Triton chunk kernel", False: "torch chunk"}
        kernel = kinds[self.fused_loss]
        return f"chunked, linear_cross_entropy (eager, {kernel}; features {mode})"

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.compile_loss:
            return self._whole(self.model, x, y, self.chunked, self.plain)
        if self.chunked:
            h = self._body(x)
            return linear_cross_entropy(h, self.model.head.weight, y, ignore_index=IGNORE_INDEX,
                                        fused=self.fused_loss)
        return full_cross_entropy(self._body(x), y)


def model_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunked: bool, plain: bool = False
               ) -> torch.Tensor:
    """Summed cross-entropy of ``model`` in torch ops only, the head's in chunks when ``chunked``
    (the features through ``train_features`` when ``plain``, :func:`features_of`): what
    ``LossModule(compile_loss=True)`` compiles as one graph."""
    if chunked:
        h = features_of(model, plain)(x)
        return compilable_linear_cross_entropy(h, model.head.weight, y, ignore_index=IGNORE_INDEX)
    return full_cross_entropy(model(x), y)


def full_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of whole logits [..., V] (models without a chunkable head)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Readback:
    """Per-step device scalars (loss, grad norm) copied to the host every ``every`` steps without a
    stall: an interval's copy is started at its end and read at the next interval's end."""

    def __init__(self, device: torch.device, every: int, reduce: Callable[[torch.Tensor], torch.Tensor]):
        self.device, self.every, self.reduce = device, max(1, every), reduce
        self.current: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.inflight: tuple[torch.Tensor, Any] | None = None

    def push(self, loss: torch.Tensor, norm: torch.Tensor) -> list[tuple[float, float]]:
        self.current.append((loss.detach().float(), norm.detach().float()))
        return self.flush(final=False) if len(self.current) >= self.every else []

    def flush(self, final: bool) -> list[tuple[float, float]]:
        out = self._collect()
        if self.current:
            vals = self.reduce(torch.stack([torch.stack(pair) for pair in self.current]))
            self.current = []
            if self.device.type == "cuda":
                host = vals.to("cpu", non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                self.inflight = (host, event)
            else:
                self.inflight = (vals, None)
        if final:
            out += self._collect()
        return out

    def _collect(self) -> list[tuple[float, float]]:
        if self.inflight is None:
            return []
        host, event = self.inflight
        self.inflight = None
        if event is not None:
            event.synchronize()
        return [(float(a), float(b)) for a, b in host.tolist()]


def run_loop(model: nn.Module, batch_fn: BatchFn, steps: int, cfg: OptimConfig, *, device: torch.device,
             **kw: Any) -> TrainResult:
    """The loop for one process of ``world``, with ``device`` as the current CUDA device: Triton
    launches on the current device, so a run on cuda:1 from a process whose current device is
    cuda:0 would fail (or read across NVLink). See :func:`_loop`."""
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:
        return _loop(model, batch_fn, steps, cfg, device=device, **kw)


def _loop(model: nn.Module, batch_fn: BatchFn, steps: int, cfg: OptimConfig, *, device: torch.device,
          rank: int = 0, world: int = 1, tokens_per_step: int | None = None,
          check: Callable[[], None] | None = None, evaluate: Callable[[nn.Module], float] | None = None,
          eval_every: int = 0, schedule_steps: int | None = None, compile: bool = False,
          log_every: int = 16, untimed_steps: int = 1, compile_loss: bool = False,
          stop_at: float | None = None, plain_forward: bool = True) -> TrainResult:
    """The loop itself (see :func:`train` for the arguments).

    Rank ``r`` of ``world`` trains on rows ``[r*B/world, (r+1)*B/world)`` of each global batch; the
    summed loss is scaled by ``world / scored targets of the global batch`` so that DDP's gradient
    average is the single-process mean-loss gradient."""
    if stop_at is not None and (world > 1 or evaluate is None or eval_every < 1):
        raise ValueError("stop_at needs an evaluate function, eval_every >= 1 and a single process "
                         "(only rank 0 evaluates)")
    model.train()
    compiled = compile
    base = LossModule(model, compile=compiled, compile_loss=compile_loss, plain_forward=plain_forward)
    loss_fn: nn.Module = base
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        loss_fn = DistributedDataParallel(loss_fn, device_ids=ids, gradient_as_bucket_view=True)
    opt = make_optimizer(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    horizon = schedule_steps or steps
    warm = cfg.warmup_steps(horizon)

    if world > 1:
        import torch.distributed as dist

        def reduce(t: torch.Tensor) -> torch.Tensor:
            mean = t[:, 0].contiguous()  # each rank holds its rows' share of the global mean
            dist.all_reduce(mean)
            return torch.stack([mean / world, t[:, 1]], dim=1)
    else:
        def reduce(t: torch.Tensor) -> torch.Tensor:
            return t

    reads = _Readback(device, log_every, reduce)
    losses: list[float] = []
    norms: list[float] = []
    lrs: list[float] = []
    evals: list[tuple[int, float]] = []
    untimed = min(max(1, untimed_steps), steps)
    first_s = eval_s = 0.0
    compile_error = None
    t0 = t_start = time.perf_counter()

    def one_step(step: int, x: torch.Tensor, y: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with autocast_context(device, cfg.autocast):
            loss = loss_fn(x, y) * (world / count)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, clip, foreach=True if device.type == "cuda" else None)
        opt.step()
        return loss, norm

    def stopped(values: list[tuple[float, float]]) -> bool:
        for loss, norm in values:
            losses.append(loss)
            norms.append(norm)
            if not math.isfinite(loss):
                return True
        return False

    done = False
    reached: int | None = None
    for step in range(steps):
        if check is not None:
            check()
        x, y = batch_fn(step)
        if x.shape[0] % world:
            raise ValueError(f"global batch of {x.shape[0]} rows does not split over {world} processes")
        count = (y != IGNORE_INDEX).sum().to(device, non_blocking=True)
        rows = slice(rank * x.shape[0] // world, (rank + 1) * x.shape[0] // world)
        x = x[rows].to(device, non_blocking=True)
        y = y[rows].to(device, non_blocking=True)
        lr = cosine_lr(step, horizon, warm, cfg.lr, cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        if step == 0:
            try:
                loss, norm = one_step(step, x, y, count)
            except Exception as exc:  # noqa: BLE001 - a compile failure falls back to eager
                if not (compiled or device.type == "cuda"):  # on CUDA the loss runs a Triton kernel
                    raise
                compile_error = exception_note(exc, 600)
                compiled = False
                base = LossModule(model, compile=False, fused_loss=False,  # the eager loss, torch only
                                  plain_forward=plain_forward)
                loss_fn = base if world == 1 else type(loss_fn)(base, device_ids=loss_fn.device_ids,
                                                                gradient_as_bucket_view=True)
                loss, norm = one_step(step, x, y, count)
        else:
            loss, norm = one_step(step, x, y, count)
        if step + 1 == untimed:
            _sync(device)
            t_start = time.perf_counter()
            first_s, eval_s = t_start - t0 - eval_s, 0.0
        tps = tokens_per_step if tokens_per_step is not None else int(x.numel()) * world
        lrs.append(lr)
        if stopped(reads.push(loss, norm)):
            done = True
            break
        if evaluate is not None and eval_every > 0 and (step + 1) % eval_every == 0 and step + 1 < steps:
            _sync(device)
            t_eval = time.perf_counter()
            if rank == 0:
                evals.append((step + 1, evaluate(model)))
            model.train()
            eval_s += time.perf_counter() - t_eval
            if stop_at is not None and evals[-1][1] >= stop_at:
                reached = step + 1
                break
    if not done:
        stopped(reads.flush(final=True))
    _sync(device)
    ran, n = len(lrs), len(losses)
    train_s = time.perf_counter() - t_start - eval_s if ran > untimed else 0.0
    return TrainResult(losses, lrs[:n], norms, n, tps * n, train_s, evals,
                       timed_tokens=tps * max(0, ran - untimed), first_step_seconds=first_s,
                       compiled=compiled, compile_error=compile_error, loss=base.describe(), world_size=world,
                       devices=[str(device)], stopped_at=reached, forward=base.forward_name)


def train(
    model: nn.Module,
    batch_fn: BatchFn,
    steps: int,
    cfg: OptimConfig,
    *,
    device: str | torch.device = "cpu",
    tokens_per_step: int | None = None,
    check: Callable[[], None] | None = None,
    evaluate: Callable[[nn.Module], float] | None = None,
    eval_every: int = 0,
    schedule_steps: int | None = None,
    compile: bool | None = None,
    log_every: int = 16,
    untimed_steps: int = 1,
    gpus: int = 1,
    compile_loss: bool | None = None,
    stop_at: float | None = None,
    plain_forward: bool = True,
) -> TrainResult:
    """Train ``model`` in place for ``steps`` steps on ``batch_fn(step) -> (inputs, targets)``.

    ``check`` is called every step (a deadline check); ``evaluate(model)`` every ``eval_every``
    steps (its values go to ``eval_points``; its time is not counted as training time). A non-finite
    loss stops the run early: the remaining curve would be meaningless, and the spike statistic
    reports the divergence. ``schedule_steps`` (default ``steps``) is the length the learning-rate
    schedule is laid out for: a shorter re-run of a longer run's first steps passes the longer one.
    ``compile``: None compiles on CUDA for runs of at least :data:`COMPILE_MIN_STEPS` steps.
    ``log_every``: steps between copies of the losses to the host (the only synchronisation).
    ``untimed_steps``: the first steps, timed apart as ``first_step_seconds`` (compilation, JIT).
    ``gpus``: processes training together under DDP (one per GPU; gloo processes on the CPU), each
    on its rows of the same global batch; the model is trained in place all the same. Inside a
    torchrun launch (``WORLD_SIZE`` > 1) the loop joins that process group instead.
    ``compile_loss``: the head and the cross-entropy in the same compiled graph as the model's
    features (see :class:`LossModule`); None: whenever the loop compiles (H200, GPT-2 125M: 40.1
    against 66.6 ms a step with the loss eager); False keeps the eager chunked loss beside compiled
    features. A failed compilation falls back to eager torch and the eager loss, as ``compile`` does;
    ``TrainResult.loss`` says which loss ran.
    ``stop_at``: early stopping (Zoology's: stop once validation accuracy exceeds 0.99): the run ends
    after the first evaluation whose value is at least ``stop_at`` (``TrainResult.stopped_at`` is
    that step, ``steps`` the steps run). The schedule is still laid out for ``steps`` (or
    ``schedule_steps``), so the steps run are the same steps the full run takes. Needs ``evaluate``,
    ``eval_every`` and one process.
    ``plain_forward``: train through the model's ``train_features`` when it has one (GPT-2: a plain
    nanoGPT-style forward over transformers' parameters, the same values to rounding; evaluation
    keeps ``features``); False trains through ``features`` (transformers' module for GPT-2).
    ``TrainResult.forward`` names the function that ran.
    """
    if steps < 1:
        raise ValueError(f"a training run needs at least one step (got {steps})")
    dev = torch.device(device)
    if compile is None:
        compile = dev.type == "cuda" and steps >= COMPILE_MIN_STEPS
    if compile_loss is None:
        compile_loss = compile
    kw = dict(tokens_per_step=tokens_per_step, evaluate=evaluate, eval_every=eval_every,
              schedule_steps=schedule_steps, compile=compile, log_every=log_every,
              untimed_steps=untimed_steps, compile_loss=compile_loss, stop_at=stop_at, plain_forward=plain_forward)
    from pytest_goni import distributed

    if stop_at is not None and (gpus > 1 or distributed.launched_by_torchrun()):
        raise ValueError("stop_at is single-process only (rank 0 alone evaluates, so the ranks could not agree)")
    if distributed.launched_by_torchrun():
        return distributed.train_in_group(model, batch_fn, steps, cfg, run_loop=run_loop, check=check, **kw)
    if gpus > 1:
        return distributed.train_spawned(model, batch_fn, steps, cfg, device=dev, gpus=gpus, run_loop=run_loop,
                                         check=check, **kw)
    if gpus < 1:
        raise ValueError(f"gpus must be >= 1 (got {gpus})")
    return run_loop(model, batch_fn, steps, cfg, device=dev, check=check, **kw)


@torch.no_grad()
def evaluate_loss(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], *,
                  device: str | torch.device | None = None, autocast: bool | None = None) -> float:
    """Token-weighted mean cross-entropy over ``batches`` (IGNORE_INDEX targets skipped).
    ``device`` defaults to the model's."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
        return _evaluate(model, batches, dev, autocast)


def _evaluate(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], dev: torch.device,
              autocast: bool | None) -> float:
    model.eval()
    scorer = LossModule(model)
    total = torch.zeros((), dtype=torch.float64, device=dev)
    count = 0
    for x, y in batches:
        x, y = x.to(dev), y.to(dev)
        with autocast_context(dev, autocast):
            total += scorer(x, y).double()
        count += int((y != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError("evaluation saw no scored targets")
    return float(total) / count


@dataclass
class HeldOut:
    """``evaluate`` for :func:`train` over fixed batches; a picklable value, so it reaches DDP ranks."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]
    autocast: bool | None = None

    def __call__(self, model: nn.Module) -> float:
        return evaluate_loss(model, self.batches, autocast=self.autocast)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) so model initialisation is a function of the seed."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def describe_config(cfg: OptimConfig) -> dict[str, Any]:
    return {"lr": cfg.lr, "min_lr_ratio": cfg.min_lr_ratio, "warmup": cfg.warmup,
            "weight_decay": cfg.weight_decay, "betas": list(cfg.betas), "grad_clip": cfg.grad_clip,
            "autocast": cfg.autocast}
