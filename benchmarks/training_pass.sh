#!/usr/bin/env bash
# One lent-GPU pass for issue 13's training items, inside one device call (about 5 minutes):
#   source benchmarks/device_env.sh && bash benchmarks/training_pass.sh
# Two GPUs: GPU 0 runs the eager sweep and GPU 1 the compiled one, side by side; then the 1-GPU vs 2-GPU
# DDP check (spawned ranks), the same through torchrun (the multi-node launcher, here on one node).
# One GPU: the two sweeps run one after the other on it and the DDP checks are left out (rc.txt says so).
# Then the GPU loss-kernel tests. EAGER_POINTS / COMPILED_POINTS / BACKENDS / COMPILED pick the rows.
# Everything is packed into $OUT/training.tar.gz (the device returns at most 8 files); the table last.
set -u
source "${BASH_SOURCE%/*}/device_out.sh" training; R=$W
T_SWEEP=${T_SWEEP:-150}; T_DDP=${T_DDP:-60}; T_RUN=${T_RUN:-45}; T_TEST=${T_TEST:-25}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
record_env
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
EAGER_POINTS=${EAGER_POINTS:-8M:1024 8M:4096 125M:1024 30M:1024 30M:4096}
COMPILED_POINTS=${COMPILED_POINTS:-125M:1024 8M:1024 8M:4096}
BACKENDS=${BACKENDS:-gpt2 gla retnet gated-deltanet deltanet rwkv6 rwkv7 mamba2 groundthink lstm gru}
bench() { timeout -s INT -k 10 "$1" python3 benchmarks/training.py "${@:2}"; }
SECOND=cuda:1; [ "$NGPU" -ge 2 ] || SECOND=cuda:0
eager() { bench "$T_SWEEP" --device cuda:0 --modes eager --backends $BACKENDS \
    --points $EAGER_POINTS --warmup 2 --steps 8 --budget-s $((T_SWEEP - 40)) \
    --out "$R/training-eager.jsonl" > "$R/eager.log" 2>&1; }
compiled() { bench "$T_SWEEP" --device "$SECOND" --modes compiled --backends ${COMPILED:-gpt2 gla gated-deltanet} \
    --points $COMPILED_POINTS --warmup 3 --steps 8 --budget-s $((T_SWEEP - 60)) \
    --out "$R/training-compiled.jsonl" > "$R/compiled.log" 2>&1; }
if [ "$NGPU" -ge 2 ]; then eager & compiled & wait; else eager; compiled; fi
echo "gpus=$NGPU eager on cuda:0, compiled on $SECOND" > "$R/rc.txt"
DDP=()
if [ "$NGPU" -ge 2 ]; then
  DDP=("$R/ddp.jsonl")
  { echo "== ddp"; bench "$T_DDP" --ddp-check --device cuda:0 --backends gpt2 --sizes 125M --seqs 1024 --batch 32 \
        --warmup 5 --steps 20 --out "$R/ddp.jsonl"
    echo "== torchrun"; timeout -s INT -k 10 "$T_RUN" python3 -m torch.distributed.run --standalone --nproc-per-node 2 \
        benchmarks/training.py --backends gpt2 --points 8M:1024 --modes eager --warmup 3 --steps 10 --out "$R/ddp.jsonl"
  } > "$R/ddp.log" 2>&1
else echo "ddp and torchrun checks left out: one GPU" >> "$R/rc.txt"; fi
{ echo "== gpu tests"; timeout -s INT "$T_TEST" python3 -m pytest -p no:cacheprovider -q tests/training/test_losses.py \
    -k "triton or fused"
  echo "== table"; python3 benchmarks/training.py --render "$R"/training-*.jsonl "${DDP[@]}"; } > "$R/other.log" 2>&1
pack
cat "$R/rc.txt"
tail -n 60 "$R/other.log"
