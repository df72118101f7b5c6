"""Training checkpoints: atomic writes, checked reads, and models rebuilt from their spec.

A checkpoint is a ``torch.save`` dictionary::

    {'spec': ModelSpec.to_dict(),        # model name + options, labels, sampling, preprocessing
     'model_state': state_dict,           # without any DistributedDataParallel 'module.' prefix
     'optimizer': ..., 'scheduler': ..., 'scaler': ...,   # None where not used
     'epoch': epochs completed, 'step': optimiser steps completed,
     'config': the training config (plain data), 'metrics': {...}, 'rng_state': {...}}

It is written to a temporary file in the same directory and moved into place with
:func:`os.replace`, so a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
import pickle
import tempfile
from typing import Any
import zipfile

import torch
from torch import nn

from action_recognition.spec import ModelSpec

__all__ = [
    'CheckpointError', 'REQUIRED_KEYS', 'save_checkpoint', 'load_checkpoint',
    'spec_from_checkpoint', 'load_model_from_checkpoint', 'strip_module_prefix',
    'TRAINING_STATE_KEYS', 'strip_training_state', 'write_model_file',
]

REQUIRED_KEYS = ('spec', 'model_state')
TRAINING_STATE_KEYS = ('optimizer', 'scheduler', 'scaler', 'rng_state')


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not an action_recognition checkpoint."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f'a checkpoint needs the keys {list(REQUIRED_KEYS)}; missing {missing}')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        os.fchmod(handle, 0o644)  # mkstemp makes 0600; checkpoints are ordinary files
        with os.fdopen(handle, 'wb') as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; ``CheckpointError`` if it is not one.

    Checkpoints hold optimiser state and the training config as plain Python data, so they are
    read with ``weights_only=False``: load only checkpoints you trust.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f'checkpoint {path} does not exist')
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} is not a file')
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            OSError) as error:
        raise CheckpointError(
            f'checkpoint {path} is corrupt or not a PyTorch file ({type(error).__name__}: '
            f'{error})') from error
    if not isinstance(state, dict):
        raise CheckpointError(
            f'checkpoint {path} holds a {type(state).__name__}, expected a dictionary with the '
            f'keys {list(REQUIRED_KEYS)}')
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f'checkpoint {path} is not an action_recognition checkpoint: missing {missing} '
            f'(has {sorted(state)[:10]})')
    return state


def spec_from_checkpoint(state: dict[str, Any], path: str | Path = '<checkpoint>') -> ModelSpec:
    """The :class:`ModelSpec` stored in a loaded checkpoint."""
    try:
        return ModelSpec.from_dict(state['spec'])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f'checkpoint {path} has an invalid model spec: {error}') from error


def strip_module_prefix(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Remove the ``module.`` prefix DistributedDataParallel adds to every key."""
    if state_dict and all(key.startswith('module.') for key in state_dict):
        return {key[len('module.'):]: value for key, value in state_dict.items()}
    return state_dict


def strip_training_state(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a checkpoint without what only resuming needs (optimiser, scheduler, scaler,
    RNG state): the deployable model file, about a third of the size with Adam."""
    slim = {k: v for k, v in state.items() if k not in TRAINING_STATE_KEYS}
    slim['model_state'] = strip_module_prefix(slim['model_state'])
    return slim


def write_model_file(checkpoint: str | Path, path: str | Path) -> Path:
    """Write the deployable model file of a training checkpoint (atomically)."""
    return save_checkpoint(path, strip_training_state(load_checkpoint(checkpoint)))


def load_model_from_checkpoint(
        path: str | Path, map_location: str | torch.device = 'cpu') -> tuple[nn.Module, ModelSpec]:
    """Rebuild the model of a checkpoint from its spec and load its weights.

    Returns ``(model, spec)`` with the model in ``eval()`` mode on ``map_location``. The model
    takes frames ``[B*T, 3, H, W]`` normalised as ``spec`` says and returns ``[B, classes]``.
    """
    from action_recognition.models import create_model

    state = load_checkpoint(path, map_location)
    spec = spec_from_checkpoint(state, path)
    try:
        model = create_model(spec.model, num_classes=spec.num_classes,
                             num_frames=spec.num_frames, **spec.options)
    except KeyError as error:
        raise CheckpointError(f'checkpoint {path}: {error.args[0]}') from error
    try:
        model.load_state_dict(strip_module_prefix(state['model_state']))
    except RuntimeError as error:
        raise CheckpointError(
            f'checkpoint {path}: the weights do not fit model {spec.model!r} with options '
            f'{spec.options}: {error}') from error
    model.to(map_location)
    model.eval()
    return model, spec
