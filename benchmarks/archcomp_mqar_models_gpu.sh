#!/usr/bin/env bash
# One lent-GPU call (one H200, ~9 min with setup): every archcomp model on MQAR at Zoology fig. 2's
# smallest point and training recipe, the one at which our attention baseline was shown to leave the
# 1/kv plateau (results/archcomp-2026-12-01-h200-mqar-zoology: transformer-rope 4 x 4, d 256, batch
# 512, lr 2.15e-3 reached 0.95 at step 784, the reference attention 1.00 at 1,176). gpu-quick's own
# MQAR recipe (batch 128, <= 2,000 steps) left rope on the plateau for 3 seeds of 4, so gpu-quick
# cannot judge MQAR; this call gives the side-by-side table the spec's gpu profile would, at one seed
# and two points of Zoology's lr grid (logspace(-4, -2, 4): 4.64e-4 and 2.15e-3), each model once.
#   source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && bash benchmarks/archcomp_mqar_models_gpu.sh
# Every run is benchmarks/mqar_curve.py (the synthetic_task kind's pieces: tasks.MQAR, EpochBatches,
# training.train, predict_scored), the spec's shape (d 256, 4 layers, 4 heads, the archcomp models),
# V 8192, T 64, kv 4, zero filler, 100,000 examples, batch 512, AdamW (wd 0.1, betas 0.9/0.999), no
# warm-up, no clipping, cosine over 12,544 steps (64 epochs; Zoology's), bf16 autocast (the spec's
# path on CUDA), validation every 98 steps (half an epoch), stop at 0.99. The 22 processes share the
# GPU and its 16 CPU cores; each is cut at T_RUN s and still writes its curve (marked killed), so a
# model that has not reached 0.95 by then is reported with the steps it had, not as a failure of
# the task. Output: $OUT/archcomp-mqar-models.tar.gz (one JSON line per run, logs, versions); table last.
set -u
T_RUN=${T_RUN:-450}
source "${BASH_SOURCE%/*}/device_out.sh" archcomp-mqar-models
record_env
Q=${Q:-"--device cuda --V 8192 --T 64 --kv 4 --rnq 0 --n 100000 --batch 512 --steps 12544 --every 98 --stop 0.99
   --wd 0.1 --beta2 0.999 --clip 0 --warmup 0 --min-lr-ratio 0 --d 256 --layers 4 --heads 4"}
BACKENDS=${BACKENDS:-"transformer-rope transformer-vanilla lstm gru deltanet gated-deltanet rwkv7 retnet gla mamba2 groundthink"}
LRS=${LRS:-"0.000464 0.00215"}
start=$(date +%s)
for b in $BACKENDS; do
  for lr in $LRS; do
    timeout -k 5 "$T_RUN" python3 benchmarks/mqar_curve.py $Q --backend "$b" --lr "$lr" \
        --out "$W/$b-lr$lr.jsonl" > "$W/$b-lr$lr.log" 2>&1 &
  done
done
wait
echo "archcomp mqar models wall_s=$(( $(date +%s) - start ))" | tee "$W/rc.txt"
pack
python3 benchmarks/mqar_curve.py --table "$W"/*.jsonl
