#!/usr/bin/env bash
# Issue 11 on a 2-GPU host, in one device call: demo + sys02 (runtime, memory) run serially (-n 0),
# then under -n 2, side by side on the same machine. Each run writes its --goni-report, whose
# results.json has a `timeline` (every process's start-up, collection, CUDA warm-up, each unit
# sent / started / ended, each measurement's start and end); the shell brackets each pytest process
# with epoch times, so xdist_table.py accounts for every second of both walls. GPU load is sampled
# (absolute timestamps) during both runs. Each run gets its own empty Triton cache, so -n 2 does
# not inherit kernels compiled by -n 0 (its two workers compile theirs at the same time, as a cold
# CI run would); the -n 0 run leaves its measurement durations in pytest's cache, which the -n 2
# scheduler reads to send the longest unit first.
# Then (XDIST_WARM=1, the default; 0 skips it) the same pair again with a warm Triton cache (the one
# the cold -n 0 run filled, shared by both runs), into warm/: the cold pair's -n 2 compiles the same
# kernels on both workers at once, a warm pair shows what the ratio is without that first use.
#
# Usage: OUT=/path bash benchmarks/xdist_pass.sh   -> ONE file, $OUT/xdist-pass.tar.gz (a device call
# returns at most 8 files), and the tables printed last. A dry run elsewhere: PY=.venv/bin/python
# XDIST_SEL="--goni-spec x.yaml -p no:randomly -v --goni-dist measurement" bash benchmarks/xdist_pass.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}
OUTDIR=${OUT:-/tmp/out}; R=$(mktemp -d /tmp/xdist-pass.XXXXXX); mkdir -p "$OUTDIR"
SEL=(--goni-spec specs/demo.yaml --goni-spec specs/sys02.yaml -p no:randomly -v
     -k "demo or rt- or mem- or checklist-3 or checklist-4")
if [ -n "${XDIST_SEL:-}" ]; then read -r -a SEL <<< "$XDIST_SEL"; fi
now() { "$PY" -c 'import time; print(repr(time.time()))'; }
nvidia-smi --query-gpu=index,name,memory.total,persistence_mode,clocks.max.sm --format=csv > "$R/nvidia-smi.csv" 2>&1
nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader -lms 250 > "$R/gpu-load.csv" 2>&1 &
SMI=$!
sleep 2  # nvidia-smi's own start-up (NVML) is not inside either run

run() {  # folder, name, Triton cache, extra pytest args...
  local dir=$1 name=$2; export TRITON_CACHE_DIR=$3; shift 3
  mkdir -p "$dir"
  local t0; t0=$(now)
  "$PY" -m pytest "${SEL[@]}" "$@" --goni-report "$dir/$name" > "$dir/$name.log" 2>&1
  echo "$name rc=$? start=$t0 end=$(now)" >> "$dir/walls.txt"
  # kernels Triton compiled in this run (both -n 2 workers fill one cache: the same kernel twice = once here)
  echo "$name triton-cache-entries=$(find "$TRITON_CACHE_DIR" -name '*.json' 2>/dev/null | wc -l)" >> "$dir/walls.txt"
}
run "$R" serial "$R/triton-cache-serial" -n 0
run "$R" n2 "$R/triton-cache-n2" -n 2
if [ "${XDIST_WARM:-1}" = 1 ]; then
  run "$R/warm" serial "$R/triton-cache-serial" -n 0
  run "$R/warm" n2 "$R/triton-cache-serial" -n 2
fi
sleep 1; kill "$SMI" 2>/dev/null; wait "$SMI" 2>/dev/null
# what a process imports before its first gate (after both runs: the files are cached, as they were
# for the -n 2 workers): the 15 slowest imports, cumulative, of a collect-only run (-s: pytest's
# capture would swallow what is imported after it starts)
"$PY" -X importtime -m pytest "${SEL[@]}" --co -q -s -p no:xdist > /dev/null 2> "$R/importtime.txt"
sort -t'|' -k2 -n "$R/importtime.txt" | tail -15 > "$R/importtime-top.txt"
table() {  # folder with serial/, n2/, n2.log, walls.txt -> its table.md
  local walls
  walls=$("$PY" - "$1/walls.txt" <<'EOF'
import re, sys
runs = {m[1]: (m[2], m[3]) for m in re.finditer(r"(\S+) rc=\S+ start=(\S+) end=(\S+)", open(sys.argv[1]).read())}
print(*runs["serial"], *runs["n2"])
EOF
)
  "$PY" "$HERE/xdist_table.py" "$1" $walls > "$1/table.md" 2> "$1/table.err"
}
table "$R"
if [ -d "$R/warm" ]; then table "$R/warm"; fi
tar czf "$OUTDIR/xdist-pass.tar.gz" -C "$R" --exclude 'triton-cache-*' .
cat "$R/walls.txt" "$R/table.err"
echo "slowest imports at start-up (us: self | cumulative):"; cat "$R/importtime-top.txt"
cat "$R/table.md"
if [ -d "$R/warm" ]; then
  echo; echo "=== the same pair with a warm Triton cache (warm/) ==="; cat "$R/warm/walls.txt" "$R/warm/table.err"
  tail -3 "$R/warm/table.md"
fi
