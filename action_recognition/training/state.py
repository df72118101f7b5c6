"""The state of a training run on disk: checkpoints, resuming and the run's output folder.

Each epoch writes ``last.pt``, then ``best.pt`` when held-out top-1 improves
(:func:`save_checkpoint`): the model spec, weights, optimiser/scheduler/scaler state, epoch,
step, config, metrics (with the best epoch) and the random state (:func:`rng_state`), as tensors
and plain data (it loads with ``torch.load(weights_only=True)``). :func:`resume_run` continues
from such a checkpoint exactly. Output folders: starting afresh over another run is refused
unless forced (:func:`check_fresh_output`); the temporaries of a killed write are removed and a
``best.pt`` that lags behind the best epoch is restored (:func:`prepare_output_dir`); at the
end, ``metrics.json`` and ``model.pt``, the final weights without the training state
(:func:`write_final_outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import json
import logging
import os
from pathlib import Path
import random
import shutil
from typing import Any

import numpy as np
import torch
from torch import nn

from action_recognition.files import atomic_path
from action_recognition.files import atomic_write_bytes
from action_recognition.files import OutputExistsError
from action_recognition.files import remove_stale_temporaries
from action_recognition.io import checkpoint as ckpt
from action_recognition.io.specs import put_checkpoint_spec
from action_recognition.serialization import CheckpointError
from action_recognition.spec import ModelSpec
from action_recognition.training.config import config_to_dict
from action_recognition.training.config import TrainConfig
from action_recognition.training.optim import Optimisation

__all__ = [
    'RUN_FILES', 'PREVIOUS_RUN_FILES', 'RunProgress', 'rng_state', 'set_rng_state',
    'find_resume', 'check_fresh_output', 'prepare_output_dir', 'resume_run', 'save_checkpoint',
    'write_final_outputs',
]

LOG = logging.getLogger(__name__)

# Every file a run writes in its output_dir (their temporaries are removed at start and resume),
# and those that mark a previous run (refused without --force).
RUN_FILES = ('last.pt', 'best.pt', 'model.pt', 'metrics.json', 'metrics.csv', 'config.json',
             'curves.png', 'confusion_matrix.png')
PREVIOUS_RUN_FILES = ('last.pt', 'best.pt', 'model.pt', 'metrics.json')


# ---------------------------------------------------------------------------------------------
# Random state


def rng_state() -> dict[str, Any]:
    """The random state of Python, NumPy, torch and CUDA as tensors and plain data.

    Python's is ``[version, [625 ints], gauss_next]``, NumPy's (MT19937)
    ``{'kind', 'keys': [624 ints], 'pos', 'has_gauss', 'cached_gaussian'}``, torch's and each
    CUDA device's a ``uint8`` tensor: a checkpoint holding it loads with
    ``torch.load(weights_only=True)``. :func:`set_rng_state` restores it.
    """
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        'python': [int(version), [int(k) for k in internal],
                   None if gauss_next is None else float(gauss_next)],
        'numpy': {'kind': str(kind), 'keys': [int(k) for k in keys], 'pos': int(pos),
                  'has_gauss': int(has_gauss), 'cached_gaussian': float(cached_gaussian)},
        'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state :func:`rng_state` returned (CUDA's only with as many devices)."""
    if 'python' in state:
        version, internal, gauss_next = state['python']
        random.setstate((int(version), tuple(int(k) for k in internal), gauss_next))
    if 'numpy' in state:
        numpy_state = state['numpy']
        np.random.set_state((numpy_state['kind'],
                             np.array(numpy_state['keys'], dtype=np.uint32),
                             int(numpy_state['pos']), int(numpy_state['has_gauss']),
                             float(numpy_state['cached_gaussian'])))
    if 'torch' in state:
        torch.set_rng_state(torch.as_tensor(state['torch'], dtype=torch.uint8).cpu())
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu()
                                      for s in cuda])


# ---------------------------------------------------------------------------------------------
# Progress of a run


@dataclass
class RunProgress:
    """How far a run has come: epochs and optimiser steps completed, the log of every epoch,
    the best held-out top-1 and its epoch, and the latest evaluation's metrics."""

    epoch: int = 0
    step: int = 0
    best_top1: float = -1.0
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    last_metrics: dict[str, Any] = field(default_factory=dict)

    def record(self, row: dict[str, Any]) -> bool:
        """Add the log row of a finished epoch; ``True`` when its held-out top-1 is a new
        best."""
        self.epoch, self.step = int(row['epoch']), int(row['step'])
        self.history.append(row)
        improved = 'val_top1' in row and row['val_top1'] > self.best_top1
        if improved:
            self.best_top1, self.best_epoch = row['val_top1'], self.epoch
        return improved

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> RunProgress:
        metrics = state.get('metrics') or {}
        history = list(metrics.get('history', []))
        recorded = metrics.get('best_epoch')
        return cls(epoch=int(state['epoch']), step=int(state['step']),
                   best_top1=float(metrics.get('best_top1', -1.0)),
                   best_epoch=int(recorded) if recorded is not None else _best_epoch(history),
                   history=history, last_metrics=dict(metrics.get('last') or {}))


def _best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The epoch whose held-out top-1 was the best (the first to reach it), as training
    decides."""
    best, epoch = -1.0, None
    for row in history:
        if 'val_top1' in row and row['val_top1'] > best:
            best, epoch = row['val_top1'], int(row['epoch'])
    return epoch


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(out_dir: Path, *, spec: ModelSpec, model: nn.Module, optim: Optimisation,
                    config: TrainConfig, run: RunProgress, improved: bool) -> None:
    """Write ``last.pt``, then ``best.pt`` when the epoch improved.

    In this order a kill between the two leaves a ``last.pt`` whose recorded ``best_epoch`` is
    its own epoch and a ``best.pt`` one improvement behind, which a resume restores from
    ``last.pt`` (:func:`prepare_output_dir`); the other order would leave a ``best.pt`` from an
    epoch no checkpoint records.
    """
    state = put_checkpoint_spec({
        'model_state': model.state_dict(), **optim.state_dict(),
        'epoch': run.epoch, 'step': run.step, 'config': config_to_dict(config),
        'metrics': {'best_top1': run.best_top1, 'best_epoch': run.best_epoch,
                    'history': run.history, 'last': dict(run.last_metrics)},
        'rng_state': rng_state(),
    }, spec)
    ckpt.save_checkpoint(out_dir / 'last.pt', state)
    if improved:
        ckpt.save_checkpoint(out_dir / 'best.pt', state)


def find_resume(resume: str | None, out_dir: Path) -> Path | None:
    """The checkpoint ``resume`` names (``'auto'``/``''``: ``<out_dir>/last.pt``); ``None``
    starts afresh."""
    if resume is None:
        return None
    path = out_dir / 'last.pt' if resume in ('', 'auto') else Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f'--resume: no checkpoint at {path}')
    return path


def resume_run(path: Path, spec: ModelSpec, model: nn.Module, optim: Optimisation,
               device: torch.device) -> RunProgress:
    """Load the checkpoint at ``path`` into ``model`` and ``optim``, restore the random state,
    and return the run's progress; refused when it holds another model spec."""
    state = ckpt.load_checkpoint(path, device)
    stored = ckpt.spec_from_checkpoint(state, path)
    if stored != spec:
        raise ValueError(f'--resume: {path} was trained with a different model spec '
                         f'({stored}) than this config gives ({spec})')
    model.load_state_dict(ckpt.strip_module_prefix(state['model_state']))
    optim.load_state_dict(state)
    if state.get('rng_state'):
        set_rng_state(state['rng_state'])
    return RunProgress.from_checkpoint(state)


def write_final_outputs(out_dir: Path, run: RunProgress, spec: ModelSpec) -> None:
    """``metrics.json`` (the last evaluation and the best epoch) and ``model.pt``: the final
    weights, without the state only resuming needs (the file to deploy or export)."""
    summary = {k: v for k, v in run.last_metrics.items() if k != 'confusion_matrix'}
    summary.update(best_top1=run.best_top1, best_epoch=run.best_epoch,
                   labels=list(spec.label_names))
    atomic_write_bytes(out_dir / 'metrics.json', json.dumps(summary, indent=1).encode(),
                       force=True)
    ckpt.write_model_file(out_dir / 'last.pt', out_dir / 'model.pt')


# ---------------------------------------------------------------------------------------------
# The output folder


def check_fresh_output(out_dir: Path, *, force: bool) -> list[Path]:
    """The files of a previous run in ``out_dir``; refused (``OutputExistsError``) unless
    ``force``."""
    previous = [out_dir / name for name in PREVIOUS_RUN_FILES if (out_dir / name).exists()]
    if previous and not force:
        names = ', '.join(path.name for path in previous)
        raise OutputExistsError(
            f'{out_dir} holds another run ({names}); pass --force to replace it, --resume to '
            'continue it, or choose another output_dir')
    return previous


def prepare_output_dir(out_dir: Path, config: TrainConfig, *, previous: list[Path],
                       resumed_from: Path | None, run: RunProgress) -> None:
    """Make ``out_dir`` ready for the run (rank 0, once set up): remove the temporaries of a
    killed run and the ``previous`` run's files (``--force``), restore a ``best.pt`` that
    lags behind the checkpoint resumed from, and write ``config.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out_dir)
    if previous:
        for path in previous:
            path.unlink(missing_ok=True)
        LOG.warning('--force: replacing the previous run in %s (removed %s)', out_dir,
                    ', '.join(path.name for path in previous))
    if resumed_from is not None:
        _reconcile_best(out_dir, resumed_from, run)
    atomic_write_bytes(out_dir / 'config.json',
                       json.dumps(config_to_dict(config), indent=1).encode(), force=True)


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Delete the temporaries a killed run left behind (only a run's own names)."""
    removed = [path for name in RUN_FILES
               for path in remove_stale_temporaries(out_dir / name)]
    legacy = out_dir / '.metrics.csv.tmp'  # the fixed name of earlier versions
    if legacy.is_file():
        legacy.unlink()
        removed.append(legacy)
    if removed:
        LOG.info('removed %d temporaries of a killed run: %s', len(removed),
                 ', '.join(path.name for path in removed))


def _reconcile_best(out_dir: Path, resume_path: Path, run: RunProgress) -> None:
    """Make ``best.pt`` hold the best epoch recorded in the checkpoint resumed from.

    ``last.pt`` is written before ``best.pt``, so a run killed between the two leaves a
    ``best.pt`` that lags behind: the best epoch is then the checkpoint's own epoch, and
    ``best.pt`` is restored from it.
    """
    best_epoch = run.best_epoch
    if best_epoch is None:
        return
    best_path = out_dir / 'best.pt'
    held: int | None = None
    if best_path.is_file():
        try:
            held = int(ckpt.load_checkpoint(best_path, 'cpu').get('epoch', -1))
        except CheckpointError as error:
            LOG.warning('%s', error)
    if held == best_epoch:
        return
    if run.epoch == best_epoch:
        with atomic_path(best_path, force=True, keep_suffix=False) as temporary:
            shutil.copyfile(resume_path, temporary)
            with temporary.open('rb') as stream:
                os.fsync(stream.fileno())
        LOG.warning('%s held %s, but the best epoch recorded is epoch %d (the run was killed '
                    'before writing it): restored from %s', best_path,
                    'nothing' if held is None else f'epoch {held}', best_epoch, resume_path)
    else:
        LOG.warning('%s holds %s, but the best epoch recorded in %s is epoch %d, whose weights '
                    'are no longer available; it is replaced when an epoch improves on it',
                    best_path, 'nothing' if held is None else f'epoch {held}', resume_path,
                    best_epoch)
