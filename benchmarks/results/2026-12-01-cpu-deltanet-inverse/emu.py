import os; os.environ["TRITON_INTERPRET"]="1"
import sys, torch
from pytest_goni.kernels.testing import make_inputs, grads, rel_err, REFERENCE, DISPATCH
from pytest_goni.kernels.triton import gpu_dots, wy, delta_bwd
torch.set_num_threads(1)
sys.path.insert(0, "benchmarks/results/2026-12-01-cpu-deltanet-inverse")
mix = float(sys.argv[1]); T = int(sys.argv[2]); D = int(sys.argv[3])
if len(sys.argv) > 4:
    import long_t_neumann as ln
    wy.unit_lower_inverse = delta_bwd.unit_lower_inverse = ln.neumann
for op in ("delta_rule", "gated_delta_rule"):
    a = make_inputs(op, 1, T, 1, D, D, seed=int(os.environ.get("SEED", 67)), key_mix=mix)
    a["beta"] = torch.sigmoid(4 * a["beta"])
    a = {n: x.bfloat16().float() for n, x in a.items()}
    def ours(initial_state=None, **x):
        return DISPATCH[op](**x, scale=D**-0.5, initial_state=initial_state, output_final_state=True, backend="triton")
    def ref(initial_state=None, **x):
        return REFERENCE[op](**{n: y.double() for n, y in x.items()}, scale=D**-0.5)
    e = grads(ref, a, None, seed=8)
    with gpu_dots.gpu_dot_rounding():
        g = grads(ours, {n: x.bfloat16() for n, x in a.items()}, None, seed=8)
    print(op, mix, T, D, "old" if len(sys.argv) > 4 else "new", " ".join(f"{n}={rel_err(g[n], e[n]):.1e}" for n in e), flush=True)
