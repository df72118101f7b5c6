"""``action-recognition eval``: accuracy of a checkpoint on a data set's held-out split.

Usage::

    action-recognition eval --checkpoint runs/x/best.pt [--config FILE] [key=value ...]

The model, its labels, clip sampling and preprocessing come from the checkpoint's spec; the data
set comes from ``--config`` (or, without it, from the config stored in the checkpoint), with
``key=value`` overrides (``dataset.num_clips=2``, ``dataset.val_seed=7``, ...). Prints top-1,
top-5 and per-class accuracy and writes ``eval_metrics.json`` and ``confusion_matrix.png``.

The functions :func:`predict` and :func:`compute_metrics` are shared with training.
"""

from __future__ import annotations

from collections.abc import Iterable
import logging
from typing import Any

import numpy as np
import torch
from torch import nn
from torch import Tensor
import torch.distributed as dist
import torch.nn.functional as F

from action_recognition.data.preprocess import Normalize

__all__ = ['predict', 'compute_metrics', 'format_metrics',]

LOG = logging.getLogger('action_recognition.eval')


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, normalize: Normalize,
            device: torch.device, num_frames: int, amp: bool = False) -> tuple[Tensor, Tensor]:
    """Class probabilities of every clip in ``batches``, averaged over its views.

    A batch is ``(clips, labels)`` with ``uint8`` clips ``[B, V*T, 3, h, w]`` (``V`` views of
    ``T = num_frames`` frames: clips x crops) and labels ``[B]``. Returns ``(probs [N, C]`` float32
    on the CPU, ``labels [N]`` int64).
    """
    model.eval()
    all_probs, all_labels = [], []
    for clips, labels in batches:
        batch, frames = clips.shape[:2]
        if frames % num_frames:
            raise ValueError(f'a clip of {frames} frames is not a whole number of '
                             f'{num_frames}-frame views')
        views = frames // num_frames
        x = normalize(clips.to(device, non_blocking=True).flatten(0, 1))
        with torch.autocast(device.type, enabled=amp and device.type == 'cuda'):
            logits = model(x)
        probs = logits.float().softmax(dim=1).reshape(batch, views, -1).mean(dim=1)
        all_probs.append(probs.cpu())
        all_labels.append(torch.as_tensor(labels).long().cpu())
    if not all_probs:
        raise ValueError('no clips to evaluate')
    return torch.cat(all_probs), torch.cat(all_labels)


def gather(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Concatenate the predictions of all processes (identity without ``torch.distributed``)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return probs, labels
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (probs, labels))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def compute_metrics(probs: Tensor, labels: Tensor, num_classes: int) -> dict[str, Any]:
    """Top-1/top-5 accuracy (percent), loss, per-class accuracy and the confusion matrix.

    ``probs`` ``[N, C]`` class probabilities, ``labels`` ``[N]``. The confusion matrix is
    ``[true, predicted]`` counts (a nested list); ``top5`` is top-min(5, C).
    """
    if probs.ndim != 2 or probs.shape[1] != num_classes or probs.shape[0] != labels.shape[0]:
        raise ValueError(f'probabilities {tuple(probs.shape)} do not fit labels '
                         f'{tuple(labels.shape)} and {num_classes} classes')
    k = min(5, num_classes)
    topk = probs.topk(k, dim=1).indices
    correct = topk.eq(labels[:, None])
    top1 = correct[:, 0].float().mean().item() * 100
    top5 = correct.any(dim=1).float().mean().item() * 100
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels.numpy(), topk[:, 0].numpy()), 1)
    totals = confusion.sum(axis=1)
    per_class = [float(confusion[i, i] / totals[i] * 100) if totals[i] else None
                 for i in range(num_classes)]
    seen = [value for value in per_class if value is not None]
    return {
        'top1': top1, 'top5': top5, 'loss': loss, 'num_clips': int(labels.shape[0]),
        'mean_class_accuracy': float(np.mean(seen)) if seen else 0.0,
        'per_class_top1': per_class, 'confusion_matrix': confusion.tolist(),
    }


def format_metrics(metrics: dict[str, Any], labels: tuple[str, ...]) -> str:
    """A human-readable summary with per-class accuracy."""
    lines = [f'top-1 {metrics["top1"]:.2f}%  top-5 {metrics["top5"]:.2f}%  '
             f'loss {metrics["loss"]:.4f}  mean class accuracy '
             f'{metrics["mean_class_accuracy"]:.2f}%  ({metrics["num_clips"]} clips)']
    if len(labels) <= 60:
        width = max(len(label) for label in labels)
        for label, value in zip(labels, metrics['per_class_top1']):
            shown = 'n/a' if value is None else f'{value:6.2f}%'
            lines.append(f'  {label:<{width}}  {shown}')
    return '\n'.join(lines)
