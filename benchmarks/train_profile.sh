#!/usr/bin/env bash
# One lent-GPU call (about 7 minutes, one H200 is enough) for issue 13's missed training targets
# (benchmarks/train_profile.py):
#   1. GPT-2 125M, B 16, T 1024: the loop with the eager loss beside compiled features (loop), the same with
#      the head padded to 50,304 rows, and the loop's compiled loss in the model's graph through
#      transformers' module (loop-whole), each with GPU time per step by kernel kind under torch.profiler;
#      the loss alone (padded or not); the compiled features alone; a plain nanoGPT-style step and
#      transformers' GPT-2 whole-model-compiled beside them.                          (T_PROFILE s)
#      With PARTS="loop-whole loop-plain loop-whole-pad64 loop-plain-pad64 reference hf-whole": transformers'
#      module against GPT-2's plain training forward (the loop's default since), head padded or not.
#   2. 8M, eager: the same loop profile for GPT-2 and the backends under 0.9x GPT-2, and for those with
#      a short conv again with ShortConv as shifted multiply-adds (loop-shifted) and as the Triton conv
#      (loop-triton-conv).                                                         (T_BACKENDS s)
#   source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && bash benchmarks/train_profile.sh
# Packs $OUT/train-profile.tar.gz (jsonl, logs, versions); prints the rows last.
set -u
source "${BASH_SOURCE%/*}/device_out.sh" train-profile; R=$W
T_PROFILE=${T_PROFILE:-300}; T_BACKENDS=${T_BACKENDS:-240}
BACKENDS=${BACKENDS:-gpt2 gla mamba2 rwkv6 deltanet gated-deltanet groundthink}
export PYTHONUNBUFFERED=1
record_env
t0=$SECONDS
timeout -s INT -k 15 "$T_PROFILE" python3 benchmarks/train_profile.py --device cuda:0 --out "$R/train-profile.jsonl" \
    ${PARTS:+--parts $PARTS} > "$R/gpt2-125m.log" 2>&1
echo "gpt2-125m rc=$? limit=${T_PROFILE}s took=$((SECONDS - t0))s" > "$R/rc.txt"
t0=$SECONDS
timeout -s INT -k 15 "$T_BACKENDS" python3 benchmarks/train_profile.py --device cuda:0 --out "$R/train-profile.jsonl" \
    --size 8M --eager --parts loop loop-shifted loop-triton-conv --backends $BACKENDS > "$R/backends-8m.log" 2>&1
echo "backends-8m rc=$? limit=${T_BACKENDS}s took=$((SECONDS - t0))s" >> "$R/rc.txt"
pack
cat "$R/versions.txt" "$R/rc.txt"
grep -hv "Warning\|warn(" "$R/gpt2-125m.log" "$R/backends-8m.log" | tail -n 80
