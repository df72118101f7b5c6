"""PNG plots of a training run: loss/accuracy curves and the confusion matrix (matplotlib Agg)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ['plot_curves', 'plot_confusion_matrix']


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    """Lay out ``fig``, write it to ``path`` (folders made as needed) and close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pyplot() -> Any:
    # matplotlib is heavy: loaded at the first plot, with the Agg backend set before pyplot.
    import matplotlib

    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt  # after the backend is chosen

    return plt


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in history:
        value = row.get(key)
        if value is None or value == '':
            continue
        xs.append(float(row['epoch']))
        ys.append(float(value))
    return xs, ys


def plot_curves(history: Sequence[Mapping[str, Any]], path: str | Path, *,
                title: str = '') -> Path:
    """Loss (left) and top-1 accuracy (right) per epoch, training and validation.

    ``history`` rows hold ``epoch`` and any of ``train_loss``, ``val_loss``, ``train_top1``,
    ``val_top1``, ``val_top5`` (accuracies in percent); missing values are skipped.
    """
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (('train_loss', 'train'), ('val_loss', 'validation')):
        xs, ys = _series(history, key)
        if xs:
            ax_loss.plot(xs, ys, marker='o', markersize=3, label=label)
    for key, label in (('train_top1', 'train top-1'), ('val_top1', 'validation top-1'),
                       ('val_top5', 'validation top-5')):
        xs, ys = _series(history, key)
        if xs:
            ax_acc.plot(xs, ys, marker='o', markersize=3, label=label)
    ax_loss.set_xlabel('epoch')
    ax_loss.set_ylabel('cross-entropy loss')
    ax_loss.grid(alpha=0.3)
    ax_acc.set_xlabel('epoch')
    ax_acc.set_ylabel('accuracy (%)')
    ax_acc.set_ylim(0, 100)
    ax_acc.grid(alpha=0.3)
    for ax in (ax_loss, ax_acc):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: str | Path, *,
                          title: str = '', normalize: bool = True) -> Path:
    """Confusion matrix ``[true, predicted]`` as an image, rows normalised to 1 by default.

    Cells carry their values when there are at most 30 classes; with many classes (Kinetics)
    only the colours are drawn and the tick labels are left out.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    num = matrix.shape[0]
    if matrix.shape != (num, num) or len(labels) != num:
        raise ValueError(f'confusion matrix {matrix.shape} does not fit {len(labels)} labels')
    shown = matrix
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        shown = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    plt = _pyplot()
    side = min(4 + 0.45 * num, 30)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    image = ax.imshow(shown, cmap='Blues', vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if num <= 60:
        ax.set_xticks(range(num), labels=list(labels), rotation=90)
        ax.set_yticks(range(num), labels=list(labels))
    if num <= 30:
        for i in range(num):
            for j in range(num):
                value = shown[i, j]
                if value == 0:
                    continue
                text = f'{value:.2f}' if normalize else f'{int(value)}'
                ax.text(j, i, text, ha='center', va='center', fontsize=7,
                        color='white' if value > 0.5 * (shown.max() or 1) else 'black')
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)
