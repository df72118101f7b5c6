"""Preprocessing, once, for training, export and the runtime.

Frames arrive as ``uint8`` RGB ``[H, W, 3]`` numpy arrays. On the CPU they are resized (shorter
side to ``spec.resize_short``) and centre-cropped to ``spec.input_size`` while still ``uint8``;
they travel to the device as ``uint8`` ``[N, 3, h, w]`` and :class:`Normalize` turns them into
the network's float input there: ``(x / 255 - mean) / std``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import nn
from torch import Tensor

from action_recognition.spec import ModelSpec

__all__ = [
    'resize_short_side', 'center_crop', 'prepare_frame', 'frames_to_tensor', 'Normalize',
    'normalize',
]


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray):
        raise TypeError(f'a frame must be a numpy array, got {type(frame).__name__}')
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f'a frame must be [H, W, 3], got shape {frame.shape}')
    if frame.dtype != np.uint8:
        raise ValueError(f'a frame must be uint8, got {frame.dtype}')
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f'empty frame of shape {frame.shape}')


def resize_short_side(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize ``[H, W, 3]`` so that its shorter side is ``size`` (aspect ratio kept)."""
    _check_frame(frame)
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
    """Resize and centre-crop one ``uint8`` RGB frame to the model's input size."""
    resized = resize_short_side(frame, spec.resize_short)
    return np.ascontiguousarray(center_crop(resized, spec.input_size))


def frames_to_tensor(frames: np.ndarray | Sequence[np.ndarray]) -> Tensor:
    """``uint8`` frames ``[N, h, w, 3]`` -> ``uint8`` tensor ``[N, 3, h, w]`` (stays uint8)."""
    array = np.ascontiguousarray(np.stack(list(frames)) if not isinstance(frames, np.ndarray)
                                 else frames)
    if array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(f'expected frames [N, h, w, 3], got {array.shape}')
    return torch.from_numpy(array).permute(0, 3, 1, 2)


class Normalize(nn.Module):
    """``uint8`` (or 0..255 float) frames ``[N, 3, h, w]`` -> normalised float ``[N, 3, h, w]``.

    ``mean`` and ``std`` are on the 0..1 scale (as in :class:`ModelSpec`) and stored as buffers
    of shape ``[1, 3, 1, 1]``, so the module runs on the device and exports to ONNX.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.tensor([float(m) for m in mean]).reshape(1, 3, 1, 1)
        std_t = torch.tensor([float(s) for s in std]).reshape(1, 3, 1, 1)
        # (x / 255 - mean) / std == x * scale + shift
        self.register_buffer('scale', 1.0 / (255.0 * std_t))
        self.register_buffer('shift', -mean_t / std_t)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> Normalize:
        return cls(spec.mean, spec.std)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.get_buffer('scale')
        shift = self.get_buffer('shift')
        dtype = x.dtype if x.is_floating_point() else scale.dtype
        return x.to(dtype) * scale.to(dtype) + shift.to(dtype)


def normalize(frames: Tensor, spec: ModelSpec) -> Tensor:
    """Functional form of :class:`Normalize` for ``[N, 3, h, w]`` frames."""
    return Normalize.from_spec(spec).to(frames.device)(frames)
