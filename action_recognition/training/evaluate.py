"""Evaluation: class probabilities, top-1/top-5 and per-class accuracy, reports.

:func:`predict`, :func:`gather` and :func:`compute_metrics` serve both the evaluation at the end
of a training epoch (:mod:`action_recognition.training.train`) and :func:`evaluate_checkpoint`,
what ``action-recognition eval`` runs: the accuracy of a checkpoint on a data set's held-out
split. The model, its labels, clip sampling and preprocessing come from the checkpoint's spec;
the data set from a config file (or, without one, the config stored in the checkpoint) with
``key=value`` overrides (``dataset.num_clips=2``, ``dataset.val_seed=7``, ...). It writes
``eval_metrics.json`` and ``confusion_matrix.png``; :func:`format_metrics` makes the summary
people read.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch import Tensor
import torch.distributed as dist
import torch.nn.functional as F

from action_recognition.data.normalize import Normalize
from action_recognition.files import atomic_write_bytes
from action_recognition.io import checkpoint as ckpt
from action_recognition.spec import ModelSpec
from action_recognition.training.config import apply_overrides
from action_recognition.training.config import config_from_dict
from action_recognition.training.config import config_to_dict
from action_recognition.training.config import read_config_data
from action_recognition.training.config import TrainConfig
from action_recognition.training.data import build_dataset
from action_recognition.training.data import held_out_loader
from action_recognition.training.distributed import resolve_device
from action_recognition.training.runlog import progress
from action_recognition.training.runlog import write_confusion_matrix

__all__ = [
    'predict', 'gather', 'compute_metrics', 'evaluate_model', 'format_metrics', 'EvalResult',
    'evaluate_checkpoint',
]


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


def evaluate_model(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], spec: ModelSpec,
                   *, normalize: Normalize, device: torch.device,
                   amp: bool = False) -> dict[str, Any]:
    """:func:`compute_metrics` of ``model`` on ``batches`` (this process's share of them, with
    the other processes' gathered under ``torch.distributed``)."""
    probs, labels = predict(model, batches, normalize=normalize, device=device,
                            num_frames=spec.num_frames, amp=amp)
    probs, labels = gather(probs, labels)
    return compute_metrics(probs, labels, spec.num_classes)


@dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate_checkpoint` measured and wrote.

    ``metrics``: :func:`compute_metrics` plus ``labels``, ``checkpoint`` and ``dataset`` (the
    data-set config); ``metrics_path``: ``eval_metrics.json``; ``confusion_path``:
    ``confusion_matrix.png``.
    """

    metrics: dict[str, Any]
    spec: ModelSpec
    config: TrainConfig
    metrics_path: Path
    confusion_path: Path


def evaluate_checkpoint(checkpoint: str | Path, *, config_path: str | Path | None = None,
                        overrides: Sequence[str] = (), output_dir: str | Path | None = None,
                        batch_size: int | None = None,
                        device: str | None = None) -> EvalResult:
    """Evaluate ``checkpoint`` on its data set's held-out split and write the reports.

    The checkpoint is read safely (``weights_only``; a
    :class:`~action_recognition.io.checkpoint.CheckpointError` when it is corrupt, unsafe or
    does not fit its spec). The data set comes from ``config_path`` (default: the config
    stored in the checkpoint) with ``overrides`` (``key=value``); its classes must be the
    checkpoint's labels (``ValueError``). ``batch_size`` and ``device`` default to the
    config's. Writes ``eval_metrics.json`` and ``confusion_matrix.png`` (replacing earlier
    ones, each atomically) to ``output_dir``, by default ``<checkpoint folder>/eval``.
    """
    state = ckpt.load_checkpoint(checkpoint, 'cpu')
    data = read_config_data(config_path) if config_path is not None else (
        state.get('config') or {})
    config = config_from_dict(apply_overrides(data, overrides))
    if device is not None:
        config.device = device
    if config.threads:
        torch.set_num_threads(config.threads)
    model, spec = ckpt.load_model_from_checkpoint(checkpoint, 'cpu')
    target = resolve_device(config.device)
    split = build_dataset(config, spec, train=False)
    if tuple(split.classes) != spec.label_names:
        raise ValueError(
            f"the data set's classes {list(split.classes)[:5]}... do not match the "
            f"checkpoint's labels {list(spec.label_names)[:5]}...")
    loader = held_out_loader(split, batch_size or config.batch_size,
                             num_workers=config.dataset.num_workers, device=target)
    metrics = evaluate_model(
        model.to(target), progress(loader, enable=config.progress, desc='eval'), spec,
        normalize=Normalize.from_spec(spec).to(target), device=target, amp=config.amp)
    out_dir = Path(output_dir) if output_dir else Path(checkpoint).parent / 'eval'
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics.update(labels=list(spec.label_names), checkpoint=str(checkpoint),
                   dataset=config_to_dict(config)['dataset'])
    result = EvalResult(metrics=metrics, spec=spec, config=config,
                        metrics_path=out_dir / 'eval_metrics.json',
                        confusion_path=out_dir / 'confusion_matrix.png')
    atomic_write_bytes(result.metrics_path, json.dumps(metrics, indent=1).encode(), force=True)
    write_confusion_matrix(result.confusion_path, metrics, spec.label_names,
                           title=f'{spec.model}: top-1 {metrics["top1"]:.1f}%')
    return result
