import os, sys, time; os.environ["TRITON_INTERPRET"]="1"
import torch, torch.nn.functional as F, triton, triton.language as tl
from pytest_goni.kernels.testing import REFERENCE, grads, rel_err
from pytest_goni.kernels import chunked
from pytest_goni.kernels.triton import autograd, segments, wy, delta_bwd, gpu_dots
segments._sms.cache_clear(); segments._sms = lambda d, i: 132
torch.set_num_threads(1)

@triton.jit
def neumann(a, C: tl.constexpr, PRECISION: tl.constexpr):
    oc = tl.arange(0, C)
    x = tl.where(oc[:, None] == oc[None, :], 1.0, 0.0) - a
    p = a
    for _ in tl.static_range(C.bit_length() - 2 if False else 5):  # C=64: LOG2C-1 = 5
        p = tl.dot(p, p, input_precision=PRECISION)
        x = x + tl.dot(x, p, input_precision=PRECISION)
    return x
new_inv = wy.unit_lower_inverse

def inputs(kind, b, t, h, d, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    if kind == "random":
        q, k = r(b, t, h, d), r(b, t, h, d); beta = torch.rand(b, t, h, generator=g)
    else:  # model-like: causal conv (4 taps) over silu(x W), L2-normalised; beta = sigmoid
        def conv_silu(x):
            xp = F.pad(x, (0, 0, 0, 0, 3, 0))
            return F.silu(sum(xp[:, i:i + t] * w for i, w in enumerate((0.1, 0.2, 0.3, 1.0))))
        q, k = conv_silu(r(b, t, h, d) * 2), conv_silu(r(b, t, h, d) * 2)
        beta = torch.sigmoid(r(b, t, h) + 1.0)
    return dict(q=F.normalize(q, dim=-1), k=F.normalize(k, dim=-1), v=r(b, t, h, d), beta=beta)

def run(kind, t, inv, d=64, b=1, h=1):
    wy.unit_lower_inverse = delta_bwd.unit_lower_inverse = inv
    a = inputs(kind, b, t, h, d, seed=t)
    kc = a["k"][0, :64, 0]; cos = ((kc @ kc.T).sum() - 64) / (64 * 63)
    sc = d ** -0.5
    nseg = segments.plan(t, 64, b * h * triton.cdiv(d, 32), torch.device("cpu"), min_chunks=16)
    def ours(initial_state=None, **x):
        return autograd.gated_delta_rule(x["q"], x["k"], x["v"], None, x["beta"], sc, initial_state, True)
    def tch(initial_state=None, **x):
        return chunked.delta_rule_chunked(x["q"], x["k"], x["v"], x["beta"], sc, initial_state, True)
    def ref(initial_state=None, **x):
        return REFERENCE["delta_rule"](**{n: y.double() for n, y in x.items()}, scale=sc, initial_state=None)
    t0 = time.time(); e = grads(ref, a, None, seed=3); t1 = time.time()
    o = grads(ours, a, None, seed=3); t2 = time.time()
    c = grads(tch, a, None, seed=3)
    fin = all(torch.isfinite(x).all() for x in o.values())
    print(f"{kind:6s} T {t} inv {inv.fn.__name__ if hasattr(inv,'fn') else inv.__name__:18s} plan(L,nseg)={nseg} key cos {cos:.2f} finite {fin} | triton: "
          + " ".join(f"{n}={rel_err(o[n], e[n]):.1e}" for n in e) + " | torch chunked: "
          + " ".join(f"{n}={rel_err(c[n], e[n]):.1e}" for n in e) + f" [ref {t1-t0:.0f}s triton {t2-t1:.0f}s]", flush=True)

for t in [int(x) for x in sys.argv[1].split(",")]:
    for kind in sys.argv[2].split(","):
        for inv in (neumann, new_inv):
            run(kind, t, inv)
