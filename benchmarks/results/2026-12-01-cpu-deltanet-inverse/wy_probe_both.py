import os, sys; os.environ["TRITON_INTERPRET"]="1"
sys.path.insert(0, "benchmarks/results/2026-12-01-cpu-deltanet-inverse")
from pytest_goni.kernels.triton import wy
import long_t_neumann as ln
new = wy.unit_lower_inverse
import runpy
for name, inv in (("old (Neumann)", ln.neumann), ("new (forward substitution)", new)):
    print("==", name, flush=True)
    wy.unit_lower_inverse = inv
    runpy.run_path("benchmarks/results/2026-12-01-cpu-deltanet-inverse/wy_probe.py")
