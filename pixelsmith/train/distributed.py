"""Multi-process data parallelism under torchrun: gloo on CPU, nccl on CUDA.

Gradients are averaged by hand, one flattened all-reduce per network and step, instead of
wrapping networks in DistributedDataParallel: GAN steps alternate networks and take gradients
of gradients (WGAN-GP, R1), which DDP's hooks handle poorly, and the explicit form makes the
equality with a single-process run on the same global batch easy to see and to test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sync_grads(self, module: nn.Module) -> None:
        """Average the gradients of `module` over all processes."""
        if self.world == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def any(self, flag: bool) -> bool:
        """True on every process if `flag` is true on any."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's value of a picklable object, on every process."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: torch.device) -> Dist:
    """Join the torchrun job described by the environment, or return a single-process Dist."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if device.type == "cuda" else "gloo"
    # torch._dynamo imported after init_process_group (the first optimizer imports it) keeps
    # the group alive past destroy_process_group; its gloo threads then race interpreter
    # teardown at exit and now and then abort a finished worker with SIGABRT.
    import torch._dynamo  # noqa: F401

    if not dist.is_initialized():
        # The other processes wait in a collective while the main one evaluates or writes a
        # checkpoint; the default 30 minutes is shorter than a 10k-sample Inception FID.
        dist.init_process_group(backend=backend, timeout=timedelta(hours=2))
    return Dist(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
    )
