"""Clips for int8 calibration: from a directory of videos or ``.npy`` clips, or synthetic.

Both give ``uint8`` clips ``[N, T, 3, h, w]`` prepared (sampled, resized, centre-cropped) as the
model's spec says, what the exported graph takes one clip at a time as frames ``[T, 3, h, w]``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from action_recognition.data.clips import prepare_clip
from action_recognition.data.clips import synthetic_clips
from action_recognition.data.sampling import sample_indices
from action_recognition.data.video import read_video
from action_recognition.deploy.onnx_export import ExportError
from action_recognition.spec import ModelSpec

__all__ = ['CLIP_SUFFIXES', 'calibration_clips', 'calibration_clips_from']

LOGGER = logging.getLogger(__name__)

CLIP_SUFFIXES = frozenset({'.avi', '.mp4', '.mkv', '.webm', '.mov', '.npy'})


def calibration_clips(directory: str | os.PathLike[str], spec: ModelSpec,
                      num_clips: int) -> np.ndarray:
    """Up to ``num_clips`` clips ``uint8 [N, T, 3, h, w]`` from videos or ``.npy`` clips.

    Files are found recursively (``.avi``, ``.mp4``, ``.mkv``, ``.webm``, ``.mov`` or ``.npy``
    arrays ``uint8 [T, H, W, 3]``), spread evenly over the sorted list; one centre clip per file
    sampled as the spec says. A file that cannot be read is skipped with a warning.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ExportError(f'calibration directory not found: {root}')
    files = sorted(p for p in root.rglob('*') if p.suffix.lower() in CLIP_SUFFIXES)
    if not files:
        raise ExportError(f'no videos or .npy clips in {root}')
    chosen = [files[int(i)] for i in np.unique(
        np.linspace(0, len(files) - 1, min(num_clips, len(files))).round().astype(int))]
    clips = []
    for file in chosen:
        try:
            video = np.load(file) if file.suffix == '.npy' else read_video(file)
            clips.append(prepare_clip(video, sample_indices(spec, len(video)), spec))
        except Exception as error:
            LOGGER.warning('skipping calibration file %s: %s', file, error)
    if not clips:
        raise ExportError(f'no usable calibration clips in {root}')
    return np.ascontiguousarray(np.stack(clips))


def calibration_clips_from(directory: str | os.PathLike[str] | None, spec: ModelSpec,
                           num_clips: int, *, seed: int = 0) -> np.ndarray:
    """:func:`calibration_clips` of ``directory``, or, without one, ``num_clips`` synthetic
    clips (:func:`~action_recognition.data.clips.synthetic_clips` of ``seed``)."""
    if directory is not None:
        return calibration_clips(directory, spec, num_clips)
    return synthetic_clips(spec, num_clips, seed=seed)[0]
