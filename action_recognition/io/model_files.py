"""Where model files are, and what comes beside them: the shipped default model, label files,
an OpenVINO IR's weights file (the spec inside every model file: :mod:`action_recognition.io.
specs`).

- :func:`default_model_path`: where the shipped default model is (an ament prefix's
  ``share/action_recognition/models``, the install tree, or a source checkout's ``models/``).
- :func:`load_labels`: a label file for a model that carries none.
- :func:`ir_weights_path`: ``model.bin`` beside an IR's ``model.xml``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import sys

__all__ = ['DEFAULT_MODEL_NAMES', 'PACKAGE', 'default_model_path', 'model_dirs', 'load_labels',
           'ir_weights_path']

DEFAULT_MODEL_NAMES = ('action_recognition_default.onnx', 'action_recognition_default.pt')
PACKAGE = 'action_recognition'


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


def ir_weights_path(xml_path: str | os.PathLike[str]) -> Path:
    """The weights file of an OpenVINO IR: ``model.bin`` beside ``model.xml``."""
    return Path(xml_path).with_suffix('.bin')
