#!/usr/bin/env bash
# One lent-GPU call (nvidia-h200-x2, at most ~9 min: T_CAL 500 s + setup) that calibrates specs/archcomp.yaml's gpu-quick MQAR budget
# before the study runs (benchmarks/README.md, "next GPU run", call 1): at the profile's exact shape
# (V 8192, T 64, kv 4, zero filler, d 256 x 4 layers x 4 heads, 100,000 examples) the strong baseline's
# validation accuracy against steps (benchmarks/mqar_curve.py, stopping at 0.99 as Zoology does), and
# the cost of one training step of every backend at the larger batch.
#   cd .dev/<branch> && source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && \
#     bash benchmarks/archcomp_calibrate.sh
# Each schedule length is its own run (warm-up and cosine laid out over it, as the profile's would be).
# GPU 0: rope at lr 0.0022 (gpu-quick's), batch 128 and 512, schedules of 450 (gpu-quick's), 1000 and 2000 steps;
#        then rope with random filler (the old data) at batch 128, 450 and 1000: the filler at V 8192;
#        then rope at V 1024 and V 256 (zero filler, batch 128, 450 steps): the vocabulary's effect.
# GPU 1: rope at lr 0.00046 (the grid point below), the same six runs; then 40 steps of each of the
#        eleven backends at batch 512 (step_seconds_after_first; batch 128's are in the first run's
#        results, benchmarks/results/archcomp-2026-12-01-h200x2-gpu-quick).
# Everything is packed into $OUT/archcomp-calibrate.tar.gz (one JSON line per run); a table last.
set -u
T_CAL=${T_CAL:-500}
source "${BASH_SOURCE%/*}/device_out.sh" archcomp-calibrate
record_env
Q="--device cuda --V 8192 --T 64 --kv 4 --d 256 --layers 4 --heads 4 --n 100000 --every 100 --stop 0.99"
CURVE=benchmarks/mqar_curve.py
BACKENDS="lstm gru transformer-rope transformer-vanilla deltanet gated-deltanet rwkv7 retnet gla mamba2 groundthink"
start=$(date +%s)
(
  export CUDA_VISIBLE_DEVICES=0
  timeout -k 10 "$T_CAL" python3 $CURVE $Q --rnq 0 --batch 128 512 --lr 0.0022 --steps 450 1000 2000 --out "$W/rope-lr0.0022.jsonl"
  left=$(( T_CAL - ($(date +%s) - start) ))
  [ "$left" -gt 30 ] && timeout -k 10 "$left" python3 $CURVE $Q --rnq 1 --batch 128 --lr 0.0022 --steps 450 1000 \
      --out "$W/rope-random-filler.jsonl"
  for v in 1024 256; do
    left=$(( T_CAL - ($(date +%s) - start) ))
    [ "$left" -gt 30 ] && timeout -k 10 "$left" python3 $CURVE ${Q/--V 8192/--V $v} --rnq 0 --batch 128 --lr 0.0022 \
        --steps 450 --out "$W/rope-vocab.jsonl"
  done
) > "$W/gpu0.log" 2>&1 &
(
  export CUDA_VISIBLE_DEVICES=1
  timeout -k 10 $(( T_CAL - 200 )) python3 $CURVE $Q --rnq 0 --batch 128 512 --lr 0.00046 --steps 450 1000 2000 \
      --out "$W/rope-lr0.00046.jsonl"
  left=$(( T_CAL - ($(date +%s) - start) ))
  [ "$left" -gt 30 ] && timeout -k 10 "$left" python3 $CURVE $Q --rnq 0 --batch 512 --lr 0.0022 --steps 40 \
      --every 1000 --stop 2 --backend $BACKENDS --out "$W/step-cost-b512.jsonl"
) > "$W/gpu1.log" 2>&1 &
wait
echo "archcomp calibrate wall_s=$(( $(date +%s) - start ))" | tee "$W/rc.txt"
pack
python3 - "$W" <<'PY'
import json, pathlib, sys
rows = [json.loads(line) for f in sorted(pathlib.Path(sys.argv[1]).glob("*.jsonl"))
        for line in f.read_text().splitlines() if line.startswith("{")]
print(f"{'backend':20s} {'V':>5s} {'B':>4s} {'lr':>8s} {'sched':>5s} {'filler':>6s} {'final':>6s} {'step@0.95':>9s} {'s/step':>8s}  curve")
for r in rows:
    curve = " ".join(f"{s}:{a:.2f}" for s, a in (r.get("curve") or [])[:12])
    print(f"{r.get('backend', '?'):20s} {r.get('V', 0):5d} {r.get('batch', 0):4d} {r.get('lr', 0):8.5f} {r.get('steps', 0):5d} "
          f"{'random' if r.get('random_non_queries') else 'zero':>6s} {r.get('final_val') or 0:6.3f} "
          f"{str(r.get('first_step_095')):>9s} {r.get('step_seconds_after_first') or r.get('seconds_per_step') or 0:8.4f}  {curve}")
PY
