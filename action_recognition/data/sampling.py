"""Clip sampling: which frames of a video (or of the stream's ring buffer) make a clip.

One implementation shared by training, evaluation, offline runs and the node, driven by the
model's :class:`~action_recognition.spec.ModelSpec`:

- dense: ``num_frames`` frames ``frame_stride`` apart, covering ``clip_span`` source frames;
  a random start in training, the centre in testing, evenly spaced starts for multi-clip tests.
- segments (TSN): the video is cut into ``num_frames`` equal segments and one frame is taken from
  each: a random offset in training, the segment's centre in testing.

Videos shorter than a clip repeat their last frame (dense) or their frames (segments) rather than
fail, so every clip has exactly ``num_frames`` frames. All functions return int64 numpy arrays of
frame indices in ``[0, num_available)``.
"""

from __future__ import annotations

import numpy as np

from action_recognition.spec import ModelSpec

__all__ = [
    'dense_indices', 'segment_indices', 'clip_starts', 'sample_indices', 'stream_indices',
]


def _check(num_available: int, num_frames: int) -> None:
    if num_available < 1:
        raise ValueError('cannot sample a clip from a video with no frames')
    if num_frames < 1:
        raise ValueError(f'num_frames must be >= 1, got {num_frames}')


def clip_starts(num_available: int, span: int, num_clips: int) -> np.ndarray:
    """Evenly spaced start frames of ``num_clips`` dense clips of ``span`` frames (test time)."""
    last = max(num_available - span, 0)
    if num_clips == 1:
        return np.array([last // 2], dtype=np.int64)
    return np.round(np.linspace(0, last, num_clips)).astype(np.int64)


def dense_indices(num_available: int, num_frames: int, frame_stride: int = 1, *,
                  train: bool = False, rng: np.random.Generator | None = None,
                  start: int | None = None) -> np.ndarray:
    """``num_frames`` indices ``frame_stride`` apart; random start in training, centred else."""
    _check(num_available, num_frames)
    span = (num_frames - 1) * frame_stride + 1
    last = max(num_available - span, 0)
    if start is None:
        if train:
            start = int((rng or np.random.default_rng()).integers(0, last + 1))
        else:
            start = last // 2
    indices = start + frame_stride * np.arange(num_frames, dtype=np.int64)
    return np.minimum(indices, num_available - 1)


def segment_indices(num_available: int, num_segments: int, *, train: bool = False,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """TSN sampling: one frame from each of ``num_segments`` equal segments."""
    _check(num_available, num_segments)
    edges = np.linspace(0, num_available, num_segments + 1)
    lengths = edges[1:] - edges[:-1]
    if train:
        offsets = (rng or np.random.default_rng()).random(num_segments) * lengths
    else:
        offsets = lengths / 2
    indices = np.floor(edges[:-1] + offsets).astype(np.int64)
    return np.clip(indices, 0, num_available - 1)


def sample_indices(spec: ModelSpec, num_available: int, *, train: bool = False,
                   rng: np.random.Generator | None = None, clip_index: int = 0,
                   num_clips: int = 1) -> np.ndarray:
    """Frame indices of one clip of a video of ``num_available`` frames, as ``spec`` says.

    In testing, ``clip_index`` of ``num_clips`` picks one of several evenly spaced dense clips
    (multi-clip testing); for segment sampling the clips shift the in-segment offset.
    """
    if not 0 <= clip_index < num_clips:
        raise ValueError(f'clip_index {clip_index} out of range for {num_clips} clips')
    if spec.sampling == 'dense':
        start = None
        if not train:
            start = int(clip_starts(num_available, spec.clip_span, num_clips)[clip_index])
        return dense_indices(num_available, spec.num_frames, spec.frame_stride, train=train,
                             rng=rng, start=start)
    if train or num_clips == 1:
        return segment_indices(num_available, spec.num_frames, train=train, rng=rng)
    _check(num_available, spec.num_frames)
    edges = np.linspace(0, num_available, spec.num_frames + 1)
    lengths = edges[1:] - edges[:-1]
    offsets = lengths * (clip_index + 0.5) / num_clips
    return np.clip(np.floor(edges[:-1] + offsets).astype(np.int64), 0, num_available - 1)


def stream_indices(spec: ModelSpec, num_buffered: int, window: int | None = None) -> np.ndarray:
    """Indices, into a buffer of the latest ``num_buffered`` frames (oldest first), of the clip
    that ends at the newest frame.

    Dense: the last ``clip_span`` frames at ``frame_stride``, ending exactly on the newest frame.
    Segments: TSN centre sampling over the last ``window`` frames (default ``clip_span``).
    Raises ``ValueError`` when the buffer holds too few frames.
    """
    span = spec.clip_span if spec.sampling == 'dense' else (window or spec.clip_span)
    if num_buffered < span:
        raise ValueError(f'need {span} buffered frames for a clip, have {num_buffered}')
    first = num_buffered - span
    if spec.sampling == 'dense':
        return first + spec.frame_stride * np.arange(spec.num_frames, dtype=np.int64)
    return first + segment_indices(span, spec.num_frames, train=False)
