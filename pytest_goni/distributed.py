"""Data-parallel training: one training run over several processes, through torch.distributed.

Two ways in, one loop (:func:`pytest_goni.training.run_loop` under DistributedDataParallel):

- ``train(..., gpus=N)`` (the ``train_lm`` kind's ``gpus: N``) spawns N processes with
  ``torch.multiprocessing`` in the same environment, one per GPU (NCCL), or N gloo processes on the
  CPU; rank 0 sends the trained weights back and the caller's model is updated in place;
- under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the loop joins torchrun's group, one
  process per GPU, on one node or many (torchrun's rendezvous does the rest).

Every rank reads the same global batch ``batch_fn(step)`` and trains on its rows of it, so the
global batch and the data order are the single-process run's.

Devices. A pytest-xdist worker ``gw<i>`` normally owns GPU ``i % count``; a measurement asking for
``gpus: N`` makes worker ``i`` own GPUs ``i*N .. i*N+N-1`` (mod the count): run ``-n count/N``
workers so that no two workers share a GPU. Asking for more GPUs than are visible is an error.

NVLink multicast is kept off for every GPU run (:data:`NVLS_OFF`): it is set in the parent's
environment before the ranks start, so they inherit it.
"""

from __future__ import annotations

import io
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Environment that keeps NCCL, PyTorch's symmetric memory and NVSHMEM off NVLink multicast.
NVLS_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def launched_by_torchrun() -> bool:
    """True inside a torchrun (or torch.distributed.launch) process of a group larger than one."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def worker_index() -> int:
    """This pytest-xdist worker's number (0 outside xdist)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def rank_devices(gpus: int, device: torch.device) -> list[torch.device]:
    """The devices of ``gpus`` ranks for a run asked on ``device``: a block of GPUs owned by this
    xdist worker on CUDA, the CPU ``gpus`` times otherwise."""
    if device.type != "cuda":
        return [torch.device("cpu")] * gpus
    count = torch.cuda.device_count()
    if gpus > count:
        raise ValueError(f"gpus: {gpus} asked, but {count} CUDA device(s) are visible")
    first = worker_index() * gpus
    return [torch.device("cuda", (first + k) % count) for k in range(gpus)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _init_group(rank: int, world: int, device: torch.device) -> None:
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world)


def _rank_main(rank: int, world: int, devices: list[torch.device], blob: bytes, batch_fn: Callable,
               steps: int, cfg: Any, kw: dict[str, Any], out: str, run_loop: Callable[..., Any]) -> None:
    """One spawned rank: join the group, train, rank 0 saves the result and the weights."""
    import torch.distributed as dist

    model = torch.load(io.BytesIO(blob), weights_only=False)  # this rank's own copy of the weights
    device = devices[rank]
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    _init_group(rank, world, device)
    try:
        model.to(device)
        res = run_loop(model, batch_fn, steps, cfg, device=device, rank=rank, world=world, **kw)
        res.devices = [str(d) for d in devices]
        if rank == 0:
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            torch.save({"result": res, "state": state}, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def train_spawned(model: nn.Module, batch_fn: Callable, steps: int, cfg: Any, *, device: torch.device,
                  gpus: int, run_loop: Callable[..., Any], check: Callable[[], None] | None = None,
                  **kw: Any) -> Any:
    """Train ``model`` in place over ``gpus`` spawned ranks; returns rank 0's TrainResult.
    ``run_loop`` is :func:`pytest_goni.training.run_loop` (passed in: training imports this module).

    ``model``, ``batch_fn``, ``cfg`` and ``kw['evaluate']`` travel to the ranks by pickling
    (a WindowBatches and a HeldOut do; a closure does not). ``check`` runs here, in the parent,
    while the ranks train; if it raises, the ranks are stopped.
    """
    import torch.multiprocessing as mp

    rows = batch_fn(0)[0].shape[0]
    if rows % gpus:
        raise ValueError(f"a global batch of {rows} rows does not split over gpus: {gpus}")
    devices = rank_devices(gpus, device)
    if device.type == "cuda":
        os.environ.update(NVLS_OFF)  # stays set: every later GPU run of this process inherits it
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    home = next(model.parameters()).device
    buf = io.BytesIO()  # bytes, not the module: multiprocessing would share its tensors between ranks
    torch.save(model.to("cpu"), buf)
    with tempfile.TemporaryDirectory(prefix="goni-ddp-") as tmp:
        out = str(Path(tmp) / "rank0.pt")
        try:
            ctx = mp.start_processes(_rank_main, args=(gpus, devices, buf.getvalue(), batch_fn, steps, cfg, kw, out,
                                                           run_loop),
                                     nprocs=gpus, join=False, start_method="spawn")
            try:
                while not ctx.join(timeout=0.5):
                    if check is not None:
                        check()
            except BaseException:
                for p in ctx.processes:
                    if p.is_alive():
                        p.terminate()
                raise
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        blob = torch.load(out, weights_only=False)
    model.load_state_dict(blob["state"])
    model.to(home)
    return blob["result"]


def train_in_group(model: nn.Module, batch_fn: Callable, steps: int, cfg: Any, *, run_loop: Callable[..., Any],
                   check: Callable[[], None] | None = None, **kw: Any) -> Any:
    """Train as one rank of a torchrun launch (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_* from torchrun)."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        for k, v in NVLS_OFF.items():
            os.environ[k] = v
    if not dist.is_initialized():
        _init_group(rank, world, device)
    model.to(device)
    res = run_loop(model, batch_fn, steps, cfg, device=device, rank=rank, world=world, check=check, **kw)
    res.devices = [f"{world} ranks: {device} is rank {rank}"]
    return res
