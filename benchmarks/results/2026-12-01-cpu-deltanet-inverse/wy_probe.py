import os; os.environ["TRITON_INTERPRET"]="1"
import torch, torch.nn.functional as F
from pytest_goni.kernels.triton import wy, gpu_dots
torch.manual_seed(0)
C=64; D=64
def run(mix, beta_val, dtype=torch.float32, emulate=None):
    base = torch.randn(D)
    k = mix*base + (1-mix)*torch.randn(1, C, 1, D)
    k = F.normalize(k, dim=-1)
    v = torch.randn(1, C, 1, D)
    beta = torch.full((1, C, 1), beta_val)
    kk = (k[0,:,0].double() @ k[0,:,0].double().T)
    A = torch.tril(beta[0,:,0].double()[:,None]*kk, -1)
    X = torch.linalg.inv(torch.eye(C, dtype=torch.float64)+A)
    U_ref = X @ (beta[0,:,0,None].double()*v[0,:,0].double())
    import contextlib
    ctx = gpu_dots.gpu_dot_rounding() if emulate else contextlib.nullcontext()
    with ctx:
        u, w, _ = wy.wy(k.to(dtype), v.to(dtype), None, beta.to(dtype), C, inv_precision=emulate and None)
    u = u[0,:,0].double()
    err = ((u-U_ref).norm()/U_ref.norm()).item()
    cos = (kk.sum()-C)/(C*C-C)
    print(f"mix {mix} beta {beta_val} mean cos {cos:.2f} |U_ref| max {U_ref.abs().max():.2f} |u| max {u.abs().max():.3g} rel err {err:.2e} emulate={emulate} {dtype}")
for mix in (0.0, 0.3, 0.5, 0.7, 0.9):
    for bv in (0.5, 0.95):
        run(mix, bv)
        run(mix, bv, emulate=True)
        run(mix, bv, dtype=torch.bfloat16, emulate=True)
