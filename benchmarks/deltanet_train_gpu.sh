#!/usr/bin/env bash
# One lent-GPU call (at most ~95 s, one H200) that checks the delta rules' WY inverse fix in training (issue 13):
#   source benchmarks/device_env.sh && bash benchmarks/deltanet_train_gpu.sh
# On the H200 (bf16 autocast, B 16, lr 1e-3, eager) deltanet trained to a NaN loss at T 4096 twice (8M at
# step 6 of 10, results/2026-11-30-h200x2-training; 30M at step 5, results/2026-12-01-h200-training) while
# gated-deltanet trained. Suspected cause, reproduced on CPU (Triton interpreter, GPU dot rounding emulated):
# the chunk inverse (I + A)^-1 was the Neumann product (I - A)(I + A^2)..., whose partial sums grow like
# (1 + |A|)^C without decay when keys correlate (delta rule outputs 1e16-inf at mean key cosine 0.5-0.85).
# Now a blocked forward substitution (kernels/triton/common.py unit_lower_inverse). This call:
# 1. benchmarks/training.py, eager, deltanet and gated-deltanet at 8M and 30M, T 4096 (B 16, 2 untimed +
#    8 timed steps, as the failing runs; diverged_at must stay null; tok/s against the 2026-12-01 rows:
#    deltanet 298k / 150k, gated-deltanet 205k / 96k at 8M / 30M: the new inverse's cost);
# 2. pytest: the correlated-key gradient tests on the GPU (bf16 B 2 T 4096 H 4 D 64; fp32 D 16 at T 1040
#    and T 4095 under the H200's segment plan);
# 3. benchmarks/delta_inverse_probe.py, deltanet 30M, T 4096, B 16, 10 steps: on the keys the model
#    makes, the old inverse's error per layer and step (the cause: does it reach 1e0-inf by step 5?).
# Packs $OUT/deltanet-train.tar.gz (logs, jsonl, versions); prints rc, the rows, the tests' summary, errors.
set -u
source "${BASH_SOURCE%/*}/device_out.sh" deltanet-train; R=$W
T_TRAIN=${T_TRAIN:-110}; T_TESTS=${T_TESTS:-60}; T_PROBE=${T_PROBE:-0}  # ~3 min; 2026-12-01: first compiles at T 4096 > 40 s
# (T_PROBE=0 skips the probe)
record_env
t0=$(date +%s)
timeout -s INT -k 10 "$T_TRAIN" python3 benchmarks/training.py --device cuda:0 --modes eager \
    --backends deltanet gated-deltanet --points 8M:4096 30M:4096 --warmup 2 --steps 8 \
    --budget-s $((T_TRAIN - 10)) --out "$R/training-eager.jsonl" > "$R/train.log" 2>&1
echo "training rc=$? wall=$(( $(date +%s) - t0 )) s" > "$R/rc.txt"
t0=$(date +%s)
timeout -s INT -k 10 "$T_TESTS" python3 -m pytest -p no:cacheprovider -p no:randomly -q -rA -m gpu \
    tests/kernels/test_triton_grads.py -k "correlated" > "$R/tests.log" 2>&1
echo "correlated-key tests rc=$? wall=$(( $(date +%s) - t0 )) s" >> "$R/rc.txt"
t0=$(date +%s)
[ "$T_PROBE" -gt 0 ] && timeout -s INT -k 10 "$T_PROBE" python3 benchmarks/delta_inverse_probe.py --device cuda:0 --size 30M --seq 4096 \
    --batch 16 --steps 10 --out "$R/inverse-probe.jsonl" > "$R/probe.log" 2>&1
echo "inverse probe rc=$? wall=$(( $(date +%s) - t0 )) s" >> "$R/rc.txt"
python3 - "$R/training-eager.jsonl" > "$R/losses.txt" 2>&1 <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(r["backend"], r["size"], r["seq"], r["status"], "diverged_at", r.get("diverged_at"),
          "tok/s", round(r.get("tokens_per_s") or 0), "losses", [round(x, 3) for x in r.get("losses", [])])
PY
pack
cat "$R/versions.txt" "$R/rc.txt" "$R/losses.txt"
tail -1 "$R/tests.log"
grep -E "^(FAILED|ERROR)|^delta_rule correlated" "$R/tests.log" | cut -c1-240
grep -E "Error|error" "$R/train.log" | head -5 | cut -c1-240
grep -E "^(deltanet|step)" "$R/probe.log" | cut -c1-200
