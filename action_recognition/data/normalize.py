"""The network's float input, made on the device: ``uint8`` frames ``[N, 3, h, w]`` ->
``(x / 255 - mean) / std`` (:class:`Normalize`, part of every deployed model), and frames as a
``uint8`` tensor (:func:`frames_to_tensor`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch import Tensor

from action_recognition.spec import ModelSpec

__all__ = ['frames_to_tensor', 'Normalize', 'normalize']


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
