#!/usr/bin/env bash
# One lent-GPU call (at most ~4.6 minutes of stages + install, one H200) for issue 13: what makes deltanet's `_wy_kernel` 12.7 ms of a
# 66.8 ms 8M training step (benchmarks/README.md, "the short conv is not the gap"), and do the two changes fix it?
#   source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && bash benchmarks/delta_wy_gpu.sh
# Two causes found on the CPU (ptxas, sm_90, Triton 3.6): (a) under CUDA bf16 autocast F.normalize runs in float32,
# so the layer hands the delta rule float32 q, k and every kernel runs its float32 path (tf32x3 dots; the forward
# WY kernel at chunk 64 spills 2,988 B per thread, 80 B in bf16); (b) the forward-substitution inverse masked A
# once per step, and the compiler kept all those masked copies live (now the products' rows are masked: bf16 no
# spill, float32 1,984 B).  Switches: models.deltanet.QK_PROJ_DTYPE (opt-in, GONI_DELTA_QK_PROJ_DTYPE=1; the
# train_profile part loop-delta-qk16 turns it on per row) and GONI_WY_MASK_RESULT=0 (the old masking; default new).
# 1. pytest on the GPU: the delta rules against float64 (inverse precisions, fp32 segments, correlated keys at
#    T 4096, model-shape gradients) with the new inverse;                                    (T_TESTS s)
# 2. benchmarks/kernels.py forward+backward at the 8M shape (16,1024,6,64), delta_rule and gated_delta_rule, all
#    bf16 and at the model's dtypes (q, k, g float32), new inverse then old (GONI_WY_MASK_RESULT=0);  (T_KERNELS s each)
# 3. the 8M eager loop (train_profile.py): gpt2, deltanet, gated-deltanet as they are, then deltanet and
#    gated-deltanet with q, k in bf16 (loop-delta-qk16);                                      (T_LOOP s)
#    with T_LOOP_OLD > 0 (off by default: the 5-minute budget) deltanet's loop again with the old inverse.
# Packs $OUT/delta-wy.tar.gz; prints rc and one table last.
# CPU dry run of the plumbing: PROFILE_ARGS=--cpu-smoke T_TESTS=1 T_KERNELS=1 bash benchmarks/delta_wy_gpu.sh
set -u
source "${BASH_SOURCE%/*}/device_out.sh" delta-wy; R=$W
T_TESTS=${T_TESTS:-35}; T_KERNELS=${T_KERNELS:-40}; T_LOOP=${T_LOOP:-160}; T_LOOP_OLD=${T_LOOP_OLD:-0}
PROFILE_ARGS=${PROFILE_ARGS:---device cuda:0}
LOOP_STEPS=${LOOP_STEPS:---warmup 2 --steps 6 --profile-steps 2}
export PYTHONUNBUFFERED=1
record_env
J="$R/train-profile.jsonl"
K="$R/kernels-train.jsonl"
stage tests "$T_TESTS" python3 -m pytest -p no:cacheprovider -p no:randomly -q -rA \
    tests/kernels/test_triton_delta_segments.py tests/kernels/test_triton_grads.py tests/models/test_deltanet_qk_dtype.py \
    -k "gpu_inverse_precisions or gpu_segments_fp32 or gpu_correlated_keys_long_t or (gpu_grads_model_shapes and delta) or qk_dtype"
for mask in 1 0; do
    GONI_WY_MASK_RESULT=$mask stage "kernels-mask$mask" "$T_KERNELS" python3 benchmarks/kernels.py --out "$K" \
        --skip decode sdpa swa sweep prefill --train-ops delta_rule gated_delta_rule --train-shapes 16,1024,6,64 \
        --train-signatures bf16 model --train-torch-max-T 0
done
stage loop-8M "$T_LOOP" python3 benchmarks/train_profile.py $PROFILE_ARGS --out "$J" --size 8M --eager $LOOP_STEPS \
    --parts loop loop-delta-qk16 --backends gpt2 deltanet gated-deltanet
[ "$T_LOOP_OLD" -gt 0 ] && GONI_WY_MASK_RESULT=0 stage loop-8M-old-inverse "$T_LOOP_OLD" python3 \
    benchmarks/train_profile.py $PROFILE_ARGS --out "$J" --size 8M --eager $LOOP_STEPS --parts loop --backends deltanet
python3 - "$J" "$K" > "$R/table.txt" 2>&1 <<'PY'
import json, os, sys
rows = [json.loads(line) for line in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
krows = [json.loads(line) for line in open(sys.argv[2])] if os.path.exists(sys.argv[2]) else []
print("kernels fwd+bwd (ms, do_bench median): op, signature, new inverse / old inverse")
ms = {(r["op"], r["signature"], r["wy_mask_result"]): r.get("ms") for r in krows if r.get("section") == "train"}
for op, sig in sorted({k[:2] for k in ms}):
    new, old = ms.get((op, sig, True)), ms.get((op, sig, False))
    print(f"  {op:<17} {sig:<6} {new if new is None else round(new, 3)} / {old if old is None else round(old, 3)}")
gpt2 = next((r["tokens_per_s"] for r in rows if r["config"].get("backend") == "gpt2" and r.get("tokens_per_s")), None)
print("loop rows (8M eager): part, backend, qk bf16, new inverse, tok/s, x GPT-2, step ms, delta kernels ms/step")
for r in rows:
    c = r["config"]
    if r.get("status", "ok") != "ok":
        print(f"  {r['part']} {c.get('backend')}: {r['status']} {r.get('note', '')[:120]}")
        continue
    top = r.get("top_kernels") or {}
    delta = {k: v for k, v in top.items() if k.startswith("_") and "kernel" in k and "ce_rows" not in k}
    ratio = f"{r['tokens_per_s'] / gpt2:.2f}x" if gpt2 else "-"
    print(f"  {r['part']:<16} {c.get('backend'):<15} {str(c.get('delta_qk_proj_dtype')):<5} "
          f"{str(c.get('wy_mask_result')):<5} {r['tokens_per_s']:>10,.0f} {ratio:>6} step {r['step_ms']:.1f} {delta}")
PY
pack
cat "$R/versions.txt" "$R/rc.txt"
tail -1 "$R/tests.log"
grep -E "^(FAILED|ERROR)" "$R/tests.log" | cut -c1-240
grep -hE "Error|error" "$R"/kernels-*.log "$R"/loop-*.log | grep -v -i warn | head -5 | cut -c1-240
cat "$R/table.txt"
