"""Clips prepared as a model's spec says: ``uint8`` ``[N, T, 3, h, w]``, ready for a model.

:func:`prepare_clip` picks a clip's frames from a video ``[F, H, W, 3]``, resizes and
centre-crops them (:func:`~action_recognition.data.preprocess.prepare_frame`) and puts channels
first; :func:`synthetic_clips` makes a batch of the synthetic benchmark's clips prepared that
way, with their labels when the spec's labels are the benchmark's classes. The export's checks,
its calibration and the benchmarks use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from action_recognition.data.preprocess import prepare_frame
from action_recognition.data.synth_clips import CLASSES
from action_recognition.data.synth_clips import generate_clips
from action_recognition.spec import ModelSpec

__all__ = ['prepare_clip', 'synthetic_clips']


def prepare_clip(video: np.ndarray, indices: Sequence[int] | np.ndarray,
                 spec: ModelSpec) -> np.ndarray:
    """Frames ``indices`` of a ``uint8`` RGB video ``[F, H, W, 3]``, each resized and
    centre-cropped as ``spec`` says: ``uint8`` ``[T, 3, h, w]`` (``T = len(indices)``)."""
    frames = np.stack([prepare_frame(video[int(i)], spec) for i in indices])
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))


def synthetic_clips(spec: ModelSpec, num_clips: int, *,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """``uint8`` clips ``[N, T, 3, h, w]`` of the synthetic benchmark prepared for ``spec``.

    Clip ``i`` is :func:`~action_recognition.data.synth_clips.generate_clips`' clip ``i`` of
    ``seed`` (``spec.clip_span`` frames of side ``spec.resize_short``), sampled densely at
    ``spec.frame_stride``. Labels (``int64 [N]``, indices into ``spec.labels``) are returned
    when the spec's labels are the synthetic benchmark's classes, else ``None``.
    """
    raw, raw_labels = generate_clips(num_clips, seed=seed, frames=spec.clip_span,
                                     size=spec.resize_short)
    picks = spec.frame_stride * np.arange(spec.num_frames)
    clips = np.stack([prepare_clip(clip, picks, spec) for clip in raw])
    labels = None
    if spec.labels and set(spec.labels) == set(CLASSES):
        index = {label: i for i, label in enumerate(spec.labels)}
        labels = np.array([index[CLASSES[k]] for k in raw_labels], dtype=np.int64)
    return np.ascontiguousarray(clips), labels
