#!/usr/bin/env bash
# One lent-GPU call (one H200, ~9 min with setup: T_RUN 420 s of runs): MQAR at Zoology fig. 2's own recipe, to settle
# whether attention's 1/kv plateau in gpu-quick is a bug or a budget (benchmarks/README.md, "MQAR:
# is our attention faithful?"). Every run is benchmarks/mqar_curve.py at fig. 2's smallest point and
# training recipe (HazyResearch/zoology zoology/experiments/paper/figure2.py, train.py, config.py):
# V 8192, T 64, kv 4, zero filler, 100,000 examples, batch 512, AdamW (wd 0.1, betas 0.9/0.999),
# no warm-up, no clipping, cosine to 0 over 64 epochs (12,544 steps; Zoology steps it per epoch,
# ours per step), float32 (Zoology has no autocast), validation every epoch (196 steps), stopping
# at 0.99 as Zoology's early stopping does. Thirteen processes share the GPU (launch-bound steps
# overlap); each is cut at T_RUN s and still writes its curve (marked killed).
#   cd .dev/<branch> && source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && \
#     bash benchmarks/archcomp_mqar_zoology_gpu.sh
# ref-d64-*:    benchmarks/zoology_attention.py (fig. 2's model: 2 layers x 1 head, learned positions,
#               no MLP, dropout 0.1) at d 64, lr 4.64e-4 and 2.15e-3 (two points of fig. 2's grid).
#               A third-party CPU reproduction of this exact cell passed 0.99 at epoch 20
#               (UOR-Foundation/uor-r4 PR #1052): the harness and data must do the same here
# ref-d256:     the same model at d 256 (fig. 2's width of the archcomp profiles), lr 4.64e-4
# vanilla-2x1, rope-2x1: our transformer-vanilla / transformer-rope at fig. 2's shape (d 64, 2 x 1,
#               --no-mlp), lr 4.64e-4: do our backends leave the plateau where the reference does?
# rope-4x4-*:   the spec's strong baseline as gpu-quick builds it (transformer-rope, d 256, 4 layers
#               x 4 heads, SwiGLU MLP) at this recipe, lr 4.64e-4 and 2.15e-3: the budget it needs
# vanilla-4x4:  transformer-vanilla at that shape, lr 4.64e-4
# gq-v128:      not Zoology's recipe: gpu-quick's own MQAR recipe (batch 128, 450 steps, lr 0.0022,
#               bf16) for rope 4 x 4 at V 128, where the CPU runs leave the plateau by step ~150 (d 64):
#               can a one-call gpu-quick judge MQAR at that (smaller, easier) vocabulary?
# gq-v8192-s1, -s2: gpu-quick's recipe at its own point (V 8192, 2,000-step schedule), seeds 1 and 2:
#               on CPU at V 256 the jump off the plateau is a matter of the seed (seeds 1-3 of rope
#               4 x 4 left it by step ~150-250 where seed 0 stayed through 450; README), and every
#               H200 run so far was seed 0
# gq-v1024-s1:  the same at V 1024, 450 steps, seed 1 (seed 0 stayed on the H200)
# gq-v8192-warm1000: seed 0 with a 1,000-step warm-up of 2,000 (seed 0 at V 256 on CPU left the
#               plateau with a 250-step warm-up, not with gpu-quick's 45)
# Output: $OUT/archcomp-mqar-zoology.tar.gz (one JSON line per run, logs, versions); a table last.
set -u
T_RUN=${T_RUN:-420}
source "${BASH_SOURCE%/*}/device_out.sh" archcomp-mqar-zoology
record_env
Q=${Q:-"--device cuda --V 8192 --T 64 --kv 4 --rnq 0 --n 100000 --batch 512 --steps 12544 --every 196 --stop 0.99
   --wd 0.1 --beta2 0.999 --clip 0 --warmup 0 --min-lr-ratio 0 --fp32"}  # Q: a CPU dry run can shrink it
GQ=${GQ:-"--device cuda --V 128 --T 64 --kv 4 --rnq 0 --n 100000 --batch 128 --steps 450 --every 50 --stop 0.99"}
FIG2="--d 64 --layers 2 --heads 1"
SPEC="--d 256 --layers 4 --heads 4"
start=$(date +%s)
run() {  # NAME ARGS...: one process, cut at T_RUN s (SIGTERM: the run so far is written, marked killed)
  local name=$1; shift
  timeout -k 5 "$T_RUN" python3 benchmarks/mqar_curve.py $Q "$@" --out "$W/$name.jsonl" > "$W/$name.log" 2>&1
}
run ref-d64-lr4.6e-4 --backend zoology-attention $FIG2 --lr 0.000464 &
run ref-d64-lr2.2e-3 --backend zoology-attention $FIG2 --lr 0.00215 &
run ref-d256 --backend zoology-attention --d 256 --layers 2 --heads 1 --lr 0.000464 &
run vanilla-2x1 --backend transformer-vanilla $FIG2 --no-mlp --lr 0.000464 &
run rope-2x1 --backend transformer-rope $FIG2 --no-mlp --lr 0.000464 &
run rope-4x4-lr4.6e-4 --backend transformer-rope $SPEC --lr 0.000464 &
run rope-4x4-lr2.2e-3 --backend transformer-rope $SPEC --lr 0.00215 &
run vanilla-4x4 --backend transformer-vanilla $SPEC --lr 0.000464 &
Q=$GQ run gq-v128 --backend transformer-rope $SPEC --lr 0.0022 &
for s in 1 2; do Q="$GQ --V 8192 --steps 2000" run gq-v8192-s$s --backend transformer-rope $SPEC --lr 0.0022 --seed $s & done
Q="$GQ --V 1024" run gq-v1024-s1 --backend transformer-rope $SPEC --lr 0.0022 --seed 1 &
Q="$GQ --V 8192 --steps 2000" run gq-v8192-warm1000 --backend transformer-rope $SPEC --lr 0.0022 --warmup 1000 &
wait
echo "archcomp mqar zoology wall_s=$(( $(date +%s) - start ))" | tee "$W/rc.txt"
pack
python3 benchmarks/mqar_curve.py --table "$W"/*.jsonl
