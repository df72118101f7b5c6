"""Inference backends behind one interface: :func:`load_backend` opens a model file.

- :class:`~action_recognition.runtime.torch_backend.TorchBackend`: a registry model from a
  checkpoint (``.pt``); CPU or CUDA; fp32, fp16 (CUDA) or bf16; optionally streaming.
- :class:`~action_recognition.runtime.ort_backend.OnnxRuntimeBackend`: an exported ONNX file.
- :class:`~action_recognition.runtime.openvino_backend.OpenVinoBackend`: an exported ONNX file
  or an OpenVINO IR (``.xml`` + ``.bin``) on an Intel CPU, GPU or NPU; fp32, bf16, fp16 or int8
  (NNCF post-training quantisation at load).

Every backend is a :class:`~action_recognition.runtime.protocol.Backend` (``uint8`` frames
``[B*T, 3, h, w]`` in, float32 logits ``[B, classes]`` out); :func:`load_backend` picks the
backend from the file, refuses a model that is not 4D-only unless allowed, and checks with a
dummy run that the output size matches the label count. Problems raise
:class:`~action_recognition.runtime.protocol.ModelLoadError` naming the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import time
from typing import Literal

import numpy as np
import torch

from action_recognition.models import model_info
from action_recognition.runtime.openvino_backend import OpenVinoBackend
from action_recognition.runtime.ort_backend import CPU
from action_recognition.runtime.ort_backend import OnnxRuntimeBackend
from action_recognition.runtime.ort_backend import select_providers
from action_recognition.runtime.ort_backend import tensorrt_cache_key
from action_recognition.runtime.protocol import Backend
from action_recognition.runtime.protocol import check_frames
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.protocol import StreamingBackend
from action_recognition.runtime.torch_backend import load_checkpoint
from action_recognition.runtime.torch_backend import TorchBackend

__all__ = [
    'Backend', 'StreamingBackend', 'ModelLoadError', 'TorchBackend', 'OnnxRuntimeBackend',
    'OpenVinoBackend', 'load_backend', 'verify_backend', 'select_providers',
    'tensorrt_cache_key', 'check_frames', 'load_checkpoint', 'BACKEND_NAMES', 'LoadPrecision',
]

LOGGER = logging.getLogger(__name__)

#: What ``load_backend(backend=...)`` takes.
BACKEND_NAMES = ('auto', 'torch', 'onnxruntime', 'openvino')
LoadPrecision = Literal['fp32', 'fp16', 'bf16', 'int8']


def _kind_of(path: Path, device: str) -> str:
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


def load_backend(model_path: str | os.PathLike[str], *, backend: str = 'auto',
                 device: str = 'cpu', half: bool = False, threads: int | None = None,
                 providers: list[str] | None = None, streaming: bool = False,
                 allow_5d: bool = False, spinning: bool = False,
                 precision: LoadPrecision = 'fp32',
                 logger: logging.Logger | None = None) -> Backend:
    """Open ``model_path`` with the right backend and check it with a dummy run.

    ``backend``: ``'auto'`` (from the file: ``.pt`` torch, ``.onnx`` onnxruntime, ``.xml``
    openvino; openvino for a device ``'openvino:...'``), ``'torch'``, ``'onnxruntime'`` or
    ``'openvino'``. ``device``: ``'cpu'``, ``'cuda[:i]'`` (torch, ONNX Runtime) or
    ``'openvino:CPU|GPU|GPU.N|NPU'`` (OpenVINO); for ONNX Runtime, ``'cuda'`` asks for TensorRT
    -> CUDA -> CPU, ``'cpu'`` for the CPU provider only (unless ``providers`` are given).
    Raises :class:`ModelLoadError` for a missing, corrupt or inconsistent model. ``half``: fp16
    (torch on CUDA, OpenVINO); ``precision``: ``'bf16'`` (torch, OpenVINO), ``'fp16'``
    (OpenVINO) or ``'int8'`` (OpenVINO: NNCF quantisation at load unless the file is already
    int8). ``streaming=True`` (PyTorch checkpoints of models with ``forward_2d``/
    ``forward_3d``, i.e. ECO-Lite) gives a backend that is a :class:`StreamingBackend`, with
    which the recogniser runs the 2D-Net once per frame.

    ``spinning``: ONNX Runtime's idle intra-op threads busy-wait for work (off by default).

    A model that is not 4D-only (an ONNX graph failing the exporter's rank proof, or a
    checkpoint of a model the registry marks as 5D) is refused unless ``allow_5d``. Any failure
    while loading or checking, out-of-memory included, is a :class:`ModelLoadError`.
    """
    logger = logger or LOGGER
    path = Path(model_path)
    if not path.is_file():
        raise ModelLoadError(f'model file not found: {path}')
    try:
        result = _open_backend(path, backend=backend, device=device,
                               precision='fp16' if half else precision, threads=threads,
                               providers=providers, streaming=streaming, allow_5d=allow_5d,
                               spinning=spinning, logger=logger)
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


def _open_backend(path: Path, *, backend: str, device: str, precision: LoadPrecision,
                  threads: int | None, providers: list[str] | None, streaming: bool,
                  allow_5d: bool, spinning: bool, logger: logging.Logger) -> Backend:
    if backend not in BACKEND_NAMES:
        raise ModelLoadError(f'unknown backend {backend!r}; use one of '
                             f'{", ".join(map(repr, BACKEND_NAMES))}')
    kind = _kind_of(path, device) if backend == 'auto' else backend
    if kind != 'openvino' and device.startswith('openvino:'):
        raise ModelLoadError(f'device {device} is an OpenVINO device: it needs backend '
                             f"'openvino' (or 'auto'), not {kind!r}")
    if streaming and kind != 'torch':
        raise ModelLoadError(f'{path}: streaming needs a PyTorch checkpoint (the {kind} model '
                             'is one graph)')
    result: Backend
    if kind == 'torch':
        if precision == 'int8':
            raise ModelLoadError('int8 applies to the openvino backend (or export with --int8 '
                                 'for an int8 ONNX model)')
        if threads is not None:
            torch.set_num_threads(threads)
        result = TorchBackend.from_checkpoint(path, device=device, precision=precision,
                                              streaming=streaming)
    elif kind == 'onnxruntime':
        if precision != 'fp32':
            raise ModelLoadError(f'{precision} applies to the torch and openvino backends; '
                                 'export with --fp16 or --int8 for a reduced-precision ONNX '
                                 'model')
        if providers is None and not device.startswith('cuda'):
            providers = [CPU]
        result = OnnxRuntimeBackend(path, providers=providers, threads=threads,
                                    allow_5d=allow_5d, spinning=spinning, logger=logger)
    else:
        result = OpenVinoBackend(path, device=device, precision=precision, threads=threads,
                                 allow_5d=allow_5d, logger=logger)
    if kind == 'torch':
        _check_registered_4d(result, path, allow_5d=allow_5d, logger=logger)
    return result


def _check_registered_4d(backend: Backend, path: Path, *, allow_5d: bool,
                         logger: logging.Logger) -> None:
    name = backend.spec.model
    if model_info(name).four_d_only:
        return
    if not allow_5d:
        backend.close()
        raise ModelLoadError(
            f'{path} holds {name}, a 5D model (not 4D-only). This package runs 4D-only models; '
            'to run this one anyway set allow_5d (node parameter allow_5d:=true, '
            '`run --allow-5d`)')
    logger.warning('%s holds %s, a 5D model (allowed by allow_5d)', path, name)


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
