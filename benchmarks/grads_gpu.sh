#!/usr/bin/env bash
# One lent-GPU call for the Triton backwards' GPU gradient tests (issue 13, section 1): every case of
# `pytest -m gpu tests/kernels/test_triton_grads.py` (12 at model shapes: 6 ops x bf16 / fp32, B 2,
# T 1000, H 4, D 128, against the float64 reference; FLA's comparisons skip unless GONI_FLA_TESTS=1).
#   source benchmarks/device_env.sh && bash benchmarks/grads_gpu.sh          (about 1 minute)
# Six xdist workers on one GPU: Triton's first compiles (most of each case's time) run side by side;
# an op's two dtypes share a worker and its float64 reference (--dist loadgroup).
# Packs $OUT/grads-gpu.tar.gz (log, per-case errors, versions); prints rc, the summary line and errors.
set -u
source "${BASH_SOURCE%/*}/device_out.sh" grads-gpu; R=$W
T_TESTS=${T_TESTS:-300}; WORKERS=${WORKERS:-6}
record_env
t0=$(date +%s)
timeout -s INT -k 20 "$T_TESTS" python3 -m pytest -p no:cacheprovider -p no:randomly -m gpu \
    tests/kernels/test_triton_grads.py -n "$WORKERS" --dist loadgroup -rA --durations=0 > "$R/grads-tests.log" 2>&1
echo "gpu grads tests rc=$? wall=$(( $(date +%s) - t0 )) s" > "$R/rc.txt"
grep -E "^(gla|simple_gla|rwkv6|rwkv7|delta_rule|gated_delta_rule) torch\." "$R/grads-tests.log" | sort -u \
    > "$R/errors.txt" || true
pack
cat "$R/versions.txt" "$R/rc.txt"; tail -1 "$R/grads-tests.log"
grep -E "^(FAILED|ERROR)" "$R/grads-tests.log" | cut -c1-200
cut -c1-240 "$R/errors.txt"
