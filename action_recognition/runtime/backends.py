"""Inference backends behind one interface: :func:`load_backend` opens a model file.

- :class:`~action_recognition.runtime.torch_backend.TorchBackend`: a registry model from a
  checkpoint (``.pt``); CPU or CUDA; fp32, fp16 (CUDA) or bf16; optionally streaming.
- :class:`~action_recognition.runtime.ort_backend.OnnxRuntimeBackend`: an exported ONNX file.
- :class:`~action_recognition.runtime.openvino_backend.OpenVinoBackend`: an exported ONNX file
  or an OpenVINO IR (``.xml`` + ``.bin``) on an Intel CPU, GPU or NPU; fp32, bf16, fp16 or int8
  (NNCF post-training quantisation at load).

Every backend is a :class:`~action_recognition.runtime.protocol.Backend` (``uint8`` frames
``[B*T, 3, h, w]`` in, float32 logits ``[B, classes]`` out); :func:`load_backend` picks the
backend from the file, checks the backend, device and precision against each other
(:func:`~action_recognition.runtime.settings.backend_problems`), refuses a model that is not
4D-only unless allowed, and checks with a dummy run that the output size matches the label
count. Problems raise :class:`~action_recognition.runtime.protocol.ModelLoadError` naming the
file. Each backend's module is imported when a model needs it: an ONNX model runs without torch.
"""

from __future__ import annotations

from dataclasses import replace
import logging
import os
from pathlib import Path
import time
from typing import Any

import numpy as np

from action_recognition.runtime.protocol import Backend
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.settings import backend_problems
from action_recognition.runtime.settings import BackendSettings

__all__ = ['load_backend', 'verify_backend', 'backend_kind']

LOGGER = logging.getLogger(__name__)


def backend_kind(path: Path, backend: str, device: str) -> str:
    """The backend that runs ``path``: ``backend`` unless it is ``'auto'``; then openvino for an
    ``openvino:`` device, else from the file (``.onnx`` onnxruntime, ``.xml`` openvino, ``.pt``
    torch; by its first bytes for any other name)."""
    if backend != 'auto':
        return backend
    if device.startswith('openvino:'):
        return 'openvino'  # only OpenVINO runs on its devices
    suffix = path.suffix.lower()
    if suffix == '.onnx':
        return 'onnxruntime'
    if suffix == '.xml':
        return 'openvino'
    if suffix in ('.pt', '.pth', '.ckpt', '.tar'):
        return 'torch'
    with path.open('rb') as handle:
        head = handle.read(5)
    # torch.save writes a zip archive, an OpenVINO IR is XML; everything else is treated as
    # ONNX (protobuf).
    if head.startswith(b'PK'):
        return 'torch'
    return 'openvino' if head.startswith((b'<?xml', b'<net')) else 'onnxruntime'


def load_backend(model_path: str | os.PathLike[str], settings: BackendSettings | None = None, *,
                 providers: list[str] | None = None, streaming: bool = False,
                 logger: logging.Logger | None = None, **changes: Any) -> Backend:
    """Open ``model_path`` with the backend ``settings`` ask for and check it with a dummy run.

    ``settings`` (:class:`BackendSettings`; ``changes`` replace some of its values, e.g.
    ``threads=1``): ``backend`` ``'auto'`` picks it from the file (:func:`backend_kind`);
    ``device`` ``'cpu'``, ``'cuda[:i]'`` (torch, ONNX Runtime: TensorRT -> CUDA -> CPU unless
    ``providers`` are given) or ``'openvino:CPU|GPU|GPU.N|NPU'``; ``precision`` fp16 (torch on
    CUDA, OpenVINO), bf16 (torch, OpenVINO) or int8 (OpenVINO: NNCF quantisation at load unless
    the file is int8); ``threads`` 0: the library's default. ``streaming=True`` (PyTorch
    checkpoints of models with ``forward_2d``/``forward_3d``, i.e. ECO-Lite) gives a
    :class:`~action_recognition.runtime.protocol.StreamingBackend`.

    A model that is not 4D-only (an ONNX graph without the exporter's proof, an IR with values
    above rank 4, or a checkpoint of a model the registry marks as 5D) is refused unless
    ``allow_5d``. Any failure while loading or checking, out-of-memory included, is a
    :class:`ModelLoadError`.
    """
    logger = logger or LOGGER
    try:
        settings = replace(settings or BackendSettings(), **changes)
    except ValueError as error:  # SettingsError
        raise ModelLoadError(str(error)) from error
    path = Path(model_path)
    if not path.is_file():
        raise ModelLoadError(f'model file not found: {path}')
    kind = backend_kind(path, settings.backend, settings.device)
    problems = backend_problems(kind, settings.device, settings.precision)
    if streaming and kind != 'torch':
        problems.append(f'streaming needs a PyTorch checkpoint (the {kind} model is one graph)')
    if problems:
        raise ModelLoadError(f'{path}: ' + '; '.join(problems))
    try:
        result = _open(kind, path, settings, providers=providers, streaming=streaming,
                       logger=logger)
    except ModelLoadError:
        raise
    except Exception as error:  # MemoryError and library errors alike: the load failed
        raise ModelLoadError(f'cannot load {path}: {type(error).__name__}: {error}') from error
    try:
        verify_backend(result, path)
    except BaseException:
        result.close()
        raise
    return result


def _open(kind: str, path: Path, settings: BackendSettings, *, providers: list[str] | None,
          streaming: bool, logger: logging.Logger) -> Backend:
    threads = settings.threads or None
    if kind == 'torch':
        # torch is needed for .pt models only.
        from action_recognition.runtime.torch_backend import open_torch_backend
        return open_torch_backend(path, device=settings.device, precision=settings.precision,
                                  threads=threads, streaming=streaming,
                                  allow_5d=settings.allow_5d, logger=logger)
    if kind == 'onnxruntime':
        # onnxruntime is needed for .onnx models on this backend only.
        from action_recognition.runtime.ort_backend import CPU
        from action_recognition.runtime.ort_backend import OnnxRuntimeBackend
        if providers is None and not settings.device.startswith('cuda'):
            providers = [CPU]
        return OnnxRuntimeBackend(path, providers=providers, threads=threads,
                                  allow_5d=settings.allow_5d,
                                  spinning=settings.thread_spinning, logger=logger)
    # openvino (and nncf for int8) are optional: needed for the openvino backend only.
    from action_recognition.runtime.openvino_backend import OpenVinoBackend
    return OpenVinoBackend(path, device=settings.device, precision=settings.precision,
                           threads=threads, allow_5d=settings.allow_5d, logger=logger)


def verify_backend(backend: Backend, path: str | os.PathLike[str] = '<model>') -> float:
    """One dummy clip through ``backend``: output size vs label count, finite output.

    Returns the seconds the run took; raises :class:`ModelLoadError`.
    """
    spec = backend.spec
    height, width = spec.input_size
    start = time.perf_counter()
    try:
        # The spec's sizes are bounded when it is read (spec.MAX_CLIP_PIXELS); any failure here,
        # out-of-memory included, is a load error.
        dummy = np.full((spec.num_frames, 3, height, width), 128, dtype=np.uint8)
        logits = backend.infer(dummy)
    except ValueError as error:
        raise ModelLoadError(f'{path}: model does not match its metadata: {error}') from error
    except Exception as error:
        raise ModelLoadError(f'{path}: a dummy run failed: {type(error).__name__}: '
                             f'{error}') from error
    elapsed = time.perf_counter() - start
    if not np.isfinite(logits).all():
        raise ModelLoadError(f'{path}: the model gives non-finite outputs on a dummy clip')
    return elapsed
