#!/usr/bin/env bash
# One lent-GPU call (one H200, ~6-8 min with setup): the cost of one training step of every archcomp
# model ALONE at the gpu profile's MQAR budget (batch 512, Zoology's recipe), at the three fig. 2 points
# the profile trains: (T, kv) = (64, 4), (128, 8), (256, 16), d 256 x 4 layers x 4 heads, bf16 autocast.
# Why: benchmarks/README.md "The gpu profile's cost" bounds a batch-512 step only between the batch-128
# solo cost (0.310 s for all eleven) and 4x it, because the batch-512 call that exists
# (results/archcomp-2026-12-01-h200-mqar-models) ran 22 processes sharing the GPU. The measured
# step_seconds_after_first of each run (first step apart: Triton JIT and autotuning) turns that range
# into one number per (model, T), which fixes the gpu profile's hours and says whether gpu-quick could
# afford Zoology's recipe for MQAR (11 models x 2 seeds x ~1,000 steps inside a 500 s measurement).
#   source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && bash benchmarks/archcomp_mqar_cost_gpu.sh
# Runs one after another (never two at once: the point is the solo cost), 40 steps each, one evaluation
# at the end; each T is cut at T_RUN s and still writes the runs it finished (marked killed if cut).
# Output: $OUT/archcomp-mqar-cost.tar.gz (one JSON line per run, logs, versions); a table last.
set -u
T_RUN=${T_RUN:-150}
source "${BASH_SOURCE%/*}/device_out.sh" archcomp-mqar-cost
record_env
Q=${Q:-"--device cuda --V 8192 --rnq 0 --n 100000 --batch 512 --steps 40 --every 1000 --stop 2 --lr 0.00215
   --wd 0.1 --beta2 0.999 --clip 0 --warmup 0 --min-lr-ratio 0 --d 256 --layers 4 --heads 4"}
BACKENDS=${BACKENDS:-"transformer-rope transformer-vanilla lstm gru deltanet gated-deltanet rwkv7 retnet gla mamba2 groundthink"}
start=$(date +%s)
for tk in "64 4" "128 8" "256 16"; do
  set -- $tk
  timeout -k 5 "$T_RUN" python3 benchmarks/mqar_curve.py $Q --T "$1" --kv "$2" --backend $BACKENDS \
      --out "$W/cost-T$1.jsonl" > "$W/cost-T$1.log" 2>&1
done
echo "archcomp mqar cost wall_s=$(( $(date +%s) - start ))" | tee "$W/rc.txt"
pack
python3 - "$W" <<'PY'
import json, pathlib, sys
rows = [json.loads(line) for f in sorted(pathlib.Path(sys.argv[1]).glob("cost-T*.jsonl"))
        for line in f.read_text().splitlines() if line.startswith("{")]
by_t: dict[int, dict[str, float]] = {}
for r in rows:
    by_t.setdefault(r["T"], {})[r["backend"]] = r.get("step_seconds_after_first") or float("nan")
names = sorted({b for t in by_t.values() for b in t})
print("s per batch-512 step, alone (first step apart)")
print(f"{'backend':20s}" + "".join(f"{'T ' + str(t):>10s}" for t in sorted(by_t)))
for b in names:
    print(f"{b:20s}" + "".join(f"{by_t[t].get(b, float('nan')):10.4f}" for t in sorted(by_t)))
print(f"{'sum':20s}" + "".join(f"{sum(by_t[t].values()):10.4f}" for t in sorted(by_t)))
PY
