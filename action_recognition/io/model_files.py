"""Model files beside checkpoints: the shipped default model, label files, the spec in ONNX.

- :func:`default_model_path`: where the shipped default model is (an ament prefix's
  ``share/action_recognition/models``, the install tree, or a source checkout's ``models/``).
- :func:`load_labels`: a label file for a model that carries none.
- :func:`onnx_spec`: the :class:`~action_recognition.spec.ModelSpec` an exported ONNX file
  carries in its metadata (key ``action_recognition.spec``), bounded and checked when read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import sys
from typing import Any

from action_recognition.spec import ModelSpec
from action_recognition.spec import SPEC_METADATA_KEY

__all__ = ['DEFAULT_MODEL_NAMES', 'PACKAGE', 'default_model_path', 'model_dirs', 'load_labels',
           'onnx_spec', 'MissingSpecError']

DEFAULT_MODEL_NAMES = ('action_recognition_default.onnx', 'action_recognition_default.pt')
PACKAGE = 'action_recognition'


class MissingSpecError(ValueError):
    """An ONNX file without the ``action_recognition.spec`` metadata."""


def model_dirs() -> list[Path]:
    """Where the shipped model may be: ament prefixes' ``share/``, an install tree, the repo."""
    dirs = []
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / 'share' / PACKAGE / 'models')
    package_dir = Path(__file__).resolve().parents[1]
    # <prefix>/lib/pythonX.Y/site-packages/action_recognition -> <prefix>/share/...
    dirs.append(package_dir.parents[2] / 'share' / PACKAGE / 'models')
    dirs.append(Path(sys.prefix) / 'share' / PACKAGE / 'models')
    # A source checkout (editable install): <repo>/models
    dirs.append(package_dir.parent / 'models')
    unique: list[Path] = []
    for path in dirs:
        if path not in unique:
            unique.append(path)
    return unique


def default_model_path() -> Path:
    """The shipped default model (ONNX preferred); ``FileNotFoundError`` naming where it looked.
    """
    searched = model_dirs()
    for directory in searched:
        for name in DEFAULT_MODEL_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    places = ', '.join(str(d) for d in searched)
    raise FileNotFoundError(
        f'the shipped default model ({" or ".join(DEFAULT_MODEL_NAMES)}) was not found in '
        f'{places}; pass --model FILE.onnx|FILE.pt (train one with `action-recognition train` '
        'and export it with `action-recognition export`)')


def load_labels(path: str | os.PathLike[str]) -> list[str]:
    """Labels from a file: a JSON list, or one label per line (blank lines and ``#`` skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'labels file {path} does not exist')
    text = path.read_text(encoding='utf-8')
    if text.lstrip().startswith('['):
        data = json.loads(text)
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise ValueError(f'labels file {path}: expected a JSON list of strings')
        return [str(x) for x in data]
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


def onnx_spec(proto: Any, path: str | os.PathLike[str] = '<model>') -> ModelSpec:
    """The spec in an ``onnx.ModelProto``'s metadata.

    Raises :class:`MissingSpecError` when there is none and ``ValueError`` (naming ``path``)
    when it is invalid or claims sizes above the spec's bounds.
    """
    meta = {p.key: p.value for p in proto.metadata_props}
    if SPEC_METADATA_KEY not in meta:
        raise MissingSpecError(f'{path} has no {SPEC_METADATA_KEY!r} metadata; export it with '
                               '`action-recognition export`')
    try:
        return ModelSpec.from_json(meta[SPEC_METADATA_KEY])
    except ValueError as error:
        raise ValueError(f'{path}: invalid model metadata: {error}') from error
