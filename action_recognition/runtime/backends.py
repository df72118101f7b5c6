"""Inference backends behind one interface: PyTorch and ONNX Runtime.

Every backend takes ``uint8`` frames ``[B*T, 3, h, w]`` (the T frames of each clip contiguous,
already resized and cropped to ``spec.input_size``) and returns float32 logits
``[B, num_classes]`` as a numpy array. Normalisation happens inside the model on the device
(:class:`~action_recognition.data.preprocess.Normalize`), so only ``uint8`` travels.

- :class:`TorchBackend`: a registry model from a training checkpoint; CPU or CUDA, fp16 on CUDA.
- :class:`OnnxRuntimeBackend`: an exported ONNX file whose metadata carries the spec; execution
  providers TensorRT -> CUDA -> CPU as available, with a warning naming the fallback; TensorRT
  engines cached under a key of model hash, TensorRT version, GPU and input shape.
- :func:`load_backend`: picks the backend from the file, and checks at load time, with a dummy
  run, that the model's output size matches its label count; problems raise
  :class:`ModelLoadError` naming the file.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from pathlib import Path
import re
import time
from typing import Any
from typing import Protocol
from typing import runtime_checkable

import numpy as np
import torch
from torch import nn
from torch import Tensor

from action_recognition.io.onnx_check import check_onnx_4d_only
from action_recognition.models.deployed import DeployedModel
from action_recognition.spec import ModelSpec
from action_recognition.spec import SPEC_METADATA_KEY

__all__ = [
    'Backend', 'ModelLoadError', 'DeployedModel', 'TorchBackend', 'OnnxRuntimeBackend',
    'load_backend', 'select_providers', 'tensorrt_cache_key', 'check_frames',
]

LOGGER = logging.getLogger(__name__)

TENSORRT = 'TensorrtExecutionProvider'
CUDA = 'CUDAExecutionProvider'
CPU = 'CPUExecutionProvider'
PROVIDER_PREFERENCE = (TENSORRT, CUDA, CPU)


class ModelLoadError(RuntimeError):
    """A model file is missing, corrupt or inconsistent with its own metadata."""


@runtime_checkable
class Backend(Protocol):
    """What the recogniser needs from a backend."""

    spec: ModelSpec
    device: str
    name: str

    def infer(self, frames: Tensor | np.ndarray) -> np.ndarray:
        """``uint8 [B*T, 3, h, w]`` -> float32 logits ``[B, num_classes]``."""
        ...

    def close(self) -> None:
        ...


def check_frames(frames: Tensor | np.ndarray, spec: ModelSpec) -> int:
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
    if dtype not in (torch.uint8, np.uint8):
        raise ValueError(f'frames must be uint8 (normalisation happens in the model), got {dtype}')
    return shape[0] // spec.num_frames


def _check_logits(logits: np.ndarray, batch: int, spec: ModelSpec, what: str) -> np.ndarray:
    if logits.shape != (batch, spec.num_classes):
        raise ValueError(
            f'{what} returned logits of shape {logits.shape}, expected '
            f'{(batch, spec.num_classes)} ({spec.num_classes} labels)')
    return logits


def check_half(device: str, half: bool) -> None:
    """fp16 inference (``half=True``) is for CUDA devices only."""
    if half and not device.startswith('cuda'):
        raise ValueError('fp16 (half=True) is only supported on CUDA devices')


class TorchBackend:
    """A PyTorch model on CPU or CUDA (fp16 on CUDA with ``half=True``)."""

    def __init__(self, model: nn.Module, spec: ModelSpec, *, device: str = 'cpu',
                 half: bool = False) -> None:
        check_half(device, half)
        self.spec = spec
        self.device = device
        self.half = half
        self.name = f'torch-{device}' + ('-fp16' if half else '')
        module = DeployedModel(model, spec).eval().to(device)
        self.module = module.half() if half else module

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], device: str = 'cpu',
                        half: bool = False) -> TorchBackend:
        model, spec = load_checkpoint(path, map_location=device)
        return cls(model, spec, device=device, half=half)

    @torch.inference_mode()
    def infer(self, frames: Tensor | np.ndarray) -> np.ndarray:
        batch = check_frames(frames, self.spec)
        tensor = torch.from_numpy(np.ascontiguousarray(frames)) \
            if isinstance(frames, np.ndarray) else frames
        tensor = tensor.to(self.device, non_blocking=True)
        logits = self.module(tensor).float().cpu().numpy()
        return _check_logits(logits, batch, self.spec, self.name)

    def close(self) -> None:
        self.module = self.module.cpu()
        if self.device.startswith('cuda'):
            torch.cuda.empty_cache()


def load_checkpoint(path: str | os.PathLike[str],
                    map_location: str = 'cpu') -> tuple[nn.Module, ModelSpec]:
    """``(model in eval mode, spec)`` from a training checkpoint; :class:`ModelLoadError` if bad.

    The format is the training package's (``{'spec': spec.to_dict(), 'model_state': ...}``),
    read with ``torch.load(weights_only=True)``: a file holding pickled Python objects is
    refused with the reason, and nothing in it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f'model file not found: {path}')
    from action_recognition.io.checkpoint import CheckpointError
    from action_recognition.io.checkpoint import load_model_from_checkpoint

    try:
        model, spec = load_model_from_checkpoint(path, map_location)
    except CheckpointError as error:  # its message names the file and the reason
        raise ModelLoadError(str(error)) from error
    except Exception as error:
        raise ModelLoadError(f'cannot load checkpoint {path}: {error}') from error
    return model.eval(), spec


def select_providers(requested: list[str] | None = None, *,
                     available: list[str] | None = None,
                     logger: logging.Logger | None = None) -> list[str]:
    """Execution providers to use, best first; warns naming what it fell back to.

    ``requested=None`` asks for TensorRT -> CUDA -> CPU. Providers that are not available are
    skipped with a warning; CPU is always last.
    """
    import onnxruntime as ort

    logger = logger or LOGGER
    available = list(ort.get_available_providers() if available is None else available)
    wanted = list(PROVIDER_PREFERENCE if requested is None else requested)
    chosen = [p for p in wanted if p in available]
    missing = [p for p in wanted if p not in available]
    if CPU not in chosen:
        chosen.append(CPU)
    if missing:
        logger.warning('ONNX Runtime providers %s are not available; falling back to %s',
                       missing, chosen[0])
    return chosen


def _tensorrt_version() -> str:
    try:
        tensorrt = importlib.import_module('tensorrt')
        return str(tensorrt.__version__)
    except Exception:
        return 'unknown'


def _gpu_name() -> str:
    try:
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    return 'unknown-gpu'


def tensorrt_cache_key(model_bytes: bytes, input_shape: tuple[int, ...], *,
                       trt_version: str | None = None, gpu: str | None = None) -> str:
    """Directory name of a TensorRT engine cache: model hash, TensorRT version, GPU, shape.

    An engine is only valid for the exact model, TensorRT build, GPU model and input shape
    profile it was built for, so each combination gets its own directory.
    """
    digest = hashlib.sha256(model_bytes).hexdigest()[:16]
    trt = trt_version if trt_version is not None else _tensorrt_version()
    device = gpu if gpu is not None else _gpu_name()
    shape = 'x'.join(str(s) for s in input_shape)
    raw = f'{digest}-trt{trt}-{device}-{shape}'
    return re.sub(r'[^A-Za-z0-9._-]+', '_', raw)


class OnnxRuntimeBackend:
    """An exported ONNX file run by ONNX Runtime; the spec comes from the file's metadata.

    Args:
        path: the ``.onnx`` file (input ``frames`` uint8 ``[B*T, 3, h, w]``, output ``logits``).
        providers: execution providers best first (``None``: TensorRT -> CUDA -> CPU as
            available).
        cache_dir: where TensorRT engines are cached (a sub-directory per
            :func:`tensorrt_cache_key`); default ``~/.cache/action_recognition/trt``.
        threads: intra-op threads for the CPU provider (``None``: ONNX Runtime's default).
        max_batch: largest number of clips per call (TensorRT shape profile).
    """

    def __init__(self, path: str | os.PathLike[str], providers: list[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, *, threads: int | None = None,
                 max_batch: int = 1, allow_5d: bool = False, spinning: bool = False,
                 logger: logging.Logger | None = None) -> None:
        import onnx
        import onnxruntime as ort

        self.logger = logger or LOGGER
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f'model file not found: {self.path}')
        model_bytes = self.path.read_bytes()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # Idle intra-op threads spin (busy-wait) for new work by default: a little lower latency
        # for a lot of CPU between windows (measured in the README); off unless asked for.
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '1' if spinning else '0')
        chosen = select_providers(providers, logger=self.logger)
        try:
            proto = onnx.load_from_string(model_bytes)
        except Exception as error:
            raise ModelLoadError(f'cannot read model {self.path}: not an ONNX file '
                                 f'({type(error).__name__}: {error})') from error
        meta = {p.key: p.value for p in proto.metadata_props}
        if SPEC_METADATA_KEY not in meta:
            raise ModelLoadError(
                f'{self.path} has no {SPEC_METADATA_KEY!r} metadata; export it with '
                f'`action-recognition export`')
        try:
            self.spec = ModelSpec.from_json(meta[SPEC_METADATA_KEY])
        except Exception as error:
            raise ModelLoadError(f'{self.path}: invalid model metadata: {error}') from error
        self.rank_problems = _check_4d(proto, self.path, allow_5d=allow_5d, logger=self.logger)
        del proto
        height, width = self.spec.input_size
        frames = self.spec.num_frames
        provider_list: list[Any] = []
        for provider in chosen:
            if provider == TENSORRT:
                key = tensorrt_cache_key(model_bytes, (max_batch * frames, 3, height, width))
                root = Path(cache_dir) if cache_dir is not None else \
                    Path.home() / '.cache' / 'action_recognition' / 'trt'
                engine_dir = root / key
                engine_dir.mkdir(parents=True, exist_ok=True)
                profile = f'frames:{frames}x3x{height}x{width}'
                provider_list.append((TENSORRT, {
                    'trt_engine_cache_enable': True,
                    'trt_engine_cache_path': str(engine_dir),
                    'trt_timing_cache_enable': True,
                    'trt_timing_cache_path': str(engine_dir),
                    'trt_fp16_enable': False,
                    'trt_profile_min_shapes': profile,
                    'trt_profile_opt_shapes': profile,
                    'trt_profile_max_shapes':
                        f'frames:{max_batch * frames}x3x{height}x{width}',
                }))
            else:
                provider_list.append(provider)
        try:
            self.session = ort.InferenceSession(model_bytes, sess_options=options,
                                                providers=provider_list)
        except Exception as error:
            raise ModelLoadError(f'ONNX Runtime cannot load {self.path}: {error}') from error
        used = self.session.get_providers()
        if used and used[0] != chosen[0]:
            self.logger.warning('ONNX Runtime could not start %s for %s; running on %s',
                                chosen[0], self.path.name, used[0])
        self.providers = used
        self.device = 'cuda' if used and used[0] in (TENSORRT, CUDA) else 'cpu'
        self.name = 'onnxruntime-' + (used[0].replace('ExecutionProvider', '').lower()
                                      if used else 'none')
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 1 or inputs[0].type != 'tensor(uint8)':
            raise ModelLoadError(
                f'{self.path}: expected one uint8 input "frames", got '
                f'{[(i.name, i.type) for i in inputs]}')
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name

    def infer(self, frames: Tensor | np.ndarray) -> np.ndarray:
        batch = check_frames(frames, self.spec)
        array = frames.cpu().numpy() if isinstance(frames, Tensor) else frames
        (logits,) = self.session.run([self.output_name],
                                     {self.input_name: np.ascontiguousarray(array)})
        return _check_logits(np.asarray(logits, dtype=np.float32), batch, self.spec, self.name)

    def close(self) -> None:
        self.session = None


def _check_4d(proto: Any, path: Path, *, allow_5d: bool,
              logger: logging.Logger) -> list[str]:
    """The exporter's 4D-only proof on a loaded graph: refuse a 5D graph unless ``allow_5d``.

    Returns the problems found (empty for a 4D-only graph); with ``allow_5d`` they are logged.
    """
    try:
        problems = check_onnx_4d_only(proto)
    except Exception as error:
        problems = [f'the rank check could not run ({type(error).__name__}: {error})']
    if not problems:
        return problems
    shown = '; '.join(problems[:3]) + (f' (and {len(problems) - 3} more)'
                                       if len(problems) > 3 else '')
    if not allow_5d:
        raise ModelLoadError(
            f'{path} is not 4D-only: {shown}. This package runs 4D-only models (no tensor of '
            'rank 5, no 3D convolution); to run this one anyway set allow_5d (node parameter '
            'allow_5d:=true, `run --allow-5d`)')
    logger.warning('%s is not 4D-only (allowed by allow_5d): %s', path, shown)
    return problems


def _kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == '.onnx':
        return 'onnxruntime'
    if suffix in ('.pt', '.pth', '.ckpt', '.tar'):
        return 'torch'
    with path.open('rb') as handle:
        head = handle.read(4)
    # torch.save writes a zip archive; everything else is treated as ONNX (protobuf).
    return 'torch' if head.startswith(b'PK') else 'onnxruntime'


def load_backend(model_path: str | os.PathLike[str], *, backend: str = 'auto',
                 device: str = 'cpu', half: bool = False, threads: int | None = None,
                 providers: list[str] | None = None, streaming: bool = False,
                 allow_5d: bool = False, spinning: bool = False,
                 logger: logging.Logger | None = None) -> Backend:
    """Open ``model_path`` with the right backend and check it with a dummy run.

    ``backend``: ``'auto'`` (from the file), ``'torch'`` or ``'onnxruntime'``. ``device``:
    ``'cpu'`` or ``'cuda[:i]'``; for ONNX Runtime, ``'cuda'`` asks for TensorRT -> CUDA -> CPU,
    ``'cpu'`` for the CPU provider only (unless ``providers`` are given). Raises
    :class:`ModelLoadError` for a missing, corrupt or inconsistent model. ``streaming=True``
    (PyTorch checkpoints of models with ``forward_2d``/``forward_3d``, i.e. ECO-Lite) returns a
    :class:`~action_recognition.runtime.streaming.StreamingEcoBackend`, with which the
    recogniser runs the 2D-Net once per frame.

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
        result = _open_backend(path, backend=backend, device=device, half=half,
                               threads=threads, providers=providers, streaming=streaming,
                               allow_5d=allow_5d, spinning=spinning, logger=logger)
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


def _open_backend(path: Path, *, backend: str, device: str, half: bool, threads: int | None,
                  providers: list[str] | None, streaming: bool, allow_5d: bool, spinning: bool,
                  logger: logging.Logger) -> Backend:
    kind = _kind_of(path) if backend == 'auto' else backend
    result: Backend
    if kind == 'torch':
        if threads is not None:
            torch.set_num_threads(threads)
        if streaming:
            from action_recognition.runtime.streaming import StreamingEcoBackend

            result = StreamingEcoBackend.from_checkpoint(path, device=device, half=half)
        else:
            result = TorchBackend.from_checkpoint(path, device=device, half=half)
    elif kind == 'onnxruntime':
        if streaming:
            raise ModelLoadError(f'{path}: streaming needs a PyTorch checkpoint (the ONNX file '
                                 f'is one graph)')
        if half:
            raise ModelLoadError('half=True applies to the torch backend; export with --fp16 '
                                 'for an fp16 ONNX model')
        if providers is None and not device.startswith('cuda'):
            providers = [CPU]
        result = OnnxRuntimeBackend(path, providers=providers, threads=threads,
                                    allow_5d=allow_5d, spinning=spinning, logger=logger)
    else:
        raise ModelLoadError(f"unknown backend {backend!r}; use 'auto', 'torch' or "
                             f"'onnxruntime'")
    if kind == 'torch':
        _check_registered_4d(result, path, allow_5d=allow_5d, logger=logger)
    return result


def _check_registered_4d(backend: Backend, path: Path, *, allow_5d: bool,
                         logger: logging.Logger) -> None:
    from action_recognition.models import model_info

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
