#!/usr/bin/env bash
# One lent-GPU call (about 2 minutes, one H200) that checks RWKV-7's Triton backward in model training (issue 13):
#   source benchmarks/device_env.sh && bash benchmarks/rwkv7_train_gpu.sh
# On 2026-12-01 rwkv7's GPU gradient tests passed but every rwkv7 row of benchmarks/training.py failed:
# "CompilationError: at 50:13" (the reverse walk's dot of bf16 prep terms with the float32 value-residual v
# that the layer hands over under bf16 autocast). After the fix (kernels/triton/autograd.py, rwkv7_bwd.py):
# 1. pytest, two workers: test_rwkv7_model_training_step (the LM's bf16-autocast step through the Triton
#    backward, against the torch form, on the GPU) and rwkv7's model-shape gradient cases (B 2 T 1000 H 4
#    D 128, bf16 and fp32, against the float64 reference);
# 2. benchmarks/training.py, eager, rwkv7 and gpt2 at 8M and 30M, T 1024 (B 16, 2 untimed + 8 timed steps).
# Packs $OUT/rwkv7-train.tar.gz (logs, jsonl, versions); prints rc, the tests' summary, errors, the table.
set -u
source "${BASH_SOURCE%/*}/device_out.sh" rwkv7-train; R=$W
T_TESTS=${T_TESTS:-70}; T_TRAIN=${T_TRAIN:-70}
record_env
t0=$(date +%s)
timeout -s INT -k 10 "$T_TESTS" python3 -m pytest -p no:cacheprovider -p no:randomly -q -rA \
    tests/kernels/test_triton_grads.py -k "rwkv7 and (model_training_step or gpu_grads_model_shapes)" \
    -n 2 --dist loadgroup > "$R/tests.log" 2>&1
echo "rwkv7 tests rc=$? wall=$(( $(date +%s) - t0 )) s" > "$R/rc.txt"
t0=$(date +%s)
timeout -s INT -k 10 "$T_TRAIN" python3 benchmarks/training.py --device cuda:0 --modes eager --backends rwkv7 gpt2 \
    --points 8M:1024 30M:1024 --warmup 2 --steps 8 --budget-s $((T_TRAIN - 25)) \
    --out "$R/training-eager.jsonl" > "$R/train.log" 2>&1
echo "training rc=$? wall=$(( $(date +%s) - t0 )) s" >> "$R/rc.txt"
pack
cat "$R/versions.txt" "$R/rc.txt"
tail -1 "$R/tests.log"
grep -E "^(FAILED|ERROR)|^rwkv7 torch\." "$R/tests.log" | cut -c1-240
grep -E "^ *(rwkv7|gpt2) |^      \| " "$R/train.log" | head -40 | cut -c1-200  # rows; an error's note in full
