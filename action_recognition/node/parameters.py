"""The node's parameters: declared once, validated with a reason for every refusal.

:data:`PARAMETERS` declares every node parameter (type, default, description, range or
choices, and when a change takes effect: at run time, by reloading the model on the worker, or
only at start-up). The ROS shell turns each into a ``ParameterDescriptor``;
:func:`parse_parameters` and :meth:`~action_recognition.node.core.NodeCore.set_parameters`
validate values and give a reason for every refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
import re
from typing import Any
from typing import Literal

import numpy as np

from action_recognition.data.images import DEFAULT_MAX_PIXELS
from action_recognition.runtime.openvino_backend import OPENVINO_DEVICE_PATTERN
from action_recognition.runtime.recognizer import Smoothing

__all__ = [
    'Applies', 'Precision', 'ParameterValue', 'ParameterDefinition', 'PARAMETERS',
    'NodeParameters', 'ParameterError', 'validate_value', 'parse_parameters', 'parameter_names',
    'definition_of',
]

Applies = Literal['runtime', 'reload', 'startup']
Precision = Literal['fp32', 'bf16', 'int8']
ParameterValue = bool | int | float | str


@dataclass(frozen=True)
class ParameterDefinition:
    """One node parameter.

    Attributes:
        name: parameter name.
        default: default value; its Python type is the parameter's type.
        description: shown by ``ros2 param describe``.
        minimum, maximum: inclusive range of a number.
        choices: allowed values of a string.
        applies: ``'runtime'`` (takes effect at once), ``'reload'`` (reloads the model on the
            worker) or ``'startup'`` (read-only once the node runs).
    """

    name: str
    default: ParameterValue
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    applies: Applies = 'runtime'

    @property
    def type(self) -> type:
        return type(self.default)


PARAMETERS: tuple[ParameterDefinition, ...] = (
    ParameterDefinition('model_path', '', 'Model file (.onnx or .pt checkpoint); empty: the '
                        'shipped default model. A change reloads the model.', applies='reload'),
    ParameterDefinition('labels_path', '', 'Optional label file (one label per line, or a JSON '
                        'list) for a model without labels; labels stored in the model win.',
                        applies='reload'),
    ParameterDefinition('backend', 'auto', 'Inference backend; auto: from the model file (.pt '
                        'torch, .onnx onnxruntime, .xml OpenVINO IR openvino), openvino for an '
                        'openvino: device.',
                        choices=('auto', 'torch', 'onnxruntime', 'openvino'), applies='reload'),
    ParameterDefinition('device', 'cpu', "'cpu', 'cuda[:N]' (torch, onnxruntime; ONNX Runtime "
                        "on cuda tries TensorRT, then CUDA, then CPU) or 'openvino:CPU', "
                        "'openvino:GPU[.N]', 'openvino:NPU' (openvino; 'cpu' is its CPU too).",
                        applies='reload'),
    ParameterDefinition('half', False, 'fp16 inference (torch backend on CUDA only).',
                        applies='reload'),
    ParameterDefinition('precision', 'fp32', 'Inference precision: fp32; bf16 (torch, openvino: '
                        'CPUs with AVX512-BF16/AMX); int8 (openvino: a file already quantised '
                        'runs as it is, any other is quantised with NNCF at load on 32 '
                        'synthetic calibration clips: 3 s for the shipped model, 30 s for '
                        'eco_lite_add at 16x224). onnxruntime runs the precision of the file '
                        '(export --fp16/--int8). A change reloads the model.',
                        choices=('fp32', 'bf16', 'int8'), applies='reload'),
    ParameterDefinition('allow_5d', False, 'Run a model that is not 4D-only (rank-5 tensors or '
                        '3D convolutions in its graph); false: such a model is refused at load.',
                        applies='reload'),
    ParameterDefinition('threads', 1, 'CPU threads for inference; 0: the library default '
                        '(all cores). 1 measured best for the shipped model (see the README).',
                        minimum=0, maximum=256, applies='reload'),
    ParameterDefinition('thread_spinning', False, 'Let idle ONNX Runtime threads busy-wait for '
                        'work (threads > 1): slightly lower latency, much more CPU.',
                        applies='reload'),
    ParameterDefinition('clip_length', 0, "Frames per clip; 0: the model's. Must match the "
                        'model (start-up fails otherwise).', minimum=0, maximum=1024,
                        applies='startup'),
    ParameterDefinition('frame_stride', 0, 'Source frames between sampled frames; 0: the '
                        "model's. Must match the model.", minimum=0, maximum=256,
                        applies='startup'),
    ParameterDefinition('input_size', 0, "Network input side in pixels; 0: the model's. Must "
                        'match the model.', minimum=0, maximum=4096, applies='startup'),
    ParameterDefinition('hop', 4, 'Run a new window every hop frames (ignored when '
                        'inference_rate_hz > 0).', minimum=1, maximum=10000),
    ParameterDefinition('inference_rate_hz', 0.0, 'Run the latest window at this rate instead '
                        'of every hop frames; 0: use hop.', minimum=0.0, maximum=1000.0),
    ParameterDefinition('score_threshold', 0.3, 'Labels scoring below this are left out of '
                        '~/actions.', minimum=0.0, maximum=1.0),
    ParameterDefinition('top_k', 5, 'Most labels published per window.', minimum=1,
                        maximum=1000),
    ParameterDefinition('smoothing', 'ema', 'Temporal smoothing of scores over windows.',
                        choices=('none', 'mean', 'ema')),
    ParameterDefinition('enabled', True, 'Process images; false: drop them (diagnostics keep '
                        'running).'),
    ParameterDefinition('max_gap_s', 1.0, 'A larger gap between image stamps restarts the clip '
                        'buffer.', minimum=0.001, maximum=3600.0, applies='reload'),
    ParameterDefinition('stale_input_s', 2.0, 'Diagnostics WARN when no image arrived for this '
                        'long.', minimum=0.01, maximum=3600.0),
    ParameterDefinition('max_image_pixels', DEFAULT_MAX_PIXELS, 'Largest image accepted, in '
                        'pixels (width x height, read from the message or the JPEG/PNG header '
                        'before decoding); larger images are dropped and counted in '
                        'frames_oversized. Bounds the memory and time one message can cost. '
                        'Run time: applies from the next image (nothing is sized from it); at '
                        "most 2^30, OpenCV's own decoder limit.", minimum=1, maximum=2 ** 30),
    ParameterDefinition('image_transport', 'raw', "'raw': subscribe to image "
                        "(sensor_msgs/Image); 'compressed': to image/compressed.",
                        choices=('raw', 'compressed'), applies='startup'),
    ParameterDefinition('qos_reliability', 'best_effort', 'Reliability of the image '
                        'subscription (best_effort matches the sensor-data profile).',
                        choices=('best_effort', 'reliable'), applies='startup'),
    ParameterDefinition('qos_depth', 2, 'History depth of the image subscription.', minimum=1,
                        maximum=100, applies='startup'),
    ParameterDefinition('diagnostics_period_s', 1.0, 'Period of /diagnostics messages.',
                        minimum=0.05, maximum=60.0, applies='startup'),
)

_BY_NAME = {definition.name: definition for definition in PARAMETERS}
_DEVICE = re.compile(rf'^(cpu|cuda(:\d+)?|{OPENVINO_DEVICE_PATTERN})$')


class ParameterError(ValueError):
    """Parameter values that were refused; the message gives every reason."""


@dataclass(frozen=True)
class NodeParameters:
    """The node's parameters, validated (see :data:`PARAMETERS` for their meaning)."""

    model_path: str = ''
    labels_path: str = ''
    backend: str = 'auto'
    device: str = 'cpu'
    half: bool = False
    precision: Precision = 'fp32'
    allow_5d: bool = False
    threads: int = 1
    thread_spinning: bool = False
    clip_length: int = 0
    frame_stride: int = 0
    input_size: int = 0
    hop: int = 4
    inference_rate_hz: float = 0.0
    score_threshold: float = 0.3
    top_k: int = 5
    smoothing: Smoothing = 'ema'
    enabled: bool = True
    max_gap_s: float = 1.0
    stale_input_s: float = 2.0
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    image_transport: str = 'raw'
    qos_reliability: str = 'best_effort'
    qos_depth: int = 2
    diagnostics_period_s: float = 1.0


def validate_value(name: str, value: Any) -> tuple[ParameterValue | None, str | None]:
    """``(value converted to the parameter's type, None)`` or ``(None, reason)``."""
    definition = _BY_NAME.get(name)
    if definition is None:
        return None, f'unknown parameter {name!r}'
    kind = definition.type
    if kind is bool:
        if not isinstance(value, (bool, np.bool_)):
            return None, f'{name} must be a bool, got {value!r}'
        return bool(value), None
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            return None, f'{name} must be an integer, got {value!r}'
        converted: ParameterValue = int(value)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            return None, f'{name} must be a number, got {value!r}'
        converted = float(value)
        if not np.isfinite(converted):
            return None, f'{name} must be finite, got {value!r}'
    else:
        if not isinstance(value, str):
            return None, f'{name} must be a string, got {value!r}'
        converted = value.strip()
        if definition.choices and converted not in definition.choices:
            return None, f'{name} must be one of {list(definition.choices)}, got {value!r}'
        if name == 'device' and not _DEVICE.match(converted):
            return None, (f"device must be 'cpu', 'cuda' or 'cuda:N' (torch, onnxruntime), "
                          f"or 'openvino:DEVICE' (DEVICE: CPU, GPU, GPU.N, NPU), got {value!r}")
        return converted, None
    assert not isinstance(converted, str)
    if definition.minimum is not None and converted < definition.minimum:
        return None, f'{name} must be >= {definition.minimum}, got {value!r}'
    if definition.maximum is not None and converted > definition.maximum:
        return None, f'{name} must be <= {definition.maximum}, got {value!r}'
    return converted, None


def parse_parameters(values: Mapping[str, Any], *,
                     base: NodeParameters | None = None) -> NodeParameters:
    """Validated :class:`NodeParameters` from ``values`` (others from ``base`` or defaults).

    Raises :class:`ParameterError` listing every refused value.
    """
    problems = []
    updates: dict[str, ParameterValue] = {}
    for name, value in values.items():
        converted, reason = validate_value(name, value)
        if reason is not None:
            problems.append(reason)
        else:
            assert converted is not None
            updates[name] = converted
    params = replace(base or NodeParameters(), **updates)  # type: ignore[arg-type]
    if params.half and not params.device.startswith('cuda'):
        problems.append('half=true needs a CUDA device')
    if params.half and params.backend == 'onnxruntime':
        problems.append('half=true applies to the torch backend (export an fp16 ONNX model '
                        'instead)')
    if params.device.startswith('openvino:') and params.backend in ('torch', 'onnxruntime'):
        problems.append(f'device {params.device} is an OpenVINO device: it needs backend '
                        f'openvino (or auto), not {params.backend}')
    if params.backend == 'openvino' and params.device.startswith('cuda'):
        problems.append("backend openvino runs on 'cpu' or an 'openvino:' device (an NVIDIA "
                        f'GPU is torch or onnxruntime), not {params.device}')
    if params.half and params.precision != 'fp32':
        problems.append(f'half=true and precision={params.precision}: choose one')
    if params.precision == 'int8' and params.backend in ('torch', 'onnxruntime'):
        problems.append(f'precision=int8 needs backend openvino, not {params.backend} (or '
                        'export with --int8 for an int8 ONNX model)')
    if params.precision == 'bf16' and params.backend == 'onnxruntime':
        problems.append('precision=bf16 needs backend torch or openvino (onnxruntime runs the '
                        'precision of the file)')
    if problems:
        raise ParameterError('; '.join(problems))
    return params


def definition_of(name: str) -> ParameterDefinition | None:
    """The definition of parameter ``name`` (``None`` for an unknown name)."""
    return _BY_NAME.get(name)


def parameter_names() -> list[str]:
    """Every parameter name, in declaration order."""
    return [d.name for d in PARAMETERS]


assert [f.name for f in fields(NodeParameters)] == parameter_names(), \
    'NodeParameters and PARAMETERS must list the same parameters in the same order'
assert all(getattr(NodeParameters(), d.name) == d.default for d in PARAMETERS), \
    'NodeParameters defaults must equal PARAMETERS defaults'
