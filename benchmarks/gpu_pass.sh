#!/usr/bin/env bash
# One lent-GPU pass for everything the suite quotes, inside one device call:
#   source benchmarks/device_env.sh && bash benchmarks/gpu_pass.sh   (about 9 minutes)
# Tokenizer SLAs run on CPU cores 8-15 in the background (their only GPU work is the small CuPy
# token path); the GPU measurements run one after another in the foreground, each under its own
# time limit. Everything lands in $OUT/gpu_pass.tar.gz plus $OUT/summary.txt (the device returns at
# most 8 files).
set -u
source "${BASH_SOURCE%/*}/device_out.sh" gpu_pass; R=$W
T_TOK=${T_TOK:-420}; T_DEMO=${T_DEMO:-90}; T_SYS02=${T_SYS02:-150}; T_MODELS=${T_MODELS:-110}; T_SYS02B=${T_SYS02B:-90}
if command -v taskset >/dev/null; then BG="taskset -c 8-15"; FG="taskset -c 0-7"; else BG=""; FG=""; fi
record_env

( timeout -s INT -k 20 "$T_TOK" $BG python3 -m pytest -p no:cacheprovider --goni-spec specs/tokenizers.yaml \
    --goni-profile gpu --goni-report "$R/tokenizers" -q > "$R/tokenizers.log" 2>&1; echo "tokenizers rc=$?" >> "$R/rc.txt" ) &
TOK=$!

step() {  # name, limit, command... (SIGINT first: pytest still writes its report when stopped)
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout -s INT -k 20 "$limit" $FG "$@" > "$R/$name.log" 2>&1
  echo "$name rc=$? ${limit}s-limit took=$((SECONDS - t0))s" >> "$R/rc.txt"
}
RTMEM="rt- or mem- or checklist-3 or checklist-4"
sys02() {  # profile, limit
  step "sys02-$1" "$2" python3 -m pytest -p no:cacheprovider --goni-spec specs/sys02.yaml --goni-profile "$1" \
      --goni-report "$R/sys02-$1" -q -k "$RTMEM"
}
step demo "$T_DEMO" python3 -m pytest -p no:cacheprovider --goni-spec specs/demo.yaml --goni-profile gpu \
    --goni-report "$R/demo" -q
sys02 gpu "$T_SYS02"
step models "$T_MODELS" python3 benchmarks/models.py --quick --budget-s $((T_MODELS - 40)) --out "$R/models.jsonl"
sys02 gpu-gated-deltanet "$T_SYS02B"
sys02 gpu-mamba2 "$T_SYS02B"
wait $TOK
pack
{ cat "$R/rc.txt"; for f in demo sys02-gpu sys02-gpu-gated-deltanet sys02-gpu-mamba2 tokenizers; do echo "== $f"; grep -E "passed|failed|error" "$R/$f.log" | tail -2; done; } \
    | tee "$OUT/summary.txt"
