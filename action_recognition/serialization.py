"""Reading torch files safely: ``torch.load(weights_only=True)`` with clear errors, never more.

Model files are data people copy around, so reading one must never run code from it.
:func:`safe_load` reads with ``weights_only=True`` and turns the loader's refusals into an
:class:`UnsafeCheckpointError` naming the file and the reason; :func:`plain_data` turns what a
checkpoint is made of into tensors and plain data before it is written, so that it loads that way.
This is the bottom of the package (below the models, which read pretrained weights with it).
"""

from __future__ import annotations

from collections import OrderedDict
import os
from pathlib import Path
import pickle
import pickletools
import re
from typing import Any
import warnings
import zipfile

import numpy as np
import torch

__all__ = ['CheckpointError', 'UnsafeCheckpointError', 'safe_load', 'plain_data']

_PICKLE_OPCODES = {ord(op.code): op.name for op in pickletools.opcodes}
_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device)
_PLAIN_KEYS = (type(None), bool, int, float, str, bytes)


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not an action_recognition checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """The safe loader refused a file: it holds pickled Python objects, not only tensors and
    plain data. Nothing in it was run."""


def _is_pickle(path: Path) -> bool:
    """A PyTorch zip archive (its ``data.pkl``) or a pickle of protocol 2 or later."""
    try:
        if zipfile.is_zipfile(path):
            return True
        with path.open('rb') as stream:
            return stream.read(1) == b'\x80'  # PROTO
    except OSError:
        return False


def _refusal_reason(error: BaseException, path: Path) -> str | None:
    """Why ``torch.load(weights_only=True)`` refused a file; ``None`` if it did not refuse it
    (the file is corrupt or not a PyTorch file)."""
    text = str(error)
    if 'weights only load failed' not in text.lower() and 'WeightsUnpickler' not in text:
        return None
    found = re.search(r'GLOBAL ([\w.]+)', text)
    if found:
        name = found.group(1)
        hint = ''
        if name.startswith('numpy'):
            hint = (': NumPy data, as in the RNG state that training checkpoints of earlier '
                    'versions held')
        return f'it holds pickled Python objects (GLOBAL {name}{hint})'
    found = re.search(r'[Uu]nsupported operand (\d+)', text)
    if found:
        opcode = _PICKLE_OPCODES.get(int(found.group(1)))
        if opcode is None or not _is_pickle(path):
            return None  # bytes that are no pickle: a corrupt file
        return (f'it holds pickle instructions the safe loader does not accept ({opcode}), as '
                'a whole pickled Python object does')
    return f'it holds data the safe loader does not accept ({_detail(error)})'


def _detail(error: BaseException) -> str:
    """The gist of a loading error, without torch's advice to load with weights_only=False."""
    text = str(error)
    if 'weights only load failed' in text.lower() or 'WeightsUnpickler' in text:
        found = re.search(r'WeightsUnpickler error:\s*(.+?)(?:\n\n|$)', text, re.DOTALL)
        text = found.group(1) if found else text.split('weights_only', 1)[-1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]


def safe_load(path: str | os.PathLike[str], map_location: str | torch.device = 'cpu', *,
              what: str = 'checkpoint') -> Any:
    """``torch.load(path, weights_only=True)`` with clear errors; never an unsafe fallback.

    Raises :class:`UnsafeCheckpointError` when the safe loader refuses the file (it would have to
    run code to rebuild Python objects) and :class:`CheckpointError` when the file is corrupt or
    not a PyTorch file. ``what`` names the file in the messages (``'checkpoint'``,
    ``'pretrained weights'``).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols before refusing a whole-file pickle itself.
            warnings.filterwarnings('ignore', message='.*pickle protocol', category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            OSError, AttributeError, TypeError, KeyError, IndexError) as error:
        reason = _refusal_reason(error, path)
        if reason is not None:
            raise UnsafeCheckpointError(
                f'{what} {path} was refused by the safe loader: {reason}; a checkpoint holds '
                'only tensors and plain data. It was not loaded; nothing in it was run') from None
        raise CheckpointError(
            f'{what} {path} is corrupt or not a PyTorch file ({type(error).__name__}: '
            f'{_detail(error)})') from None


def plain_data(value: Any, where: str = 'checkpoint') -> Any:
    """``value`` with NumPy scalars and arrays turned into Python numbers and lists.

    Everything else must be a tensor or plain data (``dict``/``OrderedDict`` with plain keys,
    ``list``, ``tuple``, ``set``, ``str``, ``bytes``, numbers, ``None``, ``torch.dtype``,
    ``torch.device``): what ``torch.load(weights_only=True)`` reads. Anything else is a
    ``ValueError`` naming where it is. Containers that need no change are returned as they are
    (a state dict keeps its ``_metadata``).
    """
    if isinstance(value, torch.Tensor) or type(value) in _PLAIN_SCALARS:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if type(value) in (dict, OrderedDict):
        changed = False
        items = []
        for key, item in value.items():
            plain_key = plain_data(key, f'{where} key') if isinstance(key, np.generic) else key
            if type(plain_key) not in _PLAIN_KEYS and not (
                    type(plain_key) is tuple and all(type(k) in _PLAIN_KEYS for k in plain_key)):
                raise ValueError(f'{where} has a key of type {type(key).__name__} ({key!r}); a '
                                 'checkpoint holds only tensors and plain data')
            plain = plain_data(item, f'{where}[{key!r}]')
            changed = changed or plain is not item or plain_key is not key
            items.append((plain_key, plain))
        if not changed:
            return value
        result = type(value)(items)
        metadata = getattr(value, '_metadata', None)
        if metadata is not None:
            result._metadata = metadata
        return result
    if type(value) in (list, tuple, set) or isinstance(value, torch.Size):
        converted = [plain_data(item, f'{where}[{i}]') for i, item in enumerate(value)]
        if all(a is b for a, b in zip(converted, value)):
            return value
        return type(value)(converted) if type(value) is not torch.Size else tuple(converted)
    raise ValueError(f'{where} is a {type(value).__module__}.{type(value).__qualname__}; a '
                     'checkpoint holds only tensors and plain data (it must load with '
                     'torch.load(weights_only=True))')
