"""Streaming ECO-Lite: the 2D-Net runs once per frame, the 3D-Net on cached features.

ECO-Lite's 2D-Net sees each frame on its own, so in a stream where a new window starts every
few frames, the 2D features of a frame are the same in every window that contains it.
:class:`StreamingEcoBackend` exposes both halves of a model with ``forward_2d``/``forward_3d``:

- :meth:`~StreamingEcoBackend.frame_features`: ``uint8`` frames ``[N, 3, h, w]`` -> feature
  maps ``[N, C, h', w']`` (normalisation included);
- :meth:`~StreamingEcoBackend.infer_features`: cached features of one or more clips
  ``[B*T, C, h', w']`` -> logits ``[B, classes]``;
- :meth:`~StreamingEcoBackend.infer`: the ordinary full recomputation (the Backend interface).

The :class:`~action_recognition.runtime.recognizer.Recognizer` notices these methods, caches
each frame's features in its clip buffer and runs the 2D-Net only on the frames a window has not
seen; the result equals a full recomputation of the same window (the 2D-Net must be in eval
mode, so batch normalisation does not mix frames).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn
from torch import Tensor

from action_recognition.data.preprocess import Normalize
from action_recognition.runtime.backends import check_frames
from action_recognition.runtime.backends import check_half
from action_recognition.runtime.backends import load_checkpoint
from action_recognition.runtime.backends import ModelLoadError
from action_recognition.spec import ModelSpec

__all__ = ['StreamingEcoBackend', 'supports_streaming']


def supports_streaming(model: nn.Module) -> bool:
    """Whether ``model`` splits into a per-frame ``forward_2d`` and a clip ``forward_3d``."""
    return callable(getattr(model, 'forward_2d', None)) and \
        callable(getattr(model, 'forward_3d', None))


class StreamingEcoBackend:
    """A PyTorch ECO-Lite whose 2D features can be computed per frame and cached."""

    def __init__(self, model: nn.Module, spec: ModelSpec, *, device: str = 'cpu',
                 half: bool = False) -> None:
        if not supports_streaming(model):
            raise ValueError(f'model {spec.model!r} has no forward_2d/forward_3d: it cannot '
                             f'stream; use TorchBackend')
        check_half(device, half)
        self.spec = spec
        self.device = device
        self.half = half
        self.name = f'torch-stream-{device}' + ('-fp16' if half else '')
        dtype = torch.float16 if half else torch.float32
        self.model = model.eval().to(device=device, dtype=dtype)
        self.normalize = Normalize.from_spec(spec).to(device=device, dtype=dtype)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], device: str = 'cpu',
                        half: bool = False) -> StreamingEcoBackend:
        model, spec = load_checkpoint(path, map_location=device)
        try:
            return cls(model, spec, device=device, half=half)
        except ValueError as error:
            raise ModelLoadError(f'{path}: {error}') from error

    def _to_device(self, frames: Tensor | np.ndarray) -> Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(frames)) \
            if isinstance(frames, np.ndarray) else frames
        return tensor.to(self.device, non_blocking=True)

    @torch.inference_mode()
    def frame_features(self, frames: Tensor | np.ndarray) -> Tensor:
        """``uint8 [N, 3, h, w]`` -> 2D-Net features ``[N, C, h', w']`` (on the device)."""
        height, width = self.spec.input_size
        if tuple(frames.shape[1:]) != (3, height, width) or frames.dtype not in (
                torch.uint8, np.uint8):
            raise ValueError(f'expected uint8 frames [N, 3, {height}, {width}], got '
                             f'{tuple(frames.shape)} {frames.dtype}')
        model: nn.Module = self.model
        return model.forward_2d(self.normalize(self._to_device(frames)))  # type: ignore[operator]

    @torch.inference_mode()
    def infer_features(self, features: Tensor) -> np.ndarray:
        """Features ``[B*T, C, h', w']`` of whole clips -> float32 logits ``[B, classes]``."""
        if features.shape[0] == 0 or features.shape[0] % self.spec.num_frames:
            raise ValueError(f'{features.shape[0]} feature maps is not a whole number of clips '
                             f'of {self.spec.num_frames} frames')
        model: nn.Module = self.model
        logits = model.forward_3d(features.to(self.device))  # type: ignore[operator]
        return logits.float().cpu().numpy()

    @torch.inference_mode()
    def infer(self, frames: Tensor | np.ndarray) -> np.ndarray:
        """Full recomputation: ``uint8 [B*T, 3, h, w]`` -> float32 logits ``[B, classes]``."""
        batch = check_frames(frames, self.spec)
        logits = self.infer_features(self.frame_features(frames))
        if logits.shape != (batch, self.spec.num_classes):
            raise ValueError(f'{self.name} returned logits of shape {logits.shape}, expected '
                             f'{(batch, self.spec.num_classes)}')
        return logits

    def close(self) -> None:
        self.model = self.model.cpu()
