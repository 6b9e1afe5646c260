"""The training loop shared by the measurement kinds that train a model (train_lm, recall; V5 later).

One loop, so every model compared is trained the same way: AdamW (decoupled weight decay on
matrices only), cosine schedule with linear warm-up, gradient clipping, bf16 autocast on CUDA,
and batches that come from a caller-supplied function of the step index, so two models given
the same function see exactly the same batches in the same order.
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

#: Targets equal to this are not scored (padding, non-query positions of a recall task).
IGNORE_INDEX = -100

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
    """What one training run leaves behind: the curves and the final numbers."""

    losses: list[float]
    lrs: list[float]
    grad_norms: list[float]
    steps: int
    tokens: int
    train_seconds: float
    eval_points: list[tuple[int, float]] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.train_seconds if self.train_seconds > 0 else math.nan

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


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (dim >= 2) only; biases, norms and gains go undecayed."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def _autocast(device: torch.device, enabled: bool | None) -> contextlib.AbstractContextManager:
    use = device.type == "cuda" if enabled is None else enabled
    if not use:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def token_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``model.forward(inputs)`` against ``targets`` (IGNORE_INDEX skipped)."""
    logits = model(inputs)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def train(
    model: torch.nn.Module,
    batch_fn: BatchFn,
    steps: int,
    cfg: OptimConfig,
    *,
    device: str | torch.device = "cpu",
    tokens_per_step: int | None = None,
    check: Callable[[], None] | None = None,
    evaluate: Callable[[], float] | None = None,
    eval_every: int = 0,
    schedule_steps: int | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``steps`` steps on ``batch_fn(step) -> (inputs, targets)``.

    ``check`` is called every step (a deadline check); ``evaluate`` every ``eval_every`` steps
    (its values go to ``eval_points``; its time is not counted as training time). A non-finite
    loss stops the run early: the remaining curve would be meaningless, and the spike statistic
    reports the divergence. ``schedule_steps`` (default ``steps``) is the length the learning-rate
    schedule is laid out for: a shorter re-run of a longer run's first steps passes the longer one.
    """
    if steps < 1:
        raise ValueError(f"a training run needs at least one step (got {steps})")
    dev = torch.device(device)
    model.train()
    opt = make_optimizer(model, cfg)
    horizon = schedule_steps or steps
    warm = cfg.warmup_steps(horizon)
    losses: list[float] = []
    lrs: list[float] = []
    norms: list[float] = []
    evals: list[tuple[int, float]] = []
    tokens = 0
    train_s = 0.0
    for step in range(steps):
        if check is not None:
            check()
        x, y = batch_fn(step)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        lr = cosine_lr(step, horizon, warm, cfg.lr, cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        with _autocast(dev, cfg.autocast):
            loss = token_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else
                                              float("inf"))
        opt.step()
        loss_value = float(loss.detach())  # synchronizes, so the step's time is complete
        train_s += time.perf_counter() - t0
        losses.append(loss_value)
        lrs.append(lr)
        norms.append(float(norm))
        tokens += tokens_per_step if tokens_per_step is not None else int(x.numel())
        if not math.isfinite(loss_value):
            break
        if evaluate is not None and eval_every > 0 and (step + 1) % eval_every == 0 and step + 1 < steps:
            evals.append((step + 1, evaluate()))
            model.train()
    return TrainResult(losses, lrs, norms, len(losses), tokens, train_s, evals)


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], *,
                  device: str | torch.device = "cpu", autocast: bool | None = None) -> float:
    """Token-weighted mean cross-entropy over ``batches`` (IGNORE_INDEX targets skipped)."""
    dev = torch.device(device)
    model.eval()
    total, count = 0.0, 0
    for x, y in batches:
        x, y = x.to(dev), y.to(dev)
        with _autocast(dev, autocast):
            logits = model(x)
        total += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                                       ignore_index=IGNORE_INDEX, reduction="sum"))
        count += int((y != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError("evaluation saw no scored targets")
    return total / count


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) so model initialisation is a function of the seed."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def describe_config(cfg: OptimConfig) -> dict[str, Any]:
    return {"lr": cfg.lr, "min_lr_ratio": cfg.min_lr_ratio, "warmup": cfg.warmup,
            "weight_decay": cfg.weight_decay, "betas": list(cfg.betas), "grad_clip": cfg.grad_clip,
            "autocast": cfg.autocast}
