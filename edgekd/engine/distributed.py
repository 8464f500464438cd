"""Distributed data parallel through `torchrun`: process-group setup and a sampler that shards,
shuffles by (seed, epoch) and never consumes the global RNG (so resume is exact)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group `torchrun` describes in the environment (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics drift apart after each
    rank's last batch), so that evaluation and checkpoints agree across ranks."""
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class EpochSampler(Sampler[int]):
    """Indices of this rank's share: a (seed, epoch)-seeded permutation when shuffling, else in order.

    With shuffling, every rank gets the same number of samples (the permutation is cut to a
    multiple of the world size) so DDP ranks step together; without, shards cover every sample once.
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int = 0, info: DistInfo = DistInfo()) -> None:
        self.size, self.shuffle, self.seed, self.info, self.epoch = size, shuffle, seed, info, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))[self.info.rank :: self.info.world_size]
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        usable = self.size - self.size % self.info.world_size
        return order[:usable][self.info.rank :: self.info.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        if self.shuffle:
            return self.size // self.info.world_size
        return len(range(self.info.rank, self.size, self.info.world_size))
