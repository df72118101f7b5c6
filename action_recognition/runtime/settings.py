"""The inference pipeline's settings, declared once (see :mod:`action_recognition.settings`).

- :class:`ModelSettings`: which model file, an optional label file, and what the model must be
  (clip length, frame stride, input size; 0: whatever the model says);
- :class:`BackendSettings`: which backend runs it, where, in what precision, on how many threads;
  :func:`backend_problems` is the one set of rules for backend, device and precision;
- :class:`StreamSettings`: how a stream's windows are scheduled, scored and smoothed;
- :class:`InputSettings`: what images are accepted.

The node's parameters (:mod:`action_recognition.node.parameters`) and the flags of ``run`` are
derived from these fields; the pipeline (:mod:`action_recognition.runtime.pipeline`) takes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from action_recognition.data.images import DEFAULT_MAX_PIXELS
from action_recognition.settings import setting
from action_recognition.settings import Settings
from action_recognition.settings import SettingsError

__all__ = ['BACKEND_NAMES', 'PRECISIONS', 'OPENVINO_DEVICE_PATTERN', 'DEVICE_PATTERN',
           'SMOOTHING_MODES', 'ModelSettings', 'BackendSettings', 'StreamSettings',
           'InputSettings', 'backend_problems', 'precision_with_half']

#: What ``backend`` takes.
BACKEND_NAMES = ('auto', 'torch', 'onnxruntime', 'openvino')
PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
SMOOTHING_MODES = ('none', 'mean', 'ema')
#: The package's device strings for OpenVINO devices (``'cpu'`` is OpenVINO's ``CPU`` too).
OPENVINO_DEVICE_PATTERN = r'openvino:(CPU|GPU(\.\d+)?|NPU)'
DEVICE_PATTERN = rf'cpu|cuda(:\d+)?|{OPENVINO_DEVICE_PATTERN}'


@dataclass(frozen=True)
class ModelSettings(Settings):
    """Which model, and what it must be."""

    model_path: str = setting(
        '', 'Model file (.onnx, .pt checkpoint, or OpenVINO IR .xml with its .bin); empty: the '
        'shipped default model. A change reloads the model.', applies='reload',
        flags=('--model',))
    labels_path: str = setting(
        '', 'Optional label file (one label per line, or a JSON list) for a model without '
        'labels; labels stored in the model win.', applies='reload', flags=('--labels',))
    clip_length: int = setting(
        0, "Frames per clip; 0: the model's. Must match the model (start-up fails otherwise).",
        minimum=0, maximum=1024, applies='startup')
    frame_stride: int = setting(
        0, "Source frames between sampled frames; 0: the model's. Must match the model.",
        minimum=0, maximum=256, applies='startup')
    input_size: int = setting(
        0, "Network input side in pixels; 0: the model's. Must match the model.", minimum=0,
        maximum=4096, applies='startup')


def backend_problems(backend: str, device: str, precision: str) -> list[str]:
    """Why ``backend`` (``'auto'`` before the model file decides it) cannot run ``precision`` on
    ``device``; empty when it can. The one set of these rules: checked for the settings, and
    again at load once ``'auto'`` became a backend."""
    problems = []
    openvino_device = device.startswith('openvino:')
    if openvino_device and backend in ('torch', 'onnxruntime'):
        problems.append(f'device {device} is an OpenVINO device: it needs backend openvino (or '
                        f'auto), not {backend}')
    if backend == 'openvino' and device.startswith('cuda'):
        problems.append("backend openvino runs on 'cpu' or an 'openvino:' device (an NVIDIA "
                        f'GPU is torch or onnxruntime), not {device}')
    if precision == 'int8' and backend in ('torch', 'onnxruntime'):
        problems.append(f'precision=int8 needs backend openvino, not {backend} (or export with '
                        '--int8 for an int8 ONNX model)')
    if precision in ('bf16', 'fp16') and backend == 'onnxruntime':
        problems.append(f'precision={precision} needs backend torch or openvino (onnxruntime '
                        'runs the precision of the file: export with --fp16 or --int8)')
    if precision == 'fp16' and backend in ('torch', 'auto') and not openvino_device and \
            not device.startswith('cuda'):
        problems.append('precision=fp16 needs a CUDA device (torch) or backend openvino')
    return problems


@dataclass(frozen=True)
class BackendSettings(Settings):
    """Which backend runs the model, where, in what precision."""

    backend: str = setting(
        'auto', 'Inference backend; auto: from the model file (.pt torch, .onnx onnxruntime, '
        '.xml OpenVINO IR openvino), openvino for an openvino: device.', choices=BACKEND_NAMES,
        applies='reload')
    device: str = setting(
        'cpu', "'cpu', 'cuda[:N]' (torch, onnxruntime; ONNX Runtime on cuda tries TensorRT, then "
        "CUDA, then CPU) or 'openvino:CPU', 'openvino:GPU[.N]', 'openvino:NPU' (openvino; 'cpu' "
        'is its CPU too).', pattern=DEVICE_PATTERN, applies='reload',
        pattern_hint="'cpu', 'cuda' or 'cuda:N' (torch, onnxruntime), or 'openvino:DEVICE' "
                     '(DEVICE: CPU, GPU, GPU.N, NPU)')
    precision: str = setting(
        'fp32', 'Inference precision: fp32; fp16 (torch on CUDA, openvino GPU/NPU); bf16 '
        '(torch, openvino: CPUs with AVX512-BF16/AMX); int8 (openvino: a file already quantised '
        'runs as it is, any other is quantised with NNCF at load on 32 synthetic calibration '
        'clips: 3 s for the shipped model, 30 s for eco_lite_add at 16x224). onnxruntime runs '
        'the precision of the file (export --fp16/--int8). A change reloads the model.',
        choices=PRECISIONS, applies='reload')
    allow_5d: bool = setting(
        False, 'Run a model that is not 4D-only (rank-5 tensors or 3D convolutions in its '
        'graph); false: such a model is refused at load.', applies='reload')
    threads: int = setting(
        1, 'CPU threads for inference; 0: the library default (all cores). 1 measured best for '
        'the shipped model (see the README).', minimum=0, maximum=256, applies='reload')
    thread_spinning: bool = setting(
        False, 'Let idle ONNX Runtime threads busy-wait for work (threads > 1): slightly lower '
        'latency, much more CPU.', applies='reload')

    def rules(self) -> list[str]:
        return backend_problems(self.backend, self.device, self.precision)


def precision_with_half(precision: str, half: bool) -> str:
    """The precision the deprecated ``half`` flag asks for: ``'fp16'`` when set (with
    ``precision`` fp32 or fp16), else ``precision``; :class:`SettingsError` for a conflict."""
    if not half:
        return precision
    if precision not in ('fp32', 'fp16'):
        raise SettingsError(f'half=true and precision={precision}: choose one (half is '
                            'deprecated: use precision fp16)')
    return 'fp16'


@dataclass(frozen=True)
class StreamSettings(Settings):
    """How one stream's windows are scheduled, scored and smoothed.

    The fields below the settings are options for code: ``smoothing_window`` windows for
    ``'mean'``, ``ema_alpha`` for ``'ema'``, ``hysteresis`` ``(on, off)`` score thresholds for
    started/ended events (``None``: no events), ``window``, the frames a TSN (segments) clip
    covers (``None``: the spec's clip span), and ``schedule``: ``'hop'`` (a window every ``hop``
    frames) or ``'latest'`` (the latest window whenever the stream's driver asks for one: the
    node's ``inference_rate_hz``).
    """

    hop: int = setting(
        4, 'Run a new window every hop frames (ignored when inference_rate_hz > 0).', minimum=1,
        maximum=10000)
    score_threshold: float = setting(
        0.3, 'Labels scoring below this are left out of the results.', minimum=0.0,
        maximum=1.0, flags=('--score-threshold', '--threshold'))
    top_k: int = setting(5, 'Most labels reported per window.', minimum=1, maximum=1000)
    smoothing: str = setting('ema', 'Temporal smoothing of scores over windows.',
                             choices=SMOOTHING_MODES)
    max_gap_s: float = setting(
        1.0, 'A larger gap between image stamps restarts the clip buffer.', minimum=0.001,
        maximum=3600.0)
    smoothing_window: int = 4
    ema_alpha: float = 0.5
    hysteresis: tuple[float, float] | None = (0.5, 0.3)
    window: int | None = None
    schedule: str = 'hop'

    def rules(self) -> list[str]:
        problems = []
        if self.schedule not in ('hop', 'latest'):
            problems.append(f"schedule must be 'hop' or 'latest', got {self.schedule!r}")
        if self.smoothing_window < 1:
            problems.append(f'smoothing_window must be >= 1, got {self.smoothing_window}')
        if not 0.0 < self.ema_alpha <= 1.0:
            problems.append(f'ema_alpha must be in (0, 1], got {self.ema_alpha}')
        if self.hysteresis is not None:
            on, off = self.hysteresis
            if not 0.0 <= off <= on <= 1.0:
                problems.append(f'hysteresis needs 0 <= off <= on <= 1, got on={on}, '
                                f'off={off}')
        if self.window is not None and self.window < 1:
            problems.append(f'window must be >= 1, got {self.window}')
        return problems


@dataclass(frozen=True)
class InputSettings(Settings):
    """What images are accepted."""

    max_image_pixels: int = setting(
        DEFAULT_MAX_PIXELS, 'Largest image accepted, in pixels (width x height, read from the '
        'message or the JPEG/PNG header before decoding); larger images are dropped and '
        'counted in frames_oversized. Bounds the memory and time one message can cost. Run '
        "time: applies from the next image (nothing is sized from it); at most 2^30, OpenCV's "
        'own decoder limit.', minimum=1, maximum=2 ** 30)
