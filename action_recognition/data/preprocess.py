"""Preprocessing on the CPU, once, for training, export and the runtime (no torch).

Frames arrive as ``uint8`` RGB ``[H, W, 3]`` numpy arrays. On the CPU they are resized (shorter
side to ``spec.resize_short``) and centre-cropped to ``spec.input_size`` while still ``uint8``;
they travel to the device as ``uint8`` ``[N, 3, h, w]`` and
:class:`~action_recognition.data.normalize.Normalize` turns them into the network's float input
there, inside the model: ``(x / 255 - mean) / std``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from action_recognition.spec import ModelSpec

__all__ = ['frame_problem', 'resize_short_side', 'center_crop', 'prepare_frame', 'MAX_ASPECT']

#: The most elongated frame prepared for a model (longer side / shorter side).
MAX_ASPECT = 16


def frame_problem(frame: Any, *, min_side: int = 1) -> str | None:
    """Why ``frame`` is not a ``uint8`` RGB ``[H, W, 3]`` numpy array with sides of at least
    ``min_side`` pixels; ``None`` when it is. The one check of a frame's array."""
    if not isinstance(frame, np.ndarray):
        return f'not a numpy array ({type(frame).__name__})'
    if frame.ndim != 3 or frame.shape[2] != 3:
        return f'shape {frame.shape} is not [H, W, 3]'
    if frame.dtype != np.uint8:
        return f'dtype {frame.dtype} is not uint8'
    if frame.shape[0] < min_side or frame.shape[1] < min_side:
        return f'empty frame of shape {frame.shape}'
    return None


def _check_frame(frame: np.ndarray) -> None:
    problem = frame_problem(frame)
    if problem is not None:
        raise ValueError(f'a frame must be uint8 RGB [H, W, 3]: {problem}')


def resize_short_side(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize ``[H, W, 3]`` so that its shorter side is ``size`` (aspect ratio kept)."""
    _check_frame(frame)
    return _resize_short_side(frame, size)


def _resize_short_side(frame: np.ndarray, size: int) -> np.ndarray:
    height, width = frame.shape[:2]
    scale = size / min(height, width)
    new_h = max(size, round(height * scale))
    new_w = max(size, round(width * scale))
    if (new_h, new_w) == (height, width):
        return frame
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, (new_w, new_h), interpolation=interpolation)


def center_crop(frame: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The centre ``size = (h, w)`` window of a frame ``[H, W, C]`` or a clip ``[T, H, W, C]``
    (the same window in every frame); the frames must be large enough."""
    crop_h, crop_w = int(size[0]), int(size[1])
    height, width = frame.shape[-3:-1]
    if height < crop_h or width < crop_w:
        raise ValueError(f'cannot crop {crop_h}x{crop_w} from a {height}x{width} frame')
    top = (height - crop_h) // 2
    left = (width - crop_w) // 2
    return frame[..., top:top + crop_h, left:left + crop_w, :]


def prepare_frame(frame: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Resize and centre-crop one ``uint8`` RGB frame ``[H, W, 3]`` (checked where it entered:
    :func:`~action_recognition.runtime.frames.make_frame`) to the model's input size.

    ``ValueError`` before anything is allocated for a frame more than :data:`MAX_ASPECT` times
    as wide as high (or the reverse): its shorter side resized to ``spec.resize_short`` would
    make the longer one enormous (a 2 x 300000 image: 29 GB).
    """
    height, width = frame.shape[:2]
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise ValueError(f'a {width}x{height} frame is more than {MAX_ASPECT} times as wide as '
                         'high (or the reverse)')
    resized = _resize_short_side(frame, spec.resize_short)
    return np.ascontiguousarray(center_crop(resized, spec.input_size))
