"""Cross-entropy of an LM head over a large vocabulary, without [N, V] float32 logits at once.

``linear_cross_entropy(h, weight, targets)`` is ``F.cross_entropy(h @ weight.T, targets,
reduction="sum")`` computed a chunk of tokens at a time. The gradients are formed in the same pass
(the softmax of a chunk is at hand, so d/dlogits = softmax - onehot costs no second matmul for the
logits): the forward stores d(sum)/dh [N, d] (compute dtype) and d(sum)/dweight [V, d] (summed
over chunks in float32) and the backward only scales them by the incoming gradient. Peak extra
memory is one chunk's logits instead of B x T x V, which at GPT-2's 50,257 tokens and B=16, T=1024
is 3.3 GB of float32 per copy.

Precision follows the caller: under autocast the three matmuls of each chunk (logits, d/dh, d/dW)
run in the autocast dtype (bf16) with float32 accumulation inside the GEMM, and the softmax in
float32, as ``F.cross_entropy(logits.float())`` after an autocast head would; only d/dW's sum over
chunks is a float32 add (tested: every matmul's operands are bf16 under autocast).

Two forms: :func:`linear_cross_entropy`, an eager chunk loop (a Triton kernel per chunk on CUDA),
and :func:`compilable_linear_cross_entropy`, torch ops only, which ``training.train`` compiles into
the model's graph whenever it compiles (on the H200, GPT-2 125M, that step is 1.66x the eager
loss's; benchmarks/README.md, Training).

``pad_vocab`` (64 on CUDA by default, off on the CPU) pads the vocabulary to a multiple of its value
with zero rows of the weight, so the three head matmuls see leading dimensions that are multiples of 8 elements (GPT-2's
50,257 is odd: a bf16 row of its logits is 100,514 bytes, not 16-byte aligned, which the tensor-core
GEMMs want; nanoGPT pads to 50,304 for this). The padded columns never reach the softmax (the kernel
reads the first V of each row), and meet zero weight rows in d/dh, so the result is unchanged. It was
measured faster on the H200 (``benchmarks/train_profile.py``; :data:`DEFAULT_PAD_VOCAB`); on the CPU
the extra copy of the head buys nothing, so CPU runs (and their committed results) keep the unpadded head.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Tensor = torch.Tensor

#: Logit elements (tokens x vocab) of one chunk: 2^27 float32 values, 512 MiB.
CHUNK_ELEMENTS = 1 << 27

#: ``pad_vocab`` when a call does not say: the head is padded to a multiple of 64 rows (zero rows,
#: masked out of the softmax: the same loss and gradients). Measured on the H200 (2026-12-01,
#: benchmarks/results/2026-12-01-h200-train-profile-v2/): GPT-2 125M's head matmul [2624, 768] x
#: [768, V] took 2.281 ms at V = 50,257 (rows not 16-byte aligned) and 0.333 ms at 50,304; the eager
#: loss 36.5 -> 10.7 ms; the compiled loop 36.54 -> 34.14 ms per step (42.3% -> 45.2% MFU). 0 turns it off.
DEFAULT_PAD_VOCAB = 64


def default_pad(weight: Tensor, pad_vocab: int | None) -> int:
    """``pad_vocab`` as given, else :data:`DEFAULT_PAD_VOCAB` for a CUDA head and 0 on the CPU."""
    if pad_vocab is not None:
        return pad_vocab
    return DEFAULT_PAD_VOCAB if weight.is_cuda else 0


def padded(vocab: int, multiple: int) -> int:
    """``vocab`` rounded up to a multiple of ``multiple`` (unchanged for 0 or 1)."""
    return vocab if multiple <= 1 else -(-vocab // multiple) * multiple


def chunk_tokens(vocab: int, n_tokens: int, elements: int = CHUNK_ELEMENTS) -> int:
    """Tokens per chunk: as many as fit ``elements`` logits, a multiple of 64 when above 64."""
    n = max(1, elements // max(1, vocab))
    if n > 64:
        n -= n % 64
    return min(n, max(1, n_tokens))


def _scored_loss(x: Tensor, targets: Tensor, ignore_index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(summed CE of the float logits x [n, V] on scored rows, log-sum-exp per row, scored mask,
    targets with unscored rows sent to 0): the part both chunk forms share."""
    valid = targets != ignore_index
    safe = torch.where(valid, targets, torch.zeros_like(targets))
    lse = torch.logsumexp(x, dim=-1)
    picked = x.gather(1, safe[:, None])[:, 0]
    return ((lse - picked) * valid).sum(), lse, valid, safe


def _padded_head(weight: Tensor, dtype: torch.dtype, vocab_padded: int) -> Tensor:
    """The head in the compute dtype with zero rows appended up to ``vocab_padded``."""
    wc = weight.to(dtype)
    if vocab_padded > wc.shape[0]:
        wc = torch.cat([wc, wc.new_zeros(vocab_padded - wc.shape[0], wc.shape[1])])
    return wc


def _scaled_grads(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """The backward of both forms: the forward's d/dh and d/dW scaled by the incoming gradient."""
    grad_h, grad_w = ctx.saved_tensors
    gh = (grad_h * grad_out).to(ctx.dtypes[0]) if grad_h is not None else None
    gw = (grad_w * grad_out).to(ctx.dtypes[1]) if grad_w is not None else None
    return gh, gw


def _rows(h: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, torch.dtype]:
    """h [..., d] and targets [...] as [N, d] and [N], and the compute dtype (autocast's when on)."""
    d = h.shape[-1]
    h2, t2 = h.reshape(-1, d), targets.reshape(-1)
    if h2.shape[0] != t2.shape[0]:
        raise ValueError(f"{h2.shape[0]} hidden rows but {t2.shape[0]} targets")
    dev = h.device.type
    return h2, t2, torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype


def _chunk_loss_and_grad(logits: Tensor, targets: Tensor, ignore_index: int, grad_dtype: torch.dtype | None
                         ) -> tuple[Tensor, Tensor | None]:
    """Summed CE of one chunk's logits [n, V] (any float dtype) and, when ``grad_dtype`` is given,
    d(sum)/dlogits = (softmax - onehot) on scored rows, in ``grad_dtype``. The torch reference of
    the Triton kernel; written in place on one float32 copy of the logits."""
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 softmax (fp64 kept)
    loss, lse, valid, safe = _scored_loss(x, targets, ignore_index)
    if grad_dtype is None:
        return loss, None
    keep = valid.to(x.dtype)[:, None]
    x = x.sub_(lse[:, None]).exp_().mul_(keep)  # softmax on scored rows, 0 elsewhere
    x = x.scatter_add_(1, safe[:, None], -keep)  # minus the one-hot target
    return loss, x.to(grad_dtype)


def _chunk_triton(logits: Tensor, targets: Tensor, ignore_index: int, grad_dtype: torch.dtype | None
                  ) -> tuple[Tensor, Tensor | None]:
    """The same as :func:`_chunk_loss_and_grad` in one Triton kernel that overwrites ``logits``
    with the gradient (``pytest_goni.kernels.triton.cross_entropy``)."""
    from pytest_goni.kernels.triton.cross_entropy import ce_rows_

    losses = ce_rows_(logits, targets, ignore_index, write_grad=grad_dtype is not None)
    if grad_dtype is None:
        return losses.sum(), None
    return losses.sum(), logits.to(grad_dtype)


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, targets: Tensor, ignore_index: int,  # type: ignore[override]
                chunk: int, dtype: torch.dtype, chunk_fn: Callable, vocab_padded: int) -> Tensor:
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # zero-padded head rows: their logits are 0 and cut off before the softmax
        hc, wc, vocab = h.to(dtype), _padded_head(weight, dtype, vocab_padded), weight.shape[0]
        n = hc.shape[0]
        acc = torch.promote_types(dtype, torch.float32)
        total = torch.zeros((), device=h.device, dtype=acc)
        grad_h = torch.empty_like(hc) if need_h else None
        grad_w = torch.zeros(weight.shape, device=weight.device, dtype=acc) if need_w else None
        want = dtype if (need_h or need_w) else None
        for start in range(0, n, chunk):
            sl = slice(start, min(n, start + chunk))
            full = hc[sl] @ wc.T  # [n_chunk, V (padded)] in the compute dtype
            logits = full[:, :vocab]  # a view: rows of stride V_padded
            loss, g = chunk_fn(logits, targets[sl], ignore_index, want)
            total = total + loss
            if g is not None and full.shape[1] > vocab:
                if g.data_ptr() != logits.data_ptr():  # the torch path may return a new tensor
                    logits.copy_(g)
                g = full  # padded columns hold 0 and meet zero rows of wc below
            if grad_h is not None:
                torch.mm(g, wc, out=grad_h[sl])
            if grad_w is not None:
                grad_w += (g.T @ hc[sl])[:vocab].to(acc)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (h.dtype, weight.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        return *_scaled_grads(ctx, grad_out), None, None, None, None, None, None


def linear_cross_entropy(h: Tensor, weight: Tensor, targets: Tensor, *, ignore_index: int = -100,
                         chunk: int | None = None, fused: bool | None = None,
                         pad_vocab: int | None = None) -> Tensor:
    """Summed cross-entropy of the logits ``h @ weight.T`` against ``targets`` (``ignore_index``
    rows scored 0), in chunks of ``chunk`` tokens; a float32 scalar (float64 for float64 inputs).

    h [..., d], weight [V, d], targets [...]. Divide by the number of scored targets for the mean.
    Under an enabled autocast the head matmuls run in its dtype, the softmax in float32.
    ``fused`` runs each chunk's softmax and gradient as one Triton kernel, in place on the
    chunk's logits; None: on CUDA for bf16/fp16/fp32 (in torch that part takes about six passes
    over float32 logits, a fifth of a GPT-2 125M step). ``pad_vocab``: pad the head's rows to a
    multiple of this (None: :func:`default_pad`; 0: none); the result is the same.
    """
    h2, t2, dtype = _rows(h, targets)
    dev = h.device.type
    if dev == "cpu" and targets.device.type == "cpu":
        # Unscored rows add 0 to the loss and its gradients: leave them out of the matmuls (a
        # recall task scores 4 of 64 positions, so its V 8192 head costs 16x less). A boolean
        # index synchronises, which is free on the CPU and why CUDA keeps every row.
        keep = t2 != ignore_index
        if not bool(keep.all()):
            h2, t2 = h2[keep], t2[keep]
    n = chunk or chunk_tokens(weight.shape[0], h2.shape[0])
    if fused is None:
        fused = h.is_cuda and dtype != torch.float64 and triton_available()
    fn = _chunk_triton if fused else _chunk_loss_and_grad
    vp = padded(weight.shape[0], default_pad(weight, pad_vocab))
    with torch.autocast(dev, enabled=False):
        return _LinearCrossEntropy.apply(h2, weight, t2, ignore_index, n, dtype, fn, vp)


def _chunk_loss_and_grad_pointwise(logits: Tensor, targets: Tensor, ignore_index: int, grad_dtype: torch.dtype,
                                   vocab: int) -> tuple[Tensor, Tensor]:
    """:func:`_chunk_loss_and_grad` out of place, the one-hot as a comparison instead of a scatter:
    under Inductor the float32 softmax lives in registers (a reduction kernel for the log-sum-exp,
    a pointwise kernel from the bf16 logits to the bf16 gradient), never in memory. Columns from
    ``vocab`` on (zero-padding of the head) are left out of the softmax and get a zero gradient."""
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    cols = torch.arange(x.shape[1], device=x.device)[None, :]
    if x.shape[1] > vocab:
        x = x.masked_fill(cols >= vocab, float("-inf"))
    loss, lse, valid, safe = _scored_loss(x, targets, ignore_index)
    keep = valid.to(x.dtype)[:, None]
    grad = ((x - lse[:, None]).exp() - (cols == safe[:, None]).to(x.dtype)) * keep
    return loss, grad.to(grad_dtype)


class _CompilableLinearCrossEntropy(torch.autograd.Function):
    """:class:`_LinearCrossEntropy` in torch ops only (no Triton, no ``out=``, no data-dependent
    Python), so ``torch.compile`` traces it into the same graph as the model: the chunk loop is
    unrolled at trace time (a fixed number of static-shape chunks). The forward forms d/dh (compute
    dtype) and d/dW (float32) chunk by chunk, so no chunk's logits outlive it: nothing of size
    [N, V] is saved for the backward, which only scales the two by the incoming gradient."""

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, targets: Tensor, ignore_index: int,  # type: ignore[override]
                chunk: int, dtype: torch.dtype, vocab_padded: int) -> Tensor:
        # zero-padded head rows: aligned matmuls, the padded columns masked in the softmax
        hc, wc, vocab = h.to(dtype), _padded_head(weight, dtype, vocab_padded), weight.shape[0]
        acc = torch.promote_types(dtype, torch.float32)
        total = torch.zeros((), device=h.device, dtype=acc)
        grad_w = torch.zeros(weight.shape, device=weight.device, dtype=acc)
        grad_h = []
        for start in range(0, hc.shape[0], chunk):
            hs = hc[start:start + chunk]
            logits = hs @ wc.T  # [n_chunk, V (padded)] in the compute dtype
            loss, g = _chunk_loss_and_grad_pointwise(logits, targets[start:start + chunk], ignore_index, dtype,
                                                     vocab)
            total = total + loss
            grad_h.append(g @ wc)
            grad_w = grad_w + (g.T @ hs)[:vocab].to(acc)
        ctx.save_for_backward(torch.cat(grad_h), grad_w)
        ctx.dtypes = (h.dtype, weight.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        return *_scaled_grads(ctx, grad_out), None, None, None, None, None


def compilable_linear_cross_entropy(h: Tensor, weight: Tensor, targets: Tensor, *, ignore_index: int = -100,
                                    chunk: int | None = None, pad_vocab: int | None = None) -> Tensor:
    """:func:`linear_cross_entropy` (same value, same gradients up to rounding) written for
    ``torch.compile``: torch ops only, every row kept (no boolean indexing, which would sync), the
    chunks of ``chunk`` tokens (default :func:`chunk_tokens`) unrolled by dynamo; ``pad_vocab`` as
    there. Compiled with the model's ``features`` it makes one graph from tokens to the summed
    loss, so Inductor fuses each chunk's softmax and gradient and schedules the head with the body:
    what ``training.train`` runs whenever it compiles (``compile_loss``; on the H200, GPT-2 125M
    B 16 T 1024, a 40.1 ms step against 66.6 ms with :func:`linear_cross_entropy` eager beside the
    compiled features). Without grad mode it only scores. Eager, it runs the same ops (slower than
    the fused path)."""
    h2, t2, dtype = _rows(h, targets)
    dev = h.device.type
    n = chunk or chunk_tokens(weight.shape[0], h2.shape[0], CHUNK_ELEMENTS)
    vp = padded(weight.shape[0], default_pad(weight, pad_vocab))
    with torch.autocast(dev, enabled=False):
        if not (torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)):
            total = torch.zeros((), device=h.device, dtype=torch.promote_types(dtype, torch.float32))
            hc, wc = h2.to(dtype), weight.to(dtype)
            for start in range(0, hc.shape[0], n):
                loss, _ = _chunk_loss_and_grad(hc[start:start + n] @ wc.T, t2[start:start + n], ignore_index, None)
                total = total + loss
            return total
        return _CompilableLinearCrossEntropy.apply(h2, weight, t2, ignore_index, n, dtype, vp)
