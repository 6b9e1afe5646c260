#!/usr/bin/env bash
# Issue 14's device pass, one call (after: source benchmarks/device_env.sh):
#   tests    GPU parity of the graphed / static-cache paths and the fused mixer kernels (kernels/mixer_steps.py)
#   decode   benchmarks/models.py for the V5 candidate and the baselines side by side: decode at 1k/8k/32k
#            (eager, graphed, floor, launches per step) and prefill at 1k/8k, the reference recipe beside them
#   fusion   the fused decode step (models/fusion.py: merged projections, add+norm, SiLU x up, and by default
#            the norms inside Triton GEMVs) against the unfused one and the fused one without the GEMVs, side
#            by side in one process (models.py --decode-fusion all: rows "<backend> (unfused)", "<backend>
#            (fused)", "<backend>" = the default), graphed decode at 32k/128k with floors and CUDA kernel
#            counts, the reference recipe beside them; graphed parity without the GEMVs first (nogemv-tests);
#            run it after the tests step (graphed parity of the default)
#   v5speed  specs/v5.yaml's speed-decode / speed-prefill gates re-measured (gpu profile)
#   models   the all-backend 125M sweep (8k-128k); sys02  SYS-02 runtime+memory for three candidates
#   hostprof where an eager prefill's host time goes (benchmarks/host_profile.py --model, cProfile) at 1k
#            for HOSTPROF_MODELS (default: gla groundthink gated-deltanet): its log names the Python that costs
# Everything lands in $OUT/issue14.tar.gz; a short summary is printed last. STEPS picks the parts
# (default "tests decode v5speed"); BACKENDS, SYS02 (profiles), MIXER_K (a -k filter of the mixer tests) and
# the T_* limits are overridable, e.g.
#   STEPS="tests models sys02" BACKENDS=transformer-rope,gpt2 bash benchmarks/issue14_pass.sh
set -u
STEPS=${STEPS:-tests decode v5speed}; SYS02=${SYS02:-gpu gpu-gated-deltanet gpu-mamba2}
source "${BASH_SOURCE%/*}/device_out.sh" issue14; R=$W
T_TESTS=${T_TESTS:-90}; T_DECODE=${T_DECODE:-270}; B_DECODE=${B_DECODE:-240}; T_V5=${T_V5:-90}
T_FUSION=${T_FUSION:-210}; B_FUSION=${B_FUSION:-170}; FUSION_CONTEXTS=${FUSION_CONTEXTS:-32768 131072}
T_MODELS=${T_MODELS:-80}; B_MODELS=${B_MODELS:-66}; T_SYS02=${T_SYS02:-75}
DECODE_BACKENDS=${DECODE_BACKENDS:-gpt2,transformer-rope,gla,gated-deltanet,mamba2,rwkv6,groundthink}
BACKENDS=${BACKENDS:-transformer-rope,gla,gated-deltanet,mamba2}
record_env
step() {  # name, limit, command... (SIGINT first: pytest still writes its report when stopped)
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout -s INT -k 15 "$limit" "$@" > "$R/$name.log" 2>&1
  echo "$name rc=$? limit=${limit}s took=$((SECONDS - t0))s" >> "$R/rc.txt"
}
[[ $STEPS == *tests* ]] && step gpu-tests "$T_TESTS" python3 -m pytest -p no:cacheprovider -q -m gpu \
    tests/kernels/test_kv_attention.py tests/models/test_decoding.py \
    -k "not test_graphed_runner or transformer or gpt2 or gla or delta or mamba2 or rwkv6 or groundthink"
[[ $STEPS == *tests* ]] && step mixer-tests "${T_MIXER:-60}" python3 -m pytest -p no:cacheprovider -q \
    tests/kernels/test_mixer_steps.py tests/kernels/test_decode_fusion.py tests/models/test_decode_fusion.py \
    ${MIXER_K:+-k "$MIXER_K"}
# the fused step without the (default) fused GEMVs (GONI_DECODE_GEMV=0): its graphed parity too, before it is timed
[[ $STEPS == *fusion* ]] && step nogemv-tests 60 env GONI_DECODE_GEMV=0 python3 -m pytest -p no:cacheprovider -q -m gpu \
    tests/models/test_decoding.py -k "graphed and (transformer or gla or delta or mamba2)"
# shellcheck disable=SC2086  # FUSION_CONTEXTS is a list of numbers
[[ $STEPS == *fusion* ]] && step fusion "$T_FUSION" python3 benchmarks/models.py --quick --budget-s "$B_FUSION" \
    --reference --decode-fusion all --backends "$DECODE_BACKENDS" --decode $FUSION_CONTEXTS --prefill \
    --out "$R/fusion.jsonl"
[[ $STEPS == *decode* ]] && step decode "$T_DECODE" python3 benchmarks/models.py --quick --budget-s "$B_DECODE" --reference \
    --backends "$DECODE_BACKENDS" --decode 1024 8192 32768 --prefill 1024 8192 --out "$R/decode.jsonl"
[[ $STEPS == *v5speed* ]] && step v5speed "$T_V5" python3 -m pytest -p no:cacheprovider --goni-spec specs/v5.yaml \
    --goni-profile gpu --goni-report "$R/v5speed" -q -k "speed-decode or speed-prefill"
[[ $STEPS == *models* ]] && step models "$T_MODELS" python3 benchmarks/models.py --quick --budget-s "$B_MODELS" --reference \
    --backends "$BACKENDS" --out "$R/models.jsonl"
[[ $STEPS == *hostprof* ]] && for m in ${HOSTPROF_MODELS:-gla groundthink gated-deltanet}; do
  step "hostprof-$m" 60 python3 benchmarks/host_profile.py --model "$m" --T 1024 --calls 10 --top 25
done
[[ $STEPS == *sys02* ]] && for c in $SYS02; do
  step "sys02-$c" "$T_SYS02" python3 -m pytest -p no:cacheprovider --goni-spec specs/sys02.yaml --goni-profile "$c" \
      --goni-report "$R/sys02-$c" -q -k "rt- or mem-"
done
pack
cat "$R/rc.txt"; tail -2 "$R/gpu-tests.log" "$R/mixer-tests.log" "$R/nogemv-tests.log" 2>/dev/null
for f in decode fusion models; do [[ -f $R/$f.jsonl ]] && python3 benchmarks/models.py --render "$R/$f.jsonl"; done
[[ -d $R/v5speed ]] && grep -hE "speed-(decode|prefill)" "$R/v5speed.log" | tail -4
for f in "$R"/hostprof-*.log; do [[ -f $f ]] && grep -h "host time per call" "$f"; done
[[ $STEPS == *sys02* ]] && for c in $SYS02; do echo "== $c"; grep -E "passed|failed" "$R/sys02-$c.log" 2>/dev/null | tail -1; done
true
