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

import argparse
from collections.abc import Iterable
import json
import logging
from pathlib import Path
import sys
from typing import Any

import numpy as np
import torch
from torch import nn
from torch import Tensor
import torch.distributed as dist
import torch.nn.functional as F

from action_recognition.inference.preprocess import Normalize

__all__ = ['predict', 'compute_metrics', 'format_metrics', 'add_arguments', 'run', 'main']

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, help='checkpoint file (.pt) to evaluate')
    parser.add_argument('--config', default=None,
                        help="YAML config for the data set (default: the checkpoint's config)")
    parser.add_argument('--output-dir', default=None,
                        help='where to write eval_metrics.json and confusion_matrix.png '
                             '(default: <checkpoint dir>/eval)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help="clips per batch (default: the config's batch_size)")
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:N (default: config)')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='config overrides, e.g. dataset.num_clips=2')


def run(args: argparse.Namespace) -> int:
    from action_recognition.training import checkpoint as ckpt
    from action_recognition.training import config as cfg
    from action_recognition.training import plots
    from action_recognition.training import train as training

    try:
        state = ckpt.load_checkpoint(args.checkpoint, 'cpu')
        spec = ckpt.spec_from_checkpoint(state, args.checkpoint)
        if args.config is not None:
            data = cfg.apply_overrides(cfg.read_config_data(args.config), args.overrides)
        else:
            data = cfg.apply_overrides(state.get('config') or {}, args.overrides)
        config = cfg.config_from_dict(data)
        if args.device is not None:
            config.device = args.device
        if config.threads:
            torch.set_num_threads(config.threads)
        model, spec = ckpt.load_model_from_checkpoint(args.checkpoint, 'cpu')
        device = training.resolve_device(config.device)
        dataset = training.build_dataset(config, spec, train=False)
        if tuple(dataset.classes) != spec.label_names:
            raise ValueError(
                f"the data set's classes {list(dataset.classes)[:5]}... do not match the "
                f"checkpoint's labels {list(spec.label_names)[:5]}...")
    except (ValueError, FileNotFoundError, ckpt.CheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    loader = torch.utils.data.DataLoader(
        dataset.dataset, batch_size=args.batch_size or config.batch_size, shuffle=False,
        num_workers=config.dataset.num_workers, pin_memory=device.type == 'cuda')
    model.to(device)
    normalize = Normalize.from_spec(spec).to(device)
    batches = training.progress(loader, enable=config.progress, desc='eval')
    probs, labels = predict(model, batches, normalize=normalize, device=device,
                            num_frames=spec.num_frames, amp=config.amp)
    metrics = compute_metrics(probs, labels, spec.num_classes)
    out_dir = Path(args.output_dir) if args.output_dir else Path(args.checkpoint).parent / 'eval'
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics['labels'] = list(spec.label_names)
    metrics['checkpoint'] = str(args.checkpoint)
    metrics['dataset'] = cfg.config_to_dict(config)['dataset']
    (out_dir / 'eval_metrics.json').write_text(json.dumps(metrics, indent=1))
    plots.plot_confusion_matrix(
        np.array(metrics['confusion_matrix']), spec.label_names, out_dir / 'confusion_matrix.png',
        title=f'{spec.model}: top-1 {metrics["top1"]:.1f}%')
    print(format_metrics(metrics, spec.label_names))
    print(f'wrote {out_dir / "eval_metrics.json"} and {out_dir / "confusion_matrix.png"}')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='action-recognition eval', description=__doc__)
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
