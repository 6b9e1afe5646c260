"""deltanet on CPU (torch path): loss, grad norm, and how ill-posed the chunks' (I + A) are for the old
Neumann inverse (tf32-emulated, as on the GPU) on the keys the model actually makes."""
import sys, time, torch, torch.nn.functional as F
sys.path.insert(0, "benchmarks")
from training import markov_tokens
from pytest_goni import kernels
from pytest_goni.lm_data import WindowBatches
from pytest_goni.registry import load_builtins, resolve_backend
from pytest_goni.training import OptimConfig, train
torch.set_num_threads(1)
load_builtins()
T, B, STEPS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
D_MODEL, HEADS, LAYERS = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
VOCAB = int(sys.argv[7]) if len(sys.argv) > 7 else 4096

def tf32(x):
    return (x.contiguous().view(torch.int32) & -8192).view(torch.float32)

def neumann_err(k, beta, C=64, bf16=True):
    """max over chunks of rel err of (I+A)^-1 by the old Neumann product (tf32 dots, as wy.py ran on the H200)."""
    b, t, h, d = k.shape
    n = t // C
    kc = k[:, :n * C].reshape(b, n, C, h, d).permute(0, 3, 1, 2, 4).float()  # [B,H,N,C,D]
    if bf16:
        kc = kc.bfloat16().float()
    bc = beta[:, :n * C].reshape(b, n, C, h).permute(0, 3, 1, 2).float()
    kk = kc @ kc.transpose(-1, -2)
    a = torch.tril(bc[..., None] * kk, -1)
    eye = torch.eye(C)
    x, p = eye - a, a
    for _ in range(5):
        p = tf32(p) @ tf32(p)
        x = x + tf32(x) @ tf32(p)
    exact = torch.linalg.inv(eye.double() + a.double())
    err = ((x.double() - exact).flatten(-2).norm(dim=-1) / exact.flatten(-2).norm(dim=-1))
    cos = (kk.abs().sum((-1, -2)) - C) / (C * C - C)  # mean |cosine| within the chunk
    return err.max().item(), cos.mean().item(), cos.max().item(), bc.mean().item(), bc.max().item()

stats = []
orig = kernels.delta_rule
def spy(q, k, v, beta, *a, **kw):
    stats.append(neumann_err(k.detach(), beta.detach()))
    return orig(q, k, v, beta, *a, **kw)
kernels.delta_rule = spy

torch.manual_seed(0)
model = resolve_backend("deltanet")(vocab_size=VOCAB, d_model=D_MODEL, n_layers=LAYERS, n_heads=HEADS)
ids = markov_tokens(max(1 << 18, 4 * B * (T + 1)), VOCAB)
batches = WindowBatches(ids, T, B, seed=0)
t0 = time.time()
res = train(model, batches, STEPS, OptimConfig(lr=1e-3, warmup=0.1), device="cpu", compile=False, log_every=1)
print(f"T {T} B {B} d {D_MODEL} H {HEADS} L {LAYERS} vocab {VOCAB}: {time.time() - t0:.0f} s")
for i, (l, gn) in enumerate(zip(res.losses, res.grad_norms)):
    per = stats[i * LAYERS:(i + 1) * LAYERS]
    print(f"step {i}: loss {l:.4f} grad norm {gn:.3f} | per layer: " + " ; ".join(
        f"neumann err {e:.1e} |cos| mean {c:.2f} max {cm:.2f} beta mean {bm:.2f} max {bx:.2f}" for e, c, cm, bm, bx in per))
