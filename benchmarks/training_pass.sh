#!/usr/bin/env bash
# One lent 2-GPU pass for issue 13's training items, inside one device call (about 5 minutes):
#   source benchmarks/device_env.sh && bash benchmarks/training_pass.sh
# GPU 0 runs the eager sweep and GPU 1 the compiled one, side by side; then the 1-GPU vs 2-GPU DDP
# check (spawned ranks), the same through torchrun (the multi-node launcher, here on one node); then
# the GPU loss-kernel tests. Everything is packed into $OUT/training.tar.gz (the device returns at
# most 8 files); the table is printed last.
set -u
source "${BASH_SOURCE%/*}/device_out.sh" training; R=$W
T_SWEEP=${T_SWEEP:-150}; T_DDP=${T_DDP:-60}; T_RUN=${T_RUN:-45}; T_TEST=${T_TEST:-25}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv; nvidia-smi topo -m
  python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
  echo "commit ${GONI_GIT_COMMIT:-unknown}"; } > "$R/env.txt" 2>&1
BACKENDS=${BACKENDS:-gpt2 gla retnet gated-deltanet deltanet rwkv6 rwkv7 mamba2 groundthink lstm gru}
bench() { timeout -s INT -k 10 "$1" python3 benchmarks/training.py "${@:2}"; }
bench "$T_SWEEP" --device cuda:0 --modes eager --backends $BACKENDS \
    --points 8M:1024 8M:4096 125M:1024 30M:1024 30M:4096 --warmup 2 --steps 8 --budget-s $((T_SWEEP - 40)) \
    --out "$R/training-eager.jsonl" > "$R/eager.log" 2>&1 &
bench "$T_SWEEP" --device cuda:1 --modes compiled --backends ${COMPILED:-gpt2 gla gated-deltanet} \
    --points 125M:1024 8M:1024 8M:4096 --warmup 3 --steps 8 --budget-s $((T_SWEEP - 60)) \
    --out "$R/training-compiled.jsonl" > "$R/compiled.log" 2>&1 &
wait
{ echo "== ddp"; bench "$T_DDP" --ddp-check --device cuda:0 --backends gpt2 --sizes 125M --seqs 1024 --batch 32 \
      --warmup 5 --steps 20 --out "$R/ddp.jsonl"
  echo "== torchrun"; timeout -s INT -k 10 "$T_RUN" python3 -m torch.distributed.run --standalone --nproc-per-node 2 \
      benchmarks/training.py --backends gpt2 --points 8M:1024 --modes eager --warmup 3 --steps 10 --out "$R/ddp.jsonl"
  echo "== gpu tests"; timeout -s INT "$T_TEST" python3 -m pytest -p no:cacheprovider -q tests/training/test_losses.py \
      -k "triton or fused"
  echo "== table"; python3 benchmarks/training.py --render "$R"/training-*.jsonl "$R/ddp.jsonl"; } > "$R/other.log" 2>&1
pack
tail -n 60 "$R/other.log"
