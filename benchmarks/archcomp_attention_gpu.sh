#!/usr/bin/env bash
# One lent-GPU call (one H200, ~90 s with setup: T_RUN 65 s of runs): why attention stays on MQAR's
# 1/kv plateau at gpu-quick's shape while DeltaNet / RWKV-7 solve it in 150-300 steps
# (benchmarks/README.md, "gpu-quick v2 on one H200"). Every run is benchmarks/mqar_curve.py at the
# profile's exact MQAR point: V 8192, T 64, kv 4, zero filler, d 256 x 4 layers x 4 heads, 100,000
# examples, batch 128, validation every 50 steps, stopping at 0.99 (Zoology). Seven processes share the GPU (each is
# launch-bound at ~20 ms a step, so they overlap); each is cut at T_RUN s and still writes its curve
# (marked killed), so the call ends by ~T_RUN + setup whatever the contention.
#   cd .dev/<branch> && source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && \
#     bash benchmarks/archcomp_attention_gpu.sh
# conv:   rope + a short causal conv (kernel 4) after q/k/v (Primer's depthwise-conv attention),
#         gpu-quick's 450 steps at lr 0.0022: the previous-token binding DeltaNet's conv gives its keys for free
#         (on CPU it turned a 2-layer rope that never left the plateau into 0.94 in 600 steps)
# long:   rope, gpu-quick's recipe, a 2,000-step schedule: is it only a matter of steps?
# lr-*:   rope, 1,000-step schedules at lr 0.01, 0.005, 0.001 (gpu-quick: 0.0022)
# zoo:    rope with Zoology's optimizer (AdamW wd 0.01, betas 0.9/0.999, no warm-up, no clipping,
#         constant lr: its cosine runs over 64 epochs), lr 0.0022, 1,000 steps
# vocab:  rope, gpu-quick's recipe and 450 steps at V 1024, then V 256: the calibration plan's
#         fallback (the largest vocabulary at which the baseline reaches 0.95 in gpu-quick's budget)
# Output: $OUT/archcomp-attention.tar.gz (one JSON line per run, logs, versions); a table last.
set -u
T_RUN=${T_RUN:-65}
source "${BASH_SOURCE%/*}/device_out.sh" archcomp-attention
record_env
Q=${Q:-"--device cuda --backend transformer-rope --V 8192 --T 64 --kv 4 --rnq 0 --d 256 --layers 4 --heads 4
   --n 100000 --batch 128 --every 50 --stop 0.99"}  # Q: a CPU dry run of the script's mechanics can shrink it
start=$(date +%s)
run() {  # NAME ARGS...: one process, cut at LIMIT (default T_RUN) s (SIGTERM: the run so far is written, marked killed)
  local name=$1; shift
  timeout -k 5 "${LIMIT:-$T_RUN}" python3 benchmarks/mqar_curve.py $Q "$@" --out "$W/$name.jsonl" > "$W/$name.log" 2>&1
}
run conv --lr 0.0022 --steps 450 --qkv-conv 4 &
run long --lr 0.0022 --steps 2000 &
run lr-0.01 --lr 0.01 --steps 1000 &
run lr-0.005 --lr 0.005 --steps 1000 &
run lr-0.001 --lr 0.001 --steps 1000 &
run zoo --lr 0.0022 --steps 1000 --wd 0.01 --beta2 0.999 --clip 0 --warmup 0 --min-lr-ratio 1 &
(LIMIT=$(( T_RUN / 2 )); run vocab-1024 --V 1024 --lr 0.0022 --steps 450; run vocab-256 --V 256 --lr 0.0022 --steps 450) &
wait
echo "archcomp attention wall_s=$(( $(date +%s) - start ))" | tee "$W/rc.txt"
pack
python3 benchmarks/mqar_curve.py --table "$W"/*.jsonl
