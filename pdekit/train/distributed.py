"""Data-parallel training under ``torchrun``: process-group set-up, DDP wrapping, reductions.

The same recipe runs in one process or many: with ``WORLD_SIZE > 1`` in the environment (as
``torchrun --nproc_per_node K`` sets it), :func:`setup` joins the process group (NCCL on CUDA,
gloo on the CPU) and the Trainer wraps the model in ``DistributedDataParallel``.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist

__all__ = ["all_sum", "is_distributed", "local_device", "setup", "wrap"]


def is_distributed() -> bool:
    """Whether this process is one of several (``torchrun``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str | torch.device) -> tuple[int, int]:
    """Join the process group when launched by ``torchrun``; return ``(rank, world_size)``."""
    if not is_distributed():
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend)
        # leave the group before the interpreter tears down: a group left to the exit
        # handlers can abort its process ("terminate called without an active exception")
        atexit.register(_leave)
    return dist.get_rank(), dist.get_world_size()


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: str | torch.device) -> torch.device:
    """The device of this process: its local GPU under ``torchrun``, else ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("`device` is cuda but no CUDA device is available (use --device cpu)")
        if is_distributed():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` on ``device``."""
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over the processes (itself when alone)."""
    if dist.is_available() and dist.is_initialized():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor
