"""What every inference backend is: the :class:`Backend` protocol, and its input/output checks.

Every backend takes ``uint8`` frames ``[B*T, 3, h, w]`` (the T frames of each clip contiguous,
already resized and cropped to ``spec.input_size``) and returns float32 logits
``[B, num_classes]`` as a numpy array. Normalisation happens inside the model on the device, so
only ``uint8`` travels. A backend that can also run the per-frame part of a model on its own
(ECO-Lite's 2D-Net) is a :class:`StreamingBackend` as well; the recogniser then caches per-frame
features in its ring and runs the per-frame part only on frames a window has not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
import os
from typing import Any
from typing import Protocol
from typing import runtime_checkable

import numpy as np

from action_recognition.spec import ModelSpec

__all__ = ['Backend', 'StreamingBackend', 'ModelLoadError', 'check_frames', 'check_logits',
           'refuse_not_4d']


class ModelLoadError(RuntimeError):
    """A model file is missing, corrupt, not 4D-only (unless allowed) or inconsistent with its
    own metadata; the message names the file and the reason."""


@runtime_checkable
class Backend(Protocol):
    """What the recogniser needs from a backend.

    Attributes:
        spec: the model's spec (labels, clip sampling, preprocessing).
        device: ``'cpu'`` or ``'cuda[:N]'`` (where the model runs).
        name: what the diagnostics and the benchmark call it (``'onnxruntime-cpu'``).
        streaming: whether it offers the :class:`StreamingBackend` methods and they should be
            used (a torch backend asked to stream, for a model that can).
        max_batch: the most clips one :meth:`infer` call takes (``None``: any number; ONNX
            Runtime's TensorRT engine is built for at most this many).
    """

    spec: ModelSpec
    device: str
    name: str
    streaming: bool
    max_batch: int | None

    def infer(self, frames: Any) -> np.ndarray:
        """``uint8 [B*T, 3, h, w]`` -> float32 logits ``[B, num_classes]``."""
        ...

    def close(self) -> None:
        """Release the model (and accelerator memory)."""
        ...


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend whose per-frame part (ECO-Lite's 2D-Net) runs on its own."""

    def frame_features(self, frames: np.ndarray) -> Any:
        """``uint8 [N, 3, h, w]`` -> per-frame features ``[N, C, h', w']`` (on the device;
        ``features[i:i + 1]`` is frame ``i``'s)."""
        ...

    def infer_features(self, features: Sequence[Any]) -> np.ndarray:
        """The per-frame features ``[1, C, h', w']`` of whole clips, ``B*T`` of them in clip
        order -> float32 logits ``[B, classes]``."""
        ...


def check_frames(frames: Any, spec: ModelSpec) -> int:
    """Validate ``[B*T, 3, h, w]`` input frames against ``spec``; returns ``B``."""
    shape = tuple(frames.shape)
    height, width = spec.input_size
    if len(shape) != 4 or shape[1] != 3 or shape[2:] != (height, width):
        raise ValueError(f'expected frames [B*T, 3, {height}, {width}], got {shape}')
    if shape[0] == 0 or shape[0] % spec.num_frames:
        raise ValueError(
            f'the leading axis {shape[0]} is not a positive multiple of the clip length '
            f'{spec.num_frames}')
    dtype = frames.dtype
    if dtype != np.uint8 and str(dtype) != 'torch.uint8':
        raise ValueError(f'frames must be uint8 (normalisation happens in the model), got {dtype}')
    return shape[0] // spec.num_frames


def check_logits(logits: np.ndarray, batch: int, spec: ModelSpec, what: str) -> np.ndarray:
    """``logits`` if they are ``[batch, num_classes]``; ``ValueError`` naming ``what`` if not."""
    if logits.shape != (batch, spec.num_classes):
        raise ValueError(
            f'{what} returned logits of shape {logits.shape}, expected '
            f'{(batch, spec.num_classes)} ({spec.num_classes} labels)')
    return logits


def refuse_not_4d(problems: list[str], path: str | os.PathLike[str], *, allow_5d: bool,
                  logger: logging.Logger) -> None:
    """Refuse a graph with 4D-only ``problems`` (:class:`ModelLoadError` naming them and the way
    to run it anyway), or log them when ``allow_5d``."""
    if not problems:
        return
    shown = '; '.join(problems[:3]) + (f' (and {len(problems) - 3} more)'
                                       if len(problems) > 3 else '')
    if not allow_5d:
        raise ModelLoadError(
            f'{path} is not 4D-only: {shown}. This package runs 4D-only models (no tensor of '
            'rank 5, no 3D convolution); to run this one anyway set allow_5d (node parameter '
            'allow_5d:=true, `run --allow-5d`)')
    logger.warning('%s is not 4D-only (allowed by allow_5d): %s', path, shown)
