"""What a training run reports as it goes: progress bars, logs, TensorBoard and plots.

Rank 0 of a run writes, in its ``output_dir``: ``metrics.csv`` (one row per epoch),
``curves.png`` (loss and accuracy per epoch), ``confusion_matrix.png`` of the latest evaluation
and TensorBoard events under ``tb/``; every file through a unique temporary renamed into place
(:mod:`action_recognition.files`). Other ranks write nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
import csv
import logging
from pathlib import Path
from typing import Any
from typing import TypeVar

import numpy as np

from action_recognition.files import atomic_path
from action_recognition.training import plots

__all__ = ['RunLog', 'progress', 'write_confusion_matrix']

LOG = logging.getLogger(__name__)

ItemT = TypeVar('ItemT')


def progress(iterable: Iterable[ItemT], *, enable: bool, desc: str,
             total: int | None = None) -> Iterable[ItemT]:
    """A tqdm progress bar around ``iterable`` when ``enable``, else ``iterable`` itself."""
    if not enable:
        return iterable
    from tqdm import tqdm  # loaded only when a bar is shown

    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, leave=False)


def write_confusion_matrix(path: Path, metrics: dict[str, Any], labels: tuple[str, ...], *,
                           title: str) -> None:
    """``metrics['confusion_matrix']`` as a PNG at ``path`` (replaced atomically)."""
    with atomic_path(path, force=True) as temporary:
        plots.plot_confusion_matrix(np.array(metrics['confusion_matrix']), labels, temporary,
                                    title=title)


class RunLog:
    """Rank-0 outputs: ``metrics.csv``, ``curves.png``, ``confusion_matrix.png``, TensorBoard;
    no-ops on other ranks (``enabled=False``)."""

    FIELDS = ('epoch', 'step', 'lr', 'train_loss', 'train_top1', 'val_loss', 'val_top1',
              'val_top5', 'epoch_seconds')

    def __init__(self, out_dir: Path, *, enabled: bool, tensorboard: bool, purge_step: int,
                 title: str, labels: tuple[str, ...]) -> None:
        self.out_dir = out_dir
        self.enabled = enabled
        self.title = title
        self.labels = labels
        self.writer: Any = None
        if enabled and tensorboard:
            try:
                # TensorBoard is heavy to import: only for a run that writes its events.
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                LOG.warning('tensorboard is not installed; no event files are written')
            else:
                self.writer = SummaryWriter(str(out_dir / 'tb'), purge_step=purge_step or None)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def train_step(self, bar: Iterable[Any], *, loss: float, lr: float, step: int) -> None:
        """The loss and learning rate of optimiser step ``step``: TensorBoard and the bar."""
        self.scalar('train/loss', loss, step)
        self.scalar('train/lr', lr, step)
        if hasattr(bar, 'set_postfix'):
            bar.set_postfix(loss=f'{loss:.3f}', lr=f'{lr:.2e}')

    def end_epoch(self, history: list[dict[str, Any]], metrics: dict[str, Any], *,
                  epochs: int) -> None:
        """The last epoch of ``history``: its scalars, the reports (:meth:`write_reports`) and
        a log line."""
        if not self.enabled:
            return
        row = history[-1]
        for key, value in row.items():
            if key not in ('epoch', 'step'):
                self.scalar(f'epoch/{key}', float(value), row['step'])
        self.write_reports(history, metrics)
        shown = ', '.join(f'{k} {v:.4g}' for k, v in row.items() if k != 'epoch')
        LOG.info('epoch %d/%d: %s', row['epoch'], epochs, shown)

    def write_reports(self, history: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
        """``metrics.csv`` and ``curves.png`` of ``history``, and ``confusion_matrix.png`` of
        ``metrics`` when the last epoch was evaluated."""
        if not self.enabled:
            return
        with atomic_path(self.out_dir / 'metrics.csv', force=True) as temporary, \
                temporary.open('w', newline='') as stream:
            writer = csv.DictWriter(stream, fieldnames=self.FIELDS, extrasaction='ignore')
            writer.writeheader()
            for row in history:
                writer.writerow(row)
        with atomic_path(self.out_dir / 'curves.png', force=True) as temporary:
            plots.plot_curves(history, temporary, title=self.title)
        if self.writer is not None:
            self.writer.flush()
        last = history[-1]
        if 'val_top1' in last and metrics:
            write_confusion_matrix(
                self.out_dir / 'confusion_matrix.png', metrics, self.labels,
                title=f'epoch {int(last["epoch"])}: top-1 {last["val_top1"]:.1f}%')

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
