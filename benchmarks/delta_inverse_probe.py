"""How ill-posed the WY inverse is on the keys a training DeltaNet makes: the old inverse's error, per layer and step.

Trains `deltanet` with `pytest_goni.training.train` (as benchmarks/training.py: Markov stream, lr 1e-3)
and, at every call of `kernels.delta_rule`, measures on that call's keys and betas, per chunk of 64:
the mean |cosine| between keys, and the relative error of (I + A)^-1 formed as the Neumann product
(I - A)(I + A^2)...(I + A^32) with tf32 products (what kernels/triton/wy.py did until 2026-12-01)
against float64 `torch.linalg.inv`. The product's partial sums grow like (1 + |A|)^C, so the error
tracks how correlated the keys get; the training itself runs the current kernels. Without CUDA the
model runs its torch path (fp32); on CUDA the Triton kernels under bf16 autocast.

  python benchmarks/delta_inverse_probe.py --size 8M --seq 4096 --batch 16 --steps 10 --device cuda:0
  python benchmarks/delta_inverse_probe.py --tiny --seq 4096 --batch 1 --steps 8          # CPU, minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training import VOCAB, git_commit, markov_tokens, versions  # noqa: E402

from pytest_goni import kernels  # noqa: E402
from pytest_goni.lm_data import WindowBatches  # noqa: E402
from pytest_goni.registry import load_builtins, resolve_backend  # noqa: E402
from pytest_goni.training import OptimConfig, train  # noqa: E402

CHUNK = 64  # the forward's chunk (the backward's is 32: (1 + |A|)^31 grows less)


def _tf32(x: torch.Tensor) -> torch.Tensor:
    """float32 with the low 13 mantissa bits cut, as the tensor cores read tf32 inputs."""
    return (x.contiguous().view(torch.int32) & -8192).view(torch.float32)


@torch.no_grad()
def neumann_error(k: torch.Tensor, beta: torch.Tensor, chunk: int = CHUNK) -> dict[str, float]:
    """{max / median rel err of the tf32 Neumann inverse over chunks, mean / max |cos| of keys} of one call."""
    b, t, h, d = k.shape
    n = t // chunk
    kc = k[:, :n * chunk].reshape(b, n, chunk, h, d).permute(0, 3, 1, 2, 4).float()  # [B, H, N, C, D]
    bc = beta[:, :n * chunk].reshape(b, n, chunk, h).permute(0, 3, 1, 2).float()
    kk = kc @ kc.transpose(-1, -2)
    a = torch.tril(bc[..., None] * kk, -1)
    eye = torch.eye(chunk, device=k.device)
    x, p = eye - a, a
    for _ in range(chunk.bit_length() - 2):
        p = _tf32(p) @ _tf32(p)
        x = x + _tf32(x) @ _tf32(p)
    exact = torch.linalg.inv(eye.double() + a.double())
    err = (x.double() - exact).flatten(-2).norm(dim=-1) / exact.flatten(-2).norm(dim=-1)
    err = torch.nan_to_num(err, nan=float("inf"))
    cos = (kk.abs().sum((-1, -2)) - chunk) / (chunk * chunk - chunk)
    return {"neumann_err_max": err.max().item(), "neumann_err_median": err.median().item(),
            "cos_mean": cos.mean().item(), "cos_max": cos.max().item(), "beta_mean": bc.mean().item()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="8M")
    p.add_argument("--tiny", action="store_true", help="d_model 384, 6 heads, 6 layers (8M's mixer), vocab 4096")
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", help="append one jsonl row per run here")
    args = p.parse_args()
    load_builtins()
    if args.device.startswith("cuda"):
        torch.cuda.set_device(torch.device(args.device))
    vocab = 4096 if args.tiny else VOCAB
    cfg = ({"vocab_size": vocab, "d_model": 384, "n_layers": 6, "n_heads": 6} if args.tiny
           else {"size": args.size, "vocab_size": vocab})
    calls: list[dict[str, float]] = []
    original = kernels.delta_rule

    def spy(q, k, v, beta, *rest, **kw):
        calls.append(neumann_error(k.detach(), beta.detach()))
        return original(q, k, v, beta, *rest, **kw)

    kernels.delta_rule = spy
    torch.manual_seed(0)
    model = resolve_backend("deltanet")(**cfg).to(args.device)
    n_layers = sum(1 for _ in model.modules() if type(_).__name__ == "DeltaNetMixer")
    ids = markov_tokens(max(1 << 21 if not args.tiny else 1 << 18, 4 * args.batch * (args.seq + 1)), vocab)
    t0 = time.perf_counter()
    res = train(model, WindowBatches(ids, args.seq, args.batch, seed=0), args.steps,
                OptimConfig(lr=args.lr, warmup=0.1), device=args.device, compile=False, log_every=1)
    wall = time.perf_counter() - t0
    kernels.delta_rule = original
    per_step = [calls[i * n_layers:(i + 1) * n_layers] for i in range(len(res.losses))]
    print(f"deltanet {cfg} T {args.seq} B {args.batch} lr {args.lr} on {args.device}: {wall:.0f} s")
    for i, (loss, gn, layers) in enumerate(zip(res.losses, res.grad_norms, per_step)):
        worst = max(layers, key=lambda s: s["neumann_err_max"])
        print(f"step {i}: loss {loss:.4f} grad norm {gn:.3f} | old inverse rel err max over layers "
              f"{worst['neumann_err_max']:.1e} | per layer max: "
              + " ".join(f"{s['neumann_err_max']:.0e}" for s in layers)
              + " | key |cos| mean per layer: " + " ".join(f"{s['cos_mean']:.2f}" for s in layers), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "device": args.device,
                                "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda")
                                else "cpu", "versions": versions(), "commit": git_commit(),
                                "command": " ".join(sys.argv), "config": cfg, "seq": args.seq, "batch": args.batch,
                                "lr": args.lr, "losses": res.losses, "grad_norms": res.grad_norms,
                                "per_step_layers": per_step, "wall_s": wall}) + "\n")


if __name__ == "__main__":
    main()
