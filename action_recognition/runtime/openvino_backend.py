"""The OpenVINO backend: an exported ONNX file or an OpenVINO IR on an Intel CPU, GPU or NPU.

- Files: an ONNX file written by ``action-recognition export`` (read as the ONNX Runtime
  backend reads it: the spec and the recorded 4D-only proof from its metadata,
  :func:`~action_recognition.runtime.model_file.read_onnx_model`), or an OpenVINO IR
  (``model.xml`` with ``model.bin`` beside it; the spec in the IR's ``rt_info``, see
  :func:`~action_recognition.io.specs.ir_spec`; 4D-only means no value computed from the
  input has a rank above 4 in the IR's graph). A graph that is not 4D-only is refused unless
  ``allow_5d``.
- Devices: the package's ``'cpu'`` is OpenVINO's ``CPU``; ``'openvino:CPU'``,
  ``'openvino:GPU'`` (``'openvino:GPU.1'`` for the second GPU) and ``'openvino:NPU'`` name an
  OpenVINO device. A device that is not there is a load error naming the devices that are.
- Precision: ``'fp32'`` (``INFERENCE_PRECISION_HINT`` f32, set explicitly: OpenVINO's CPU plugin
  otherwise computes in bf16 on CPUs with AMX or AVX512-BF16, and its GPU plugin in f16),
  ``'bf16'``, ``'fp16'`` (GPU, NPU), and ``'int8'``: a file that is already quantised (ONNX
  QDQ from ``export --int8``, an IR with FakeQuantize) runs as it is; any other is quantised at
  load with NNCF's post-training quantisation (``nncf.quantize``) on
  :data:`CALIBRATION_CLIPS` clips of the synthetic benchmark
  (:func:`~action_recognition.data.clips.synthetic_clips`), from the first convolution on
  (the frame normalisation before it stays in floating point, see
  :func:`~action_recognition.io.quantize.frame_normalization`); :attr:`OpenVinoBackend.model`
  holds the quantised graph
  (``openvino.save_model`` writes it as an IR).
- Shapes: the graph is compiled for one clip, ``[T, 3, h, w]`` (static shapes: the fastest on a
  CPU, and what an NPU needs); a call with ``B`` clips runs them one after the other (clips are
  independent in eval mode). ``threads`` sets ``INFERENCE_NUM_THREADS`` (CPU); one stream with
  the latency hint.
- No telemetry and the 4D-only check of an IR: :mod:`action_recognition.io.openvino_graph`;
  the int8 quantisation: :mod:`action_recognition.io.quantize`; both shared with the OpenVINO
  deployment target.
- openvino and nncf are optional: imported when this backend is used (ONNX Runtime and PyTorch
  users do not need them); without them the load fails with the package to install.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import re
from typing import Any
from typing import Literal

import numpy as np

from action_recognition.data.clips import synthetic_clips
from action_recognition.io.model_files import ir_weights_path
from action_recognition.io.openvino_graph import import_openvino
from action_recognition.io.openvino_graph import OpenVinoMissingError
from action_recognition.io.openvino_graph import rank_problems
from action_recognition.io.quantize import is_quantized_openvino
from action_recognition.io.quantize import quantize_openvino_int8
from action_recognition.io.specs import ir_spec
from action_recognition.runtime.model_file import read_onnx_model
from action_recognition.runtime.protocol import check_frames
from action_recognition.runtime.protocol import check_logits
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.protocol import refuse_not_4d
from action_recognition.runtime.settings import OPENVINO_DEVICE_PATTERN
from action_recognition.spec import ModelSpec

__all__ = ['OpenVinoBackend', 'OpenVinoPrecision', 'openvino_device', 'CALIBRATION_CLIPS',
           'CALIBRATION_SEED']

LOGGER = logging.getLogger(__name__)

OpenVinoPrecision = Literal['fp32', 'fp16', 'bf16', 'int8']
_HINTS: dict[str, str] = {'fp32': 'f32', 'fp16': 'f16', 'bf16': 'bf16', 'int8': 'f32'}

#: Synthetic clips NNCF calibrates an int8 model on, and their seed.
CALIBRATION_CLIPS = 32
CALIBRATION_SEED = 0

_DEVICE = re.compile(rf'^(cpu|{OPENVINO_DEVICE_PATTERN})$')


def openvino_device(device: str) -> str:
    """OpenVINO's name of a package device string: ``'cpu'`` -> ``'CPU'``, ``'openvino:GPU'``
    -> ``'GPU'``; ``ValueError`` for anything else (``'cuda'`` is not an OpenVINO device)."""
    match = _DEVICE.match(device.strip())
    if match is None:
        raise ValueError(f"the openvino backend runs on 'cpu' or 'openvino:DEVICE' (DEVICE: "
                         f'CPU, GPU, GPU.N or NPU), not {device!r}')
    return 'CPU' if match.group(1) == 'cpu' else str(match.group(2))


class OpenVinoBackend:
    """An exported ONNX file or an OpenVINO IR run by OpenVINO (see the module docstring).

    Args:
        path: ``model.onnx``, or ``model.xml`` with ``model.bin`` beside it.
        device: ``'cpu'`` or ``'openvino:CPU|GPU|GPU.N|NPU'``.
        precision: ``'fp32'``, ``'fp16'``, ``'bf16'`` or ``'int8'``.
        threads: ``INFERENCE_NUM_THREADS`` on the CPU (``None``: OpenVINO's default, all cores).
        allow_5d: run a graph that is not 4D-only (logged).
        calibration_clips, calibration_seed: the synthetic clips int8 quantisation calibrates
            on (a file that is already quantised is not quantised again).

    Raises :class:`ModelLoadError` naming the file and the reason.
    """

    spec: ModelSpec
    device: str
    name: str
    streaming = False
    max_batch: int | None = None  # compiled for one clip: a call's clips run one by one

    def __init__(self, path: str | os.PathLike[str], *, device: str = 'cpu',
                 precision: str = 'fp32', threads: int | None = None,
                 allow_5d: bool = False, calibration_clips: int = CALIBRATION_CLIPS,
                 calibration_seed: int = CALIBRATION_SEED,
                 logger: logging.Logger | None = None) -> None:
        self.logger = logger or LOGGER
        self.path = Path(path)
        if precision not in _HINTS:
            raise ModelLoadError(f'precision must be one of {list(_HINTS)}, got {precision!r}')
        try:
            self.ov_device = openvino_device(device)
        except ValueError as error:
            raise ModelLoadError(f'{self.path}: {error}') from error
        try:
            ov = import_openvino()
        except OpenVinoMissingError as error:
            raise ModelLoadError(f'the openvino backend: {error}') from error
        core = ov.Core()
        self._check_device(core)
        if self.path.suffix.lower() == '.xml':
            model, self.spec = self._read_ir(core, allow_5d=allow_5d)
        else:
            self.spec = read_onnx_model(self.path, allow_5d=allow_5d, logger=self.logger).spec
            model = self._read(core, str(self.path))
        height, width = self.spec.input_size
        inputs = model.inputs
        rank = inputs[0].get_partial_shape().rank if len(inputs) == 1 else None
        if rank is None or rank.is_dynamic or rank.get_length() != 4 or \
                inputs[0].get_element_type() != ov.Type.u8:
            raise ModelLoadError(f'{self.path}: expected one uint8 input "frames" [N, 3, h, w], '
                                 f'got {[str(i) for i in inputs]}')
        try:
            model.reshape({inputs[0]: ov.PartialShape([self.spec.num_frames, 3, height,
                                                       width])})
        except Exception as error:
            raise ModelLoadError(f'{self.path}: model does not match its metadata (one clip '
                                 f'[{self.spec.num_frames}, 3, {height}, {width}]): '
                                 f'{error}') from error
        self.quantized = is_quantized_openvino(model)
        if precision == 'int8' and not self.quantized:
            model = self._quantize(model, calibration_clips, calibration_seed)
            self.quantized = True
        elif precision == 'int8':
            self.logger.info('%s is already quantised: running it as it is', self.path.name)
        self.model = model
        self.precision = precision
        self._compiled, self._request = self._compile(core, model, precision, threads)
        self.device = 'cpu' if self.ov_device == 'CPU' else f'openvino:{self.ov_device}'
        self.name = f'openvino-{self.ov_device.lower()}' + (
            '' if precision == 'fp32' and not self.quantized else
            f'-{"int8" if self.quantized else precision}')

    def _check_device(self, core: Any) -> None:
        available = list(core.available_devices)
        if self.ov_device in available or any(
                name.split('.')[0] == self.ov_device for name in available):
            return
        raise ModelLoadError(f'{self.path}: OpenVINO device {self.ov_device} is not available '
                             f'on this machine (available: {", ".join(available) or "none"})')

    def _read(self, core: Any, *files: str, what: str = 'model for OpenVINO') -> Any:
        try:
            return core.read_model(*files)
        except Exception as error:
            raise ModelLoadError(f'cannot read {self.path}: not a valid {what} '
                                 f'({type(error).__name__}: {error})') from error

    def _read_ir(self, core: Any, *, allow_5d: bool) -> tuple[Any, ModelSpec]:
        """``(openvino model, spec from the rt_info)`` of an IR, checked to be 4D-only."""
        weights = ir_weights_path(self.path)
        if not weights.is_file():
            raise ModelLoadError(f'{self.path}: the IR weights file {weights.name} is missing '
                                 '(an OpenVINO IR is model.xml with model.bin beside it)')
        model = self._read(core, str(self.path), str(weights), what='OpenVINO IR')
        try:
            spec = ir_spec(model, self.path)
        except ValueError as error:
            raise ModelLoadError(str(error)) from error
        refuse_not_4d(rank_problems(model), self.path, allow_5d=allow_5d, logger=self.logger)
        return model, spec

    def _quantize(self, model: Any, clips: int, seed: int) -> Any:
        """NNCF post-training quantisation of ``model`` on synthetic calibration clips."""
        if clips < 1:
            raise ModelLoadError(f'{self.path}: int8 quantisation needs at least one '
                                 f'calibration clip, got {clips}')
        self.logger.info('%s: quantising to int8 with NNCF on %d synthetic clips (seed %d)',
                         self.path.name, clips, seed)
        try:
            return quantize_openvino_int8(
                model, list(synthetic_clips(self.spec, clips, seed=seed)[0]), logger=self.logger)
        except Exception as error:
            raise ModelLoadError(f'{self.path}: int8 quantisation failed: '
                                 f'{type(error).__name__}: {error}') from error

    def _compile(self, core: Any, model: Any, precision: str,
                 threads: int | None) -> tuple[Any, Any]:
        supported = set(core.get_property(self.ov_device, 'SUPPORTED_PROPERTIES'))
        config: dict[str, Any] = {'PERFORMANCE_HINT': 'LATENCY'}
        if 'INFERENCE_PRECISION_HINT' in supported:
            config['INFERENCE_PRECISION_HINT'] = _HINTS[precision]
        elif precision in ('fp16', 'bf16'):
            raise ModelLoadError(f'{self.path}: OpenVINO device {self.ov_device} does not take '
                                 f'a precision; run it with precision fp32 (its own)')
        else:
            self.logger.warning('OpenVINO device %s computes in its own precision, not %s',
                                self.ov_device, precision)
        if threads is not None:
            if 'INFERENCE_NUM_THREADS' in supported:
                config['INFERENCE_NUM_THREADS'] = int(threads)
            else:
                self.logger.info('threads=%d does not apply to OpenVINO device %s', threads,
                                 self.ov_device)
        try:
            compiled = core.compile_model(model, self.ov_device, config)
        except Exception as error:
            raise ModelLoadError(f'OpenVINO cannot compile {self.path} for {self.ov_device}: '
                                 f'{error}') from error
        if 'INFERENCE_PRECISION_HINT' in config:
            actual = compiled.get_property('INFERENCE_PRECISION_HINT').get_type_name()
            if actual != config['INFERENCE_PRECISION_HINT']:
                self.logger.warning('OpenVINO %s runs %s in %s, not %s (the device has no '
                                    'support for it)', self.ov_device, self.path.name, actual,
                                    _HINTS[precision])
        return compiled, compiled.create_infer_request()

    def infer(self, frames: np.ndarray) -> np.ndarray:
        """``uint8 [B*T, 3, h, w]`` -> float32 logits ``[B, num_classes]``, clip by clip."""
        batch = check_frames(frames, self.spec)
        if self._request is None:
            raise RuntimeError(f'{self.name}: the backend is closed')
        array = np.asarray(frames)
        clips = np.ascontiguousarray(array).reshape(batch, self.spec.num_frames,
                                                    *array.shape[1:])
        logits = np.empty((batch, self.spec.num_classes), np.float32)
        for index, clip in enumerate(clips):
            out = np.asarray(self._request.infer({0: clip})[0], dtype=np.float32)
            logits[index] = check_logits(out, 1, self.spec, self.name)[0]
        return logits

    def close(self) -> None:
        """Release the compiled model (and the device memory it holds)."""
        self._request = None
        self._compiled = None
