"""Training checkpoints: atomic writes, safe checked reads, and models rebuilt from their spec.

A checkpoint is a ``torch.save`` dictionary::
    {'spec': ModelSpec.to_dict(),        # model name + options, labels, sampling, preprocessing
     'model_state': state_dict,           # without any DistributedDataParallel 'module.' prefix
     'optimizer': ..., 'scheduler': ..., 'scaler': ...,   # None where not used
     'epoch': epochs completed, 'step': optimiser steps completed,
     'config': the training config (plain data), 'metrics': {...}, 'rng_state': {...}}

It holds tensors and plain data only (``dict``, ``list``, ``tuple``, ``str``, numbers, ``None``;
:func:`save_checkpoint` turns NumPy values into plain ones and refuses anything else), so it is
read with ``torch.load(weights_only=True)``: reading a checkpoint never runs code from it. A file
that holds pickled Python objects (a class, a function such as ``os.system``) is refused by the
safe loader with :class:`UnsafeCheckpointError`, never loaded any other way.

It is written through a unique temporary file in the same directory
(``.<name>.<random>.tmp``, :func:`action_recognition.files.atomic_path`), flushed to disk and
moved into place in one step, so a run killed while saving leaves the previous checkpoint intact
(and a temporary that :func:`action_recognition.files.remove_stale_temporaries` removes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from action_recognition.files import atomic_path
from action_recognition.io.specs import checkpoint_spec
from action_recognition.models import create_model
from action_recognition.serialization import CheckpointError
from action_recognition.serialization import plain_data
from action_recognition.serialization import safe_load
from action_recognition.spec import ModelSpec

__all__ = [
    'REQUIRED_KEYS', 'save_checkpoint', 'load_checkpoint', 'spec_from_checkpoint',
    'load_model_from_checkpoint', 'strip_module_prefix', 'TRAINING_STATE_KEYS',
    'strip_training_state', 'write_model_file',
]

REQUIRED_KEYS = ('spec', 'model_state')
TRAINING_STATE_KEYS = ('optimizer', 'scheduler', 'scaler', 'rng_state')

def save_checkpoint(path: str | Path, state: dict[str, Any], *, force: bool = True) -> Path:
    """Write ``state`` to ``path`` atomically (unique temporary, fsync, one-step publication).

    ``state`` must hold tensors and plain data only (:func:`plain_data`; NumPy values are
    converted). ``force=False`` refuses to replace an existing ``path``
    (:class:`action_recognition.files.OutputExistsError`).
    """
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f'a checkpoint needs the keys {list(REQUIRED_KEYS)}; missing {missing}')
    state = plain_data(state)
    path = Path(path)
    with atomic_path(path, force=force, keep_suffix=False) as temporary, \
            temporary.open('wb') as stream:
        torch.save(state, stream)
        stream.flush()
        os.fsync(stream.fileno())
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; ``CheckpointError`` if it is not one.

    Read with ``torch.load(weights_only=True)``: a file holding anything but tensors and plain
    data is refused (:class:`UnsafeCheckpointError`) and nothing in it runs.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f'checkpoint {path} does not exist')
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} is not a file')
    state = safe_load(path, map_location, what='checkpoint')
    if not isinstance(state, dict):
        raise CheckpointError(
            f'checkpoint {path} holds a {type(state).__name__}, expected a dictionary with the '
            f'keys {list(REQUIRED_KEYS)}')
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f'checkpoint {path} is not an action_recognition checkpoint: missing {missing} '
            f'(has {sorted(map(str, state))[:10]})')
    return state


def spec_from_checkpoint(state: dict[str, Any], path: str | Path = '<checkpoint>') -> ModelSpec:
    """The :class:`ModelSpec` stored in a loaded checkpoint (:func:`~action_recognition.io.specs.
    checkpoint_spec`); :class:`CheckpointError` when it is invalid."""
    try:
        return checkpoint_spec(state, path)
    except ValueError as error:
        raise CheckpointError(str(error)) from error


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

    state = load_checkpoint(path, map_location)
    spec = spec_from_checkpoint(state, path)
    weights = state['model_state']
    if not isinstance(weights, dict):
        raise CheckpointError(f'checkpoint {path}: model_state is a {type(weights).__name__}, '
                              'expected a state dict')
    weights = strip_module_prefix(weights)

    def build() -> nn.Module:
        try:
            return create_model(spec.model, num_classes=spec.num_classes,
                                num_frames=spec.num_frames, **spec.options)
        except KeyError as error:
            raise CheckpointError(f'checkpoint {path}: {error.args[0]}') from error
        except (TypeError, ValueError) as error:
            raise CheckpointError(f'checkpoint {path}: model {spec.model!r} cannot be built '
                                  f'with options {spec.options}: {error}') from error

    # The spec's options (widths, depths) decide how much the model allocates: build it on the
    # meta device first (no memory) and compare its tensors with the file's, so that a spec
    # claiming a huge model fails here instead of allocating it.
    with torch.device('meta'):
        skeleton = build()
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
    if expected != stored:
        wrong = sorted(set(expected) ^ set(stored)) or sorted(
            k for k in expected if expected[k] != stored.get(k))
        raise CheckpointError(
            f'checkpoint {path}: the weights do not fit model {spec.model!r} with options '
            f'{spec.options} ({len(wrong)} tensors differ, e.g. {wrong[:3]})')
    del skeleton
    model = build()
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(
            f'checkpoint {path}: the weights do not fit model {spec.model!r} with options '
            f'{spec.options}: {error}') from error
    model.to(map_location)
    model.eval()
    return model, spec
