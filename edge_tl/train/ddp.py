"""DistributedDataParallel plumbing for ``torchrun --nproc_per_node N edge-tl train ...``.

Under torchrun the environment carries ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; the process group uses gloo on
CPU and NCCL on CUDA. Rank 0 writes every output; the others compute and wait at barriers. Without torchrun
everything here degrades to a world of one and does nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_dist() -> Dist:
    """The rank/world described by torchrun's environment variables (a world of one without them)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Dist()
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(dist: Dist, device: torch.device) -> None:
    """Start the process group (gloo on CPU, NCCL on CUDA) if the job has several processes."""
    import torch.distributed as td

    if not dist.enabled or td.is_initialized():
        return
    if device.type == "cuda":
        td.init_process_group(backend="nccl", rank=dist.rank, world_size=dist.world, device_id=device)
    else:
        td.init_process_group(backend="gloo", rank=dist.rank, world_size=dist.world)


def shutdown() -> None:
    """Destroy the process group if one was started."""
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def barrier(dist: Dist) -> None:
    """Wait for every rank (no-op for a world of one)."""
    if dist.enabled:
        import torch.distributed as td

        td.barrier()


def all_sum(dist: Dist, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over every rank (float64)."""
    if not dist.enabled:
        return list(values)
    import torch
    import torch.distributed as td

    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def broadcast_flag(dist: Dist, flag: bool, device: torch.device) -> bool:
    """Rank 0's boolean, seen by every rank (e.g. the early-stopping decision)."""
    if not dist.enabled:
        return flag
    import torch
    import torch.distributed as td

    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    td.broadcast(t, src=0)
    return bool(t.item())


def wrap(model: torch.nn.Module, dist: Dist, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when the job has several processes, else ``model`` itself."""
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)


def shard(indices: list[int], dist: Dist) -> list[int]:
    """This rank's share of ``indices``, padded by wrap-around so every rank gets the same count."""
    if not dist.enabled or not indices:
        return list(indices)
    per = -(-len(indices) // dist.world)
    padded = (indices * (dist.world + 1))[: per * dist.world]
    return padded[dist.rank::dist.world]


def broadcast_object(dist: Dist, obj: Any) -> Any:
    """Rank 0's picklable ``obj`` (e.g. the run name with its timestamp), seen by every rank."""
    if not dist.enabled:
        return obj
    import torch.distributed as td

    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]
