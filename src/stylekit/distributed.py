"""torch.distributed, as launched by ``torchrun``: setup and the few collectives we use.

Everything here is a no-op in a plain single process, so trainers and the
batch stylizer call it unconditionally. ``torchrun`` sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; we pick ``nccl`` on GPUs and ``gloo``
on CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import StylekitError


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, items: list) -> list:
        """This rank's share of ``items``: every ``world_size``-th item from ``rank``.
        Together the ranks cover every item exactly once."""
        return items[self.rank :: self.world_size]

    def slice(self, count: int) -> slice:
        """This rank's contiguous part of a global batch of ``count`` items."""
        if count % self.world_size:
            raise StylekitError(f"the batch size {count} must be divisible by the number of processes {self.world_size}")
        per = count // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device: torch.device) -> Context:
    """Join the process group torchrun prepared (once); a single process gets Context()."""
    if not launched_by_torchrun():
        return Context()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Context(rank=rank, world_size=world, local_rank=local_rank)


def device_for(device: torch.device, ctx: Context) -> torch.device:
    """Each process on a multi-GPU machine takes the GPU of its local rank."""
    if device.type == "cuda" and ctx.distributed:
        return torch.device("cuda", ctx.local_rank)
    return device


def mean_over_ranks(values: dict[str, float], ctx: Context, device: torch.device) -> dict[str, float]:
    if not ctx.distributed or not values:
        return values
    keys = list(values)  # the same insertion order on every rank; the caller's order is kept
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= ctx.world_size
    return dict(zip(keys, t.tolist()))


def any_rank(flag: bool, ctx: Context, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (e.g. a stop request)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
