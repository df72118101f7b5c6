"""Optimisation of a training run: optimiser, learning-rate schedule, mixed precision, clipping.

SGD with momentum or AdamW (biases and normalisation parameters without weight decay), a
per-step schedule (linear warm-up, then cosine or constant: :func:`lr_factor`), a gradient
scaler for mixed precision on CUDA and optional gradient clipping, bundled in
:class:`Optimisation`, whose state is part of every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any

import torch
from torch import nn
from torch import Tensor

from action_recognition.training.config import TrainConfig

__all__ = ['Optimisation', 'build_optimizer', 'lr_factor', 'build_scheduler']


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW; biases and normalisation parameters get no weight decay."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    optim = config.optim
    groups = [{'params': decay, 'weight_decay': optim.weight_decay},
              {'params': no_decay, 'weight_decay': 0.0}]
    if optim.optimizer == 'sgd':
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum,
                               nesterov=optim.nesterov and optim.momentum > 0)
    betas = (float(optim.betas[0]), float(optim.betas[1]))
    return torch.optim.AdamW(groups, lr=optim.lr, betas=betas)


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, warmup_start: float,
              schedule: str, min_factor: float) -> float:
    """Learning rate at optimiser step ``step`` as a fraction of the peak.

    Linear warm-up from ``warmup_start`` to 1 over ``warmup_steps``, then cosine decay to
    ``min_factor`` at ``total_steps`` (or constant 1 for ``schedule='constant'``).
    """
    if step < warmup_steps:
        return warmup_start + (1 - warmup_start) * step / warmup_steps
    if schedule == 'constant':
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-step schedule of :func:`lr_factor` over ``config.epochs`` epochs."""
    optim = config.optim
    total = config.epochs * steps_per_epoch
    warmup = round(optim.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        return lr_factor(step, total_steps=total, warmup_steps=warmup,
                         warmup_start=optim.warmup_start, schedule=optim.scheduler,
                         min_factor=optim.min_lr / optim.lr)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class Optimisation:
    """What one optimiser step needs: optimiser, schedule, gradient scaler and clipping."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp: bool
    clip_grad_norm: float

    @classmethod
    def create(cls, model: nn.Module, config: TrainConfig, steps_per_epoch: int,
               device: torch.device) -> Optimisation:
        """The config's optimiser and schedule; mixed precision only on CUDA."""
        optimizer = build_optimizer(model, config)
        amp = config.amp and device.type == 'cuda'
        return cls(optimizer=optimizer,
                   scheduler=build_scheduler(optimizer, config, steps_per_epoch),
                   scaler=torch.amp.GradScaler('cuda', enabled=amp), amp=amp,
                   clip_grad_norm=config.optim.clip_grad_norm)

    @property
    def lr(self) -> float:
        """The current learning rate (of the first parameter group)."""
        return float(self.optimizer.param_groups[0]['lr'])

    def step(self, loss: Tensor, model: nn.Module) -> None:
        """Back-propagate ``loss``, clip, take an optimiser step and advance the schedule."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), self.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        """``optimizer``, ``scheduler`` and ``scaler`` state (``None`` without mixed precision),
        as a checkpoint holds them."""
        return {'optimizer': self.optimizer.state_dict(),
                'scheduler': self.scheduler.state_dict(),
                'scaler': self.scaler.state_dict() if self.scaler.is_enabled() else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (from a checkpoint)."""
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        if state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
