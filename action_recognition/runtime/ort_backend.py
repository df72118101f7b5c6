"""The ONNX Runtime backend: an exported ONNX file, its spec read from the file's metadata.

Execution providers TensorRT -> CUDA -> CPU as available, with a warning naming the fallback;
TensorRT engines are cached under a key of model hash, TensorRT version, GPU and input shape. At
load the file's 4D-only proof recorded by the exporter is checked
(:func:`~action_recognition.runtime.model_file.read_onnx_model`): a graph with rank-5 tensors
or 3D convolutions is refused unless ``allow_5d``. Neither torch nor onnx is imported.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from pathlib import Path
import re
import subprocess
from typing import Any

import numpy as np
import onnxruntime as ort

from action_recognition.runtime.model_file import read_onnx_model
from action_recognition.runtime.protocol import check_frames
from action_recognition.runtime.protocol import check_logits
from action_recognition.runtime.protocol import ModelLoadError

__all__ = ['OnnxRuntimeBackend', 'select_providers', 'tensorrt_cache_key', 'TENSORRT', 'CUDA',
           'CPU', 'PROVIDER_PREFERENCE']

LOGGER = logging.getLogger(__name__)

TENSORRT = 'TensorrtExecutionProvider'
CUDA = 'CUDAExecutionProvider'
CPU = 'CPUExecutionProvider'
PROVIDER_PREFERENCE = (TENSORRT, CUDA, CPU)


def select_providers(requested: list[str] | None = None, *,
                     available: list[str] | None = None,
                     logger: logging.Logger | None = None) -> list[str]:
    """Execution providers to use, best first; warns naming what it fell back to.

    ``requested=None`` asks for TensorRT -> CUDA -> CPU. Providers that are not available are
    skipped with a warning; CPU is always last.
    """

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
    """The first NVIDIA GPU's name, from ``nvidia-smi`` (no torch on this path)."""
    try:
        found = subprocess.run(['nvidia-smi', '--query-gpu=name', '--format=csv,noheader'],
                               capture_output=True, text=True, timeout=10, check=True)
        names = found.stdout.strip().splitlines()
        if names and names[0].strip():
            return names[0].strip()
    except (OSError, subprocess.SubprocessError):
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
        max_batch: largest number of clips per call for TensorRT (its engine's shape profile);
            the other providers take any number.
    """

    def __init__(self, path: str | os.PathLike[str], providers: list[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, *, threads: int | None = None,
                 max_batch: int = 1, allow_5d: bool = False, spinning: bool = False,
                 logger: logging.Logger | None = None) -> None:

        self.logger = logger or LOGGER
        self.path = Path(path)
        model = read_onnx_model(self.path, allow_5d=allow_5d, logger=self.logger)
        model_bytes = model.data
        self.spec = model.spec
        self.rank_problems = list(model.proof.problems)
        self.max_batch: int | None = max_batch
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
        if not used or used[0] != TENSORRT:
            self.max_batch = None  # only a TensorRT engine is built for a batch size
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
        self.streaming = False

    def infer(self, frames: np.ndarray) -> np.ndarray:
        """``uint8 [B*T, 3, h, w]`` -> float32 logits ``[B, num_classes]``."""
        batch = check_frames(frames, self.spec)
        array = np.asarray(frames)
        (logits,) = self.session.run([self.output_name],
                                     {self.input_name: np.ascontiguousarray(array)})
        return check_logits(np.asarray(logits, dtype=np.float32), batch, self.spec, self.name)

    def close(self) -> None:
        self.session = None
