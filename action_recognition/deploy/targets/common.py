"""What every deployment target shares: the spec written beside a model file."""

from __future__ import annotations

import os
from pathlib import Path

from action_recognition.files import atomic_write_bytes
from action_recognition.spec import ModelSpec

__all__ = ['spec_path_beside', 'write_spec_beside']


def spec_path_beside(path: str | os.PathLike[str]) -> Path:
    """``model.tflite`` -> ``model.spec.json``: where a model file's spec lies beside it."""
    path = Path(path)
    return path.with_name(path.stem + '.spec.json')


def write_spec_beside(path: str | os.PathLike[str], spec: ModelSpec, *,
                      force: bool = False) -> Path:
    """Write ``spec`` (labels, sampling, preprocessing) as JSON beside the model file."""
    target = spec_path_beside(path)
    atomic_write_bytes(target, (spec.to_json() + '\n').encode('utf-8'), force=force)
    return target
