#!/usr/bin/env bash
# One lent-GPU call for specs/archcomp.yaml (issue 17) on the 2-GPU machine: the spec under xdist,
# one worker per GPU, each task measurement its own unit of work (--goni-dist measurement), report
# whole at the end; then the wall time per measurement, its GPU and worker (time per GPU count).
#   cd .dev/archcomp && source benchmarks/device_env.sh && export GONI_GIT_COMMIT=<sha> && \
#     PROFILE=gpu-quick SELECT="mqar or params or minimum or linear or vanilla" bash benchmarks/archcomp_gpu.sh      # call 1 (~6-8 min)
#     PROFILE=gpu-quick SELECT="flip or knapsack" bash benchmarks/archcomp_gpu.sh    # call 2 (~6-8 min)
# (SELECT is pytest -k over gate ids: each call runs only the measurements its gates read.)
# PROFILE=gpu is the seed's settings with Zoology's lr sweep (hours: see benchmarks/README.md).
# Everything is written to a work folder and packed into $OUT/archcomp-gpu-<select>.tar.gz (report/:
# results.json, gates.jsonl, summary.md, plots; logs): the device returns at most 8 files.
set -u
PROFILE=${PROFILE:-gpu-quick}; WORKERS=${WORKERS:-2}; T_SPEC=${T_SPEC:-500}; SELECT=${SELECT:-}
TAG=$(printf %s "${SELECT:-all}" | tr -c 'a-z0-9' '-')
source "${BASH_SOURCE%/*}/device_out.sh" "archcomp-gpu-$TAG"; R=$W
record_env
start=$(date +%s)
timeout -s INT -k 30 "$T_SPEC" python3 -m pytest -p no:cacheprovider -p no:randomly -q --goni-spec specs/archcomp.yaml \
    --goni-profile "$PROFILE" -n "$WORKERS" --goni-dist measurement --goni-report "$R/report" \
    --log-level=INFO ${SELECT:+-k "$SELECT"} > "$R/pytest.log" 2>&1
echo "archcomp $PROFILE -n $WORKERS rc=$? wall_s=$(( $(date +%s) - start ))" | tee "$R/rc.txt"
pack
tail -3 "$R/pytest.log"
python3 - "$R/report/results.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
spec = data["specs"][0]
for name, m in sorted(spec.get("measurements", {}).items()):
    print(f"{name:18s} {m.get('device', '?'):8s} {m.get('worker', '?'):5s} {m.get('seconds', 0):8.1f} s"
          + (f"  ERROR {m['error']['reason'][:80]}" if m.get("error") else ""))
for g in spec["gates"]:
    print(f"{g['status']:8s} {g['gate']:42s} {str(g.get('display', ''))[:40]:40s} {g.get('reason', '')[:70]}")
PY
