#!/usr/bin/env bash
# Issue 11 on a 2-GPU host: demo + sys02 (runtime, memory) run serially (-n 0), then under -n 2.
# Each run writes its --goni-report; GPU load is sampled during the -n 2 run; xdist_table.py prints
# per measurement where it ran (worker, device, seconds), whether every gate reading it ran there,
# and the wall times. Usage: OUT=/path bash benchmarks/xdist_pass.sh (7 files land in OUT);
# SERIAL_DIR=<an earlier -n 0 --goni-report folder> SERIAL_WALL=<its seconds> skips the -n 0 run.
set -u
OUTDIR=${OUT:-/tmp/out}; R=/tmp/xdist-pass; rm -rf "$R"; mkdir -p "$R" "$OUTDIR"
SEL=(--goni-spec specs/demo.yaml --goni-spec specs/sys02.yaml -p no:randomly -v
     -k "demo or rt- or mem- or checklist-3 or checklist-4")
nvidia-smi --query-gpu=index,name,memory.total --format=csv > "$R/nvidia-smi.csv" 2>&1
if [ -n "${SERIAL_DIR:-}" ]; then
  # the -n 0 run taken earlier on the same kind of machine: its results and wall time (SERIAL_WALL s)
  cp -r "$SERIAL_DIR" "$R/serial"; cp "$SERIAL_DIR/../serial.log" "$R/serial.log" 2>/dev/null || true
  t0=0; t1=$SERIAL_WALL; start=$(date +%s.%N)
else
  t0=$(date +%s.%N)
  python3 -m pytest "${SEL[@]}" -n 0 --goni-report "$R/serial" > "$R/serial.log" 2>&1
  t1=$(date +%s.%N); start=$t1
fi
nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader -lms 500 > "$R/gpu-load-n2.csv" 2>&1 &
SMI=$!
python3 -m pytest "${SEL[@]}" -n 2 --goni-report "$R/n2" > "$R/n2.log" 2>&1
t2=$(python3 -c "import time; print($t1 + time.time() - $start)")
kill "$SMI" 2>/dev/null
python3 benchmarks/xdist_table.py "$R" "$t0" "$t1" "$t2" > "$R/table.md"
# what comes back (a device call returns at most 8 files): logs, load, table, record, both reports
tar czf "$OUTDIR/reports.tar.gz" -C "$R" serial n2
cp "$R"/serial.log "$R"/n2.log "$R"/gpu-load-n2.csv "$R"/nvidia-smi.csv "$R"/table.md "$R"/xdist.jsonl "$OUTDIR"/
cat "$R/table.md"
