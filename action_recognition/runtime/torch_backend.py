"""The PyTorch backend: a registry model from a checkpoint, in fp32, fp16 (CUDA) or bf16, and
optionally streaming (the per-frame part once per frame, see :class:`StreamingBackend`).

ECO-Lite's 2D-Net sees each frame on its own, so in a stream where a new window starts every few
frames, the 2D features of a frame are the same in every window that contains it. With
``streaming=True`` (for a model with ``forward_2d``/``forward_3d``) the backend exposes both
halves: :meth:`TorchBackend.frame_features` (normalisation and the 2D-Net, ``uint8 [N, 3, h,
w]`` -> ``[N, C, h', w']``) and :meth:`TorchBackend.infer_features` (the 3D-Net on the cached
features of whole clips); the result equals a full recomputation (the model is in eval mode, so
batch normalisation does not mix frames).
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch import Tensor

from action_recognition.io.checkpoint import CheckpointError
from action_recognition.io.checkpoint import load_model_from_checkpoint
from action_recognition.models import model_info
from action_recognition.models.deployed import DeployedModel
from action_recognition.runtime.protocol import check_frames
from action_recognition.runtime.protocol import check_logits
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.spec import ModelSpec

__all__ = ['TorchBackend', 'Precision', 'supports_streaming', 'load_checkpoint_model',
           'open_torch_backend']

Precision = Literal['fp32', 'fp16', 'bf16']
_DTYPES: dict[str, torch.dtype] = {'fp32': torch.float32, 'fp16': torch.float16,
                                   'bf16': torch.bfloat16}


def supports_streaming(model: nn.Module) -> bool:
    """Whether ``model`` splits into a per-frame ``forward_2d`` and a clip ``forward_3d``."""
    return callable(getattr(model, 'forward_2d', None)) and \
        callable(getattr(model, 'forward_3d', None))


class TorchBackend:
    """A PyTorch model on the CPU or a CUDA device.

    Args:
        model: the network (takes normalised frames ``[B*T, 3, h, w]``).
        spec: its spec.
        device: ``'cpu'`` or ``'cuda[:N]'``.
        precision: ``'fp32'``, ``'fp16'`` (CUDA only) or ``'bf16'`` (weights and activations).
        streaming: offer :meth:`frame_features`/:meth:`infer_features` (models with
            ``forward_2d``/``forward_3d``, i.e. ECO-Lite), so the recogniser caches per-frame
            features.
    """

    def __init__(self, model: nn.Module, spec: ModelSpec, *, device: str = 'cpu',
                 precision: Precision = 'fp32', streaming: bool = False) -> None:
        if precision not in _DTYPES:
            raise ValueError(f"precision must be 'fp32', 'fp16' or 'bf16', got {precision!r}")
        if precision == 'fp16' and not device.startswith('cuda'):
            raise ValueError('fp16 is only supported on CUDA devices')
        if streaming and not supports_streaming(model):
            raise ValueError(f'model {spec.model!r} has no forward_2d/forward_3d: it cannot '
                             f'stream')
        self.spec = spec
        self.device = device
        self.precision = precision
        self.streaming = streaming
        self.max_batch: int | None = None
        self.dtype = _DTYPES[precision]
        self.name = ('torch-stream-' if streaming else 'torch-') + device + \
            ('' if precision == 'fp32' else f'-{precision}')
        self.module = DeployedModel(model, spec).eval().to(device=device, dtype=self.dtype)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], *, device: str = 'cpu',
                        precision: Precision = 'fp32', streaming: bool = False) -> TorchBackend:
        model, spec = load_checkpoint_model(path, map_location=device)
        try:
            return cls(model, spec, device=device, precision=precision, streaming=streaming)
        except ValueError as error:
            raise ModelLoadError(f'{path}: {error}') from error

    def _to_device(self, frames: Tensor | np.ndarray) -> Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(frames)) \
            if isinstance(frames, np.ndarray) else frames
        return tensor.to(self.device, non_blocking=True)

    @torch.inference_mode()
    def infer(self, frames: Tensor | np.ndarray) -> np.ndarray:
        """``uint8 [B*T, 3, h, w]`` -> float32 logits ``[B, num_classes]``."""
        batch = check_frames(frames, self.spec)
        logits = self.module(self._to_device(frames)).float().cpu().numpy()
        return check_logits(logits, batch, self.spec, self.name)

    @torch.inference_mode()
    def frame_features(self, frames: Tensor | np.ndarray) -> Tensor:
        """``uint8 [N, 3, h, w]`` -> 2D-Net features ``[N, C, h', w']`` (on the device)."""
        height, width = self.spec.input_size
        if tuple(frames.shape[1:]) != (3, height, width) or frames.dtype not in (
                torch.uint8, np.uint8):
            raise ValueError(f'expected uint8 frames [N, 3, {height}, {width}], got '
                             f'{tuple(frames.shape)} {frames.dtype}')
        model: nn.Module = self.module.model
        normalized = self.module.normalize(self._to_device(frames))
        return model.forward_2d(normalized)  # type: ignore[operator]

    @torch.inference_mode()
    def infer_features(self, features: Tensor | Sequence[Tensor]) -> np.ndarray:
        """Features ``[B*T, C, h', w']`` of whole clips (one tensor, or the per-frame
        ``[1, C, h', w']`` in clip order) -> float32 logits ``[B, classes]``."""
        if not isinstance(features, Tensor):
            features = torch.cat(list(features))
        if features.shape[0] == 0 or features.shape[0] % self.spec.num_frames:
            raise ValueError(f'{features.shape[0]} feature maps is not a whole number of clips '
                             f'of {self.spec.num_frames} frames')
        model: nn.Module = self.module.model
        logits = model.forward_3d(features.to(self.device))  # type: ignore[operator]
        return logits.float().cpu().numpy()

    def close(self) -> None:
        """Move the model off the accelerator and free its cached memory."""
        self.module = self.module.cpu()
        if self.device.startswith('cuda'):
            torch.cuda.empty_cache()


def load_checkpoint_model(path: str | os.PathLike[str],
                          map_location: str = 'cpu') -> tuple[nn.Module, ModelSpec]:
    """``(model in eval mode, spec)`` from a checkpoint; :class:`ModelLoadError` if bad.

    Read with ``torch.load(weights_only=True)`` (:mod:`action_recognition.io.checkpoint`): a
    file holding pickled Python objects is refused with the reason, and nothing in it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f'model file not found: {path}')
    try:
        model, spec = load_model_from_checkpoint(path, map_location)
    except CheckpointError as error:  # its message names the file and the reason
        raise ModelLoadError(str(error)) from error
    except Exception as error:
        raise ModelLoadError(f'cannot load checkpoint {path}: {error}') from error
    return model.eval(), spec


def open_torch_backend(path: Path, *, device: str, precision: str, threads: int | None,
                       streaming: bool, allow_5d: bool, logger: logging.Logger) -> TorchBackend:
    """The backend of a checkpoint for :func:`~action_recognition.runtime.backends.
    load_backend`: ``threads`` sets torch's (process-wide) thread count; a model the registry
    marks as 5D is refused unless ``allow_5d``. ``precision`` was checked with the device by
    :func:`~action_recognition.runtime.settings.backend_problems`."""
    if threads is not None:
        torch.set_num_threads(threads)
    backend = TorchBackend.from_checkpoint(path, device=device,
                                           precision=precision,  # type: ignore[arg-type]
                                           streaming=streaming)
    name = backend.spec.model
    if model_info(name).four_d_only:
        return backend
    if not allow_5d:
        backend.close()
        raise ModelLoadError(
            f'{path} holds {name}, a 5D model (not 4D-only). This package runs 4D-only models; '
            'to run this one anyway set allow_5d (node parameter allow_5d:=true, '
            '`run --allow-5d`)')
    logger.warning('%s holds %s, a 5D model (allowed by allow_5d)', path, name)
    return backend
