"""Model files beside checkpoints: the shipped default model, label files, the spec in ONNX.

- :func:`default_model_path`: where the shipped default model is (an ament prefix's
  ``share/action_recognition/models``, the install tree, or a source checkout's ``models/``).
- :func:`load_labels`: a label file for a model that carries none.
- :func:`onnx_spec`: the :class:`~action_recognition.spec.ModelSpec` an exported ONNX file
  carries in its metadata (key ``action_recognition.spec``), bounded and checked when read.
- :func:`ir_spec`, :func:`set_ir_spec`, :func:`ir_weights_path`: the same for an OpenVINO IR
  (``model.xml`` with its weights ``model.bin`` beside it). The spec travels inside the IR, in
  the model's ``rt_info`` under the same key (``<rt_info><action_recognition.spec value=...>``
  in the ``.xml``), so the pair of files is the whole model, as one ONNX file is. An IR that
  OpenVINO's own tools converted from an exported ONNX file (``ovc model.onnx``,
  ``openvino.save_model``) keeps the ONNX metadata under ``rt_info/framework``, and is read
  from there.
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
           'onnx_spec', 'MissingSpecError', 'IR_SPEC_KEYS', 'ir_spec', 'set_ir_spec',
           'ir_weights_path']

DEFAULT_MODEL_NAMES = ('action_recognition_default.onnx', 'action_recognition_default.pt')
PACKAGE = 'action_recognition'

#: Where an OpenVINO IR's ``rt_info`` holds the spec JSON, in the order they are looked up: the
#: package's own key (what :func:`set_ir_spec` writes), then the ONNX metadata that OpenVINO
#: carries over when it converts an exported ONNX file.
IR_SPEC_KEYS: tuple[tuple[str, ...], ...] = ((SPEC_METADATA_KEY,),
                                             ('framework', SPEC_METADATA_KEY))


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


def ir_weights_path(xml_path: str | os.PathLike[str]) -> Path:
    """The weights file of an OpenVINO IR: ``model.bin`` beside ``model.xml``."""
    return Path(xml_path).with_suffix('.bin')


def ir_spec(model: Any, path: str | os.PathLike[str] = '<model>') -> ModelSpec:
    """The spec in an OpenVINO IR's ``rt_info`` (``model``: an ``openvino.Model``).

    Looked up at :data:`IR_SPEC_KEYS`. Raises :class:`MissingSpecError` when there is none and
    ``ValueError`` (naming ``path``) when it is invalid or claims sizes above the spec's bounds.
    """
    for key in IR_SPEC_KEYS:
        if model.has_rt_info(list(key)):
            text = model.get_rt_info(list(key)).astype(str)
            try:
                return ModelSpec.from_json(text)
            except ValueError as error:
                raise ValueError(f'{path}: invalid model metadata in rt_info/'
                                 f'{"/".join(key)}: {error}') from error
    raise MissingSpecError(f'{path} has no {SPEC_METADATA_KEY!r} in its rt_info; write it with '
                           '`action_recognition.io.model_files.set_ir_spec` before saving the '
                           'IR, or convert a file written by `action-recognition export`')


def set_ir_spec(model: Any, spec: ModelSpec) -> None:
    """Store ``spec`` in an ``openvino.Model``'s ``rt_info`` (saved with the IR's ``.xml``)."""
    model.set_rt_info(spec.to_json(), [SPEC_METADATA_KEY])
