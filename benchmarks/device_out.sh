# Sourced by the lent-GPU scripts: the device returns at most 8 files from $OUT (16 MiB each, two
# folders deep), so a script writes everything into a work folder and packs it into ONE tarball.
#   source "${BASH_SOURCE%/*}/device_out.sh" NAME   # W=<work>/NAME (fresh), pack again on any exit
#   record_env                                       # $W/nvidia-smi.csv and $W/versions.txt: the machine and its stack
#   ... write under "$W" ...
#   stage NAME LIMIT CMD...                          # CMD under a time limit, log $W/NAME.log, rc and time in $W/rc.txt
#   pack                                             # -> $OUT/NAME.tar.gz; then print the short table last
# GONI_WORK moves the work folder (default /tmp/goni-work); OUT defaults to ./out off the device.
OUT=${OUT:-$PWD/out}
GONI_PACK_NAME=$1
W=${GONI_WORK:-/tmp/goni-work}/$GONI_PACK_NAME
rm -rf "$W"; mkdir -p "$W" "$OUT"
GONI_PACKED=
pack() {  # once: the work folder as $OUT/NAME.tar.gz (a stopped or failed script still packs on exit)
  [ -n "$GONI_PACKED" ] && return 0
  GONI_PACKED=1
  local tarball=$OUT/$GONI_PACK_NAME.tar.gz
  tar czf "$tarball" -C "${W%/*}" "$GONI_PACK_NAME"
  local bytes; bytes=$(stat -c %s "$tarball")
  echo "packed $(find "$W" -type f | wc -l) files into $tarball ($bytes bytes)"
  [ "$bytes" -le $((16 * 1024 * 1024)) ] || echo "WARNING: $tarball is over the 16 MiB a device call returns"
}
trap pack EXIT
record_env() {  # which GPU, driver, torch / CUDA / triton produced this run's files
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$W/nvidia-smi.csv" 2>&1
  python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)" \
      > "$W/versions.txt" 2>&1
}
stage() {  # name limit command...: run with a time limit (SIGINT first), log under $W, record rc and wall time
  local name=$1 limit=$2 t0=$SECONDS; shift 2
  timeout -s INT -k 10 "$limit" "$@" > "$W/$name.log" 2>&1
  echo "$name rc=$? limit=${limit}s took=$((SECONDS - t0))s" >> "$W/rc.txt"
}
