#!/usr/bin/env bash
# Issue 14's device pass, one call (after: source benchmarks/device_env.sh):
#   GPU parity tests of the graphed / static-cache paths, benchmarks/models.py (decode and prefill
#   with floors, the reference recipe side by side), SYS-02 runtime+memory for three candidates.
# Everything lands in $OUT/issue14.tar.gz (the device returns at most 8 files); a short summary is printed last. STEPS picks the parts
# (default "tests models sys02"); BACKENDS, SYS02 (profiles) and the T_* limits are overridable, e.g.
#   STEPS="tests models sys02" BACKENDS=transformer-rope,gpt2 bash benchmarks/issue14_pass.sh
set -u
STEPS=${STEPS:-tests models sys02}; SYS02=${SYS02:-gpu gpu-gated-deltanet gpu-mamba2}
source "${BASH_SOURCE%/*}/device_out.sh" issue14; R=$W
T_TESTS=${T_TESTS:-90}; T_MODELS=${T_MODELS:-80}; B_MODELS=${B_MODELS:-66}; T_SYS02=${T_SYS02:-75}
BACKENDS=${BACKENDS:-transformer-rope,gla,gated-deltanet,mamba2}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$R/nvidia-smi.csv" 2>&1
step() {  # name, limit, command... (SIGINT first: pytest still writes its report when stopped)
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout -s INT -k 15 "$limit" "$@" > "$R/$name.log" 2>&1
  echo "$name rc=$? limit=${limit}s took=$((SECONDS - t0))s" >> "$R/rc.txt"
}
[[ $STEPS == *tests* ]] && step gpu-tests "$T_TESTS" python3 -m pytest -p no:cacheprovider -q -m gpu tests/kernels/test_kv_attention.py \
    tests/models/test_decoding.py -k "not test_graphed_runner or transformer or gpt2 or gla or delta or mamba2"
[[ $STEPS == *models* ]] && step models "$T_MODELS" python3 benchmarks/models.py --quick --budget-s "$B_MODELS" --reference \
    --backends "$BACKENDS" --out "$R/models.jsonl"
[[ $STEPS == *sys02* ]] && for c in $SYS02; do
  step "sys02-$c" "$T_SYS02" python3 -m pytest -p no:cacheprovider --goni-spec specs/sys02.yaml --goni-profile "$c" \
      --goni-report "$R/sys02-$c" -q -k "rt- or mem-"
done
pack
cat "$R/rc.txt"; tail -3 "$R/gpu-tests.log" 2>/dev/null
[[ -f $R/models.jsonl ]] && python3 benchmarks/models.py --render "$R/models.jsonl"
for c in $SYS02; do echo "== $c"; grep -E "passed|failed" "$R/sys02-$c.log" 2>/dev/null | tail -1; done
