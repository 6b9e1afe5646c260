#!/usr/bin/env bash
# One lent-GPU call (about 9 minutes, one H200) for issue 13's linear-attention / SSM training targets: is
# ShortConv's cuDNN depthwise conv what holds deltanet, gated-deltanet, mamba2 and groundthink under 0.9x
# GPT-2's tokens/s, and does the Triton conv (kernels/triton/short_conv.py, SiLU fused) fix it?
#   source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && bash benchmarks/short_conv_gpu.sh
# 1. pytest on the GPU: the conv's float64-reference tests (bf16 at the 8M widths among them) and the
#    whole-model parity of the three forms;                                                   (T_TESTS s)
# 2. benchmarks/train_profile.py --parts conv: ShortConv forward+backward alone at the models' widths
#    (C 384 / 768 / 896+bias at 8M, 512 / 1024 / 1152+bias at 30M; B 16, T 1024, bf16), cuDNN vs shifted
#    vs Triton, eager and compiled, and the Triton kernel at four other tile sizes;           (T_CONV s)
# 3. the training loop (train_profile.py's loop rows, eager) at 8M and at 30M: gpt2 (loop and loop-plain,
#    the plain forward it trains with) and every backend with a short conv, each as it is (cuDNN),
#    loop-shifted and loop-triton-conv, with GPU ms per step by kernel kind (the Triton conv's kernels
#    count as "convolution");                                                        (T_8M s, T_30M s)
# 4. the same loop compiled at 8M for gpt2, gated-deltanet and mamba2, cuDNN vs Triton.   (T_COMPILED s)
# Packs $OUT/short-conv.tar.gz (jsonl, logs, versions); prints rc and one table last: conv ms per form,
# and each loop row's tok/s with its ratio to GPT-2's at the same size and mode (target >= 0.9).
set -u
source "${BASH_SOURCE%/*}/device_out.sh" short-conv; R=$W
T_TESTS=${T_TESTS:-50}; T_CONV=${T_CONV:-130}; T_8M=${T_8M:-110}; T_30M=${T_30M:-110}; T_COMPILED=${T_COMPILED:-120}
PROFILE_ARGS=${PROFILE_ARGS:---device cuda:0}  # a CPU dry run: PROFILE_ARGS=--cpu-smoke (plumbing only)
CONV_BACKENDS=${CONV_BACKENDS:-deltanet gated-deltanet mamba2 groundthink}
export PYTHONUNBUFFERED=1
record_env
J="$R/train-profile.jsonl"
stage tests "$T_TESTS" python3 -m pytest -p no:cacheprovider -p no:randomly -q -rA \
    tests/kernels/test_short_conv.py tests/models/test_short_conv_forms.py
stage conv "$T_CONV" python3 benchmarks/train_profile.py $PROFILE_ARGS --out "$J" --parts conv
for size in 8M 30M; do
    limit=$T_8M; [ "$size" = 30M ] && limit=$T_30M
    stage "loop-$size" "$limit" python3 benchmarks/train_profile.py $PROFILE_ARGS --out "$J" --size "$size" --eager \
        --parts loop loop-plain loop-shifted loop-triton-conv --backends gpt2 $CONV_BACKENDS --profile-steps 2
done
stage loop-8M-compiled "$T_COMPILED" python3 benchmarks/train_profile.py $PROFILE_ARGS --out "$J" --size 8M \
    --parts loop loop-plain loop-triton-conv --backends gpt2 gated-deltanet mamba2 --profile-steps 2
python3 - "$J" > "$R/table.txt" 2>&1 <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for r in rows:
    if r["part"] == "conv":
        print(f"conv (B {r['config']['B']}, T {r['config']['T']}, {r['config']['input_dtype']}, fwd+bwd ms):")
        for k, v in r.get("ms", {}).items():
            print(f"  {k}: {v:.3g}")
gpt2 = {}  # (size, compiled) -> GPT-2's faster loop (transformers' module or the plain forward it trains with)
for r in rows:
    if r["part"] in ("loop", "loop-plain") and r["config"].get("backend") == "gpt2" and r.get("tokens_per_s"):
        key = (r["config"].get("size"), r["config"].get("compiled"))
        gpt2[key] = max(gpt2.get(key, 0), r["tokens_per_s"])
print("loop rows: part, backend, size, compiled, tok/s, x GPT-2 (its faster loop), conv ms/step, step ms")
for r in rows:
    c = r["config"]
    if not r["part"].startswith("loop"):
        continue
    if r.get("status", "ok") != "ok":
        print(f"  {r['part']} {c.get('backend')} {c.get('size')}: {r['status']} {r.get('note', '')[:120]}")
        continue
    base = gpt2.get((c.get("size"), c.get("compiled")))
    ratio = f"{r['tokens_per_s'] / base:.2f}x" if base else "-"
    conv = (r.get("ms_by_kind") or {}).get("convolution")
    print(f"  {r['part']:<17} {c.get('backend'):<15} {c.get('size')} compiled={c.get('compiled')} "
          f"{r['tokens_per_s']:>10,.0f} {ratio:>6}  conv {conv if conv is not None else '-'}  "
          f"step {r['step_ms']:.1f}")
PY
pack
cat "$R/versions.txt" "$R/rc.txt"
tail -1 "$R/tests.log"
grep -E "^(FAILED|ERROR)" "$R/tests.log" | cut -c1-240
grep -hE "Error|error" "$R"/conv.log "$R"/loop-*.log | grep -v -i warn | head -5 | cut -c1-240
cat "$R/table.txt"
