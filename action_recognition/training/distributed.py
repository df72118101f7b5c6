"""Processes, devices and seeds of a training run.

One process (``python``/``action-recognition train``) or several (``torchrun``, ``WORLD_SIZE`` >
1): :func:`setup_distributed` joins the process group (NCCL on CUDA, gloo on CPU) and says where
this process stands (:class:`DistContext`). Everything random in an epoch derives from
``(seed, epoch, rank)`` (:func:`epoch_seed`), so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import random

import numpy as np
import torch
from torch import nn
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    'DistContext', 'resolve_device', 'setup_distributed', 'shutdown_distributed', 'env_rank',
    'seed_everything', 'epoch_seed', 'wrap_model', 'unwrap',
]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: ``rank`` of ``world_size`` and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def local_batch(self, batch_size: int) -> int:
        """This process's share of the global ``batch_size`` (which must split evenly)."""
        if batch_size % self.world_size:
            raise ValueError(f'batch_size {batch_size} is not divisible by the '
                             f'{self.world_size} processes')
        return batch_size // self.world_size


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``'auto'`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if name == 'auto':
        return torch.device(f'cuda:{local_rank}' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'device {name!r} asked for, but CUDA is not available')
        if device.index is None:
            device = torch.device(f'cuda:{local_rank}')
    return device


def env_rank() -> int:
    """This process's rank as the launcher (``torchrun``) set it; 0 without one."""
    return int(os.environ.get('RANK', '0'))


def setup_distributed(device_name: str) -> DistContext:
    """Join the process group when launched by ``torchrun`` with ``WORLD_SIZE`` > 1."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = resolve_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group(backend='nccl' if device.type == 'cuda' else 'gloo')
    return DistContext(rank=env_rank(), world_size=world_size, local_rank=local_rank,
                       device=device)


def shutdown_distributed() -> None:
    """Leave the process group :func:`setup_distributed` joined (nothing without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch on one process: a function of ``(seed, epoch, rank)`` alone."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``model`` in DistributedDataParallel when the run has several processes, else itself."""
    if not ctx.distributed:
        return model
    return DistributedDataParallel(
        model, device_ids=[ctx.device.index] if ctx.device.type == 'cuda' else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (``model`` itself when not wrapped)."""
    return model.module if isinstance(model, DistributedDataParallel) else model
