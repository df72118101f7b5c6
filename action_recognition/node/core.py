"""The ROS-free core of ``action_recognition_node``: parameters, frames in, results out.

The ROS node (``ros/node.py``, the only module that imports rclpy) is a thin shell around
:class:`NodeCore`:

- :data:`PARAMETERS` declares every node parameter once (type, default, description, range or
  choices, and when a change takes effect: at run time, by reloading the model on the worker,
  or only at start-up). :func:`parse_parameters` and :meth:`NodeCore.set_parameters` validate
  values and give a reason for every refusal.
- The subscription callback calls :meth:`NodeCore.on_image_msg` (or ``on_compressed_msg``): it
  converts the message with numpy and pushes the frame into the recogniser's clip buffer; a bad
  frame is counted and logged (throttled). Nothing else runs in the callback.
- :class:`InferenceWorker` runs :meth:`NodeCore.step` on its own thread: a pending model reload
  first, then the latest due clip only (a clip superseded before it ran is dropped and counted by
  the recogniser; no queue builds up). In ``inference_rate_hz`` mode the latest clip runs at that
  rate instead of every ``hop`` frames.
- :meth:`NodeCore.diagnostics` summarises input rate, inference rate, latency p50/p99, dropped
  frames and clips, backend and device, with WARN when the input stops or inference falls behind
  and ERROR on inference errors or a failed model reload.
"""

from __future__ import annotations

from collections import Counter
from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
import json
import logging
import os
from pathlib import Path
import re
import threading
import time
from typing import Any
from typing import Literal

import numpy as np

from action_recognition.data.images import compressed_msg_to_rgb
from action_recognition.data.images import DEFAULT_MAX_PIXELS
from action_recognition.data.images import describe_error
from action_recognition.data.images import image_msg_to_rgb
from action_recognition.data.images import ImageDecodeError
from action_recognition.runtime.sinks import annotate
from action_recognition.runtime.sinks import RecognitionRecord
from action_recognition.runtime.sinks import StampLedger

__all__ = [
    'ParameterDefinition', 'PARAMETERS', 'NodeParameters', 'ParameterError', 'parse_parameters',
    'validate_value', 'NodeCore', 'NodeResult', 'DiagnosticsReport', 'InferenceWorker',
    'load_labels', 'OK', 'WARN', 'ERROR',
]

LOGGER = logging.getLogger('action_recognition.node')

DEBUG_FRAMES = 8  # accepted frames kept for ~/debug_image while it has subscribers
LOSS_WARN_FRACTION = 0.05  # WARN when more of the images since the last report went missing

OK, WARN, ERROR = 0, 1, 2

Applies = Literal['runtime', 'reload', 'startup']
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
    ParameterDefinition('backend', 'auto', 'Inference backend; auto: from the model file.',
                        choices=('auto', 'torch', 'onnxruntime'), applies='reload'),
    ParameterDefinition('device', 'cpu', "'cpu' or 'cuda[:N]' (ONNX Runtime on cuda tries "
                        'TensorRT, then CUDA, then CPU).', applies='reload'),
    ParameterDefinition('half', False, 'fp16 inference (torch backend on CUDA only).',
                        applies='reload'),
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
_DEVICE = re.compile(r'^(cpu|cuda(:\d+)?)$')


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
    smoothing: str = 'ema'
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
            return None, f"device must be 'cpu', 'cuda' or 'cuda:N', got {value!r}"
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
    if problems:
        raise ParameterError('; '.join(problems))
    return params


def load_labels(path: str | os.PathLike[str]) -> list[str]:
    """Labels from a file: a JSON list, or one label per line (blank lines and ``#`` skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'labels file {path} does not exist')
    text = path.read_text(encoding='utf-8')
    if text.lstrip().startswith('['):
        data = json.loads(text)
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise ValueError(f'labels file {path}: expected a JSON list of strings')
        return [str(x) for x in data]
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


@dataclass
class NodeResult:
    """One recognition, ready to publish.

    Attributes:
        record: frame index, exact stamp (ns), frame_id and top-k ``(label, score)`` pairs.
        events: started/ended events as ``'started:<label>'`` strings.
        latency_s: seconds from the clip's last frame arriving to the result.
    """

    record: RecognitionRecord
    events: list[str]
    latency_s: float


class SequenceMonitor:
    """Estimates images lost before they reached the node from gaps in their header stamps.

    The expected period is the median of the latest intervals between stamps; an interval of
    more than 1.5 periods (and at most ``max_gap_ns``, above which the stream restarts rather
    than loses images) counts ``round(interval / period) - 1`` missing images. Stamps going
    backwards are a restart too. Transport losses (best effort over DDS dropping fragments of
    large raw images) are otherwise invisible to the node.
    """

    def __init__(self, history: int = 31) -> None:
        self._intervals: deque[int] = deque(maxlen=history)
        self._last: int | None = None
        self.period_ns = 0.0
        self.missing = 0
        self.gaps = 0

    def add(self, stamp_ns: int, *, max_gap_ns: int) -> None:
        last, self._last = self._last, stamp_ns
        if last is None or stamp_ns <= last:
            return
        interval = stamp_ns - last
        if interval > max_gap_ns:
            return
        if len(self._intervals) >= 5 and interval > 1.5 * self.period_ns > 0:
            self.missing += max(1, round(interval / self.period_ns) - 1)
            self.gaps += 1
        else:
            self._intervals.append(interval)
            self.period_ns = float(np.median(self._intervals))


@dataclass
class DiagnosticsReport:
    """What ``/diagnostics`` says: level (0 OK, 1 WARN, 2 ERROR), message, key/values."""

    level: int
    message: str
    values: dict[str, str]


class _Throttle:
    def __init__(self, logger: logging.Logger, period_s: float = 5.0) -> None:
        self.logger = logger
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def warning(self, key: str, message: str) -> None:
        now = time.monotonic()
        if key in self._last and now - self._last[key] < self.period_s:
            self._suppressed[key] += 1
            return
        suppressed = self._suppressed.pop(key, 0)
        self.logger.warning(message + (f' ({suppressed} similar suppressed)' if suppressed
                                       else ''))
        self._last[key] = now


@dataclass
class _Model:
    backend: Any
    recognizer: Any
    path: Path
    labels: tuple[str, ...]
    params: NodeParameters  # the parameters this model was loaded with


def _percentile(values: Any, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


class NodeCore:
    """Frames in, recognitions out, parameters validated, diagnostics kept (no ROS).

    Args:
        params: validated parameters (:func:`parse_parameters`).
        clock: monotonic seconds (injected by tests).
        load: ``load_backend``-like callable (injected by tests).

    Raises :class:`~action_recognition.runtime.backends.ModelLoadError` at construction when
    the model is missing or incompatible with the parameters (start-up fails fast).
    """

    def __init__(self, params: NodeParameters, *, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 load: Callable[..., Any] | None = None) -> None:
        self.logger = logger or LOGGER
        self.clock = clock
        self._load_fn = load
        self.params = params
        self._lock = threading.Lock()
        self._throttle = _Throttle(self.logger)
        self.model = self._load_model_checked(params)
        self._ledger = StampLedger(capacity=max(1024, 4 * self.model.recognizer.buffer.capacity))
        self._pending_reload: NodeParameters | None = None
        self._released = False
        self.reload_error: str | None = None
        # Called (on the worker thread) with the reload parameters a failed reload set back to
        # the values of the running model, so that the ROS shell can revert its parameters.
        self.on_revert: Callable[[dict[str, ParameterValue]], None] | None = None
        self.reloads = 0
        self.wake = threading.Event()
        # statistics
        self.frames_received = 0
        self.frames_undecodable: Counter[str] = Counter()
        self.frames_disabled = 0
        self.recognitions = 0
        self._sequence = SequenceMonitor()
        self._latencies: deque[float] = deque(maxlen=500)
        self._last_frame_time: float | None = None
        self._last_run_time: float | None = None
        self._started = clock()
        self._previous: dict[str, int] = {}
        self._previous_kinds: dict[str, int] = {}
        self._drop_reasons: dict[str, str] = {}  # the latest whole reason of each drop kind
        self._previous_time = self._started
        # The ROS shell sets debug_enabled while ~/debug_image has subscribers; then the last few
        # accepted frames are kept (by stream index) so that a result's debug image shows the
        # window's own last frame, whose stamp it carries.
        self.debug_enabled = False
        self._debug_frames: deque[tuple[int, np.ndarray]] = deque(maxlen=DEBUG_FRAMES)
        self._retired: dict[str, int] = {'frames_dropped': 0, 'clips_dropped': 0, 'errors': 0,
                                         'clips_run': 0}

    # -- model --------------------------------------------------------------------------------

    def _load_model_checked(self, params: NodeParameters) -> _Model:
        """:meth:`_load_model`, with every failure turned into a ``ModelLoadError``."""
        from action_recognition.runtime.backends import ModelLoadError

        try:
            return self._load_model(params)
        except ModelLoadError:
            raise
        except Exception as error:  # MemoryError, a library's own error: still a load error
            raise ModelLoadError(f'cannot load the model: {type(error).__name__}: '
                                 f'{error}') from error

    def _load_model(self, params: NodeParameters) -> _Model:
        from action_recognition.runtime.backends import load_backend
        from action_recognition.runtime.backends import ModelLoadError
        from action_recognition.runtime.run import build_recognizer
        from action_recognition.runtime.run import default_model_path

        if params.model_path:
            path = Path(os.path.expanduser(params.model_path))
        else:
            try:
                path = default_model_path()
            except FileNotFoundError as error:
                raise ModelLoadError(f'model_path is empty and {error}') from error
        load = self._load_fn or load_backend
        backend = load(path, backend=params.backend, device=params.device, half=params.half,
                       threads=params.threads or None, allow_5d=params.allow_5d,
                       spinning=params.thread_spinning, logger=self.logger)
        spec = backend.spec
        problems = []
        if params.clip_length and params.clip_length != spec.num_frames:
            problems.append(f"clip_length {params.clip_length} != the model's {spec.num_frames}")
        if params.frame_stride and params.frame_stride != spec.frame_stride:
            problems.append(
                f"frame_stride {params.frame_stride} != the model's {spec.frame_stride}")
        if params.input_size and (params.input_size, params.input_size) != tuple(spec.input_size):
            problems.append(f"input_size {params.input_size} != the model's "
                            f'{spec.input_size[0]}x{spec.input_size[1]}')
        if not spec.labels and params.labels_path:
            try:
                labels = load_labels(params.labels_path)
            except (OSError, ValueError) as error:
                problems.append(str(error))
            else:
                if len(labels) != spec.num_classes:
                    problems.append(f'labels file {params.labels_path} has {len(labels)} labels '
                                    f'for a model with {spec.num_classes} outputs')
                else:
                    backend.spec = replace(spec, labels=tuple(labels))
        elif spec.labels and params.labels_path:
            self.logger.info(f'labels_path {params.labels_path} ignored: {path} carries its '
                             'own labels')
        if problems:
            _close(backend)
            raise ModelLoadError(f'model {path} is incompatible with the parameters: '
                                 + '; '.join(problems))
        recognizer = build_recognizer(backend, hop=params.hop, top_k=params.top_k,
                                      threshold=params.score_threshold,
                                      smoothing=params.smoothing)
        recognizer.buffer.max_gap_s = params.max_gap_s
        if params.inference_rate_hz > 0:
            recognizer.hop = 1
        spec = backend.spec
        self.logger.info(
            f'loaded {path}: {spec.model}, {spec.num_classes} classes, {spec.num_frames} frames '
            f'(stride {spec.frame_stride}) of {spec.input_size[0]}x{spec.input_size[1]}, '
            f'backend {getattr(backend, "name", params.backend)} on {params.device}')
        return _Model(backend, recognizer, path, spec.label_names, params)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @property
    def recognizer(self) -> Any:
        return self.model.recognizer

    # -- parameters ---------------------------------------------------------------------------

    def set_parameters(self, changes: Mapping[str, Any]) -> tuple[bool, str]:
        """Validate and apply run-time changes; ``(successful, reason)``.

        Start-up parameters are refused; model parameters are checked here (the file must
        exist) and reloaded on the worker; the others apply at once.
        """
        startup = [name for name in changes
                   if name in _BY_NAME and _BY_NAME[name].applies == 'startup'
                   and changes[name] != getattr(self.params, name)]
        if startup:
            return False, (f'{", ".join(sorted(startup))} can only be set at start-up '
                           '(restart the node)')
        try:
            new = parse_parameters(changes, base=self.params)
        except ParameterError as error:
            return False, str(error)
        if new.model_path and new.model_path != self.params.model_path:
            candidate = Path(os.path.expanduser(new.model_path))
            if not candidate.is_file():
                return False, f'model_path {new.model_path} does not exist'
        if new.labels_path and new.labels_path != self.params.labels_path and \
                not Path(new.labels_path).is_file():
            return False, f'labels_path {new.labels_path} does not exist'
        reload = any(getattr(new, d.name) != getattr(self.params, d.name)
                     for d in PARAMETERS if d.applies == 'reload')
        with self._lock:
            self._apply_runtime(new)
            self.params = new
            if reload:
                self._pending_reload = new
        if reload:
            self.wake.set()
            return True, 'model reload scheduled'
        return True, ''

    def _apply_runtime(self, params: NodeParameters) -> None:
        recognizer = self.model.recognizer
        recognizer.top_k = params.top_k
        recognizer.score_threshold = params.score_threshold
        if params.smoothing != recognizer.smoothing:
            recognizer.smoothing = params.smoothing
        recognizer.hop = 1 if params.inference_rate_hz > 0 else params.hop

    def _reload_if_pending(self) -> None:
        with self._lock:
            pending, self._pending_reload = self._pending_reload, None
        if pending is None:
            return
        try:
            model = self._load_model_checked(pending)
        except Exception as error:  # any failure keeps the running model (MemoryError too)
            reason = str(error)
            with self._lock:
                running = self.model.params
                reverted: dict[str, ParameterValue] = {
                    d.name: getattr(running, d.name) for d in PARAMETERS
                    if d.applies == 'reload'
                    and getattr(self.params, d.name) != getattr(running, d.name)}
                self.params = replace(self.params, **reverted)  # type: ignore[arg-type]
            shown = ', '.join(f'{name}={value!r}' for name, value in reverted.items())
            self.reload_error = (f'model reload failed, keeping {self.model.path}: {reason}; '
                                 f'parameters reverted to what runs ({shown})')
            self.logger.error(self.reload_error)
            if self.on_revert is not None and reverted:
                self.on_revert(reverted)
            return
        self._swap(model)
        self.reload_error = None
        self.reloads += 1

    def _swap(self, model: _Model) -> None:
        """Put ``model`` in place of the running one (counters carried over) and close the
        old one's backend."""
        with self._lock:
            old = self.model
            for key in self._retired:
                self._retired[key] += int(getattr(old.recognizer, key))
            self.model = model
            self._apply_runtime(self.params)
        if old is not model:
            _close(old.backend)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def released(self) -> bool:
        """Whether :meth:`release_accelerator` freed the model (:meth:`resume` reloads it)."""
        return self._released

    def release_accelerator(self) -> bool:
        """Free accelerator memory while the node is inactive (lifecycle ``deactivate``).

        A model on a GPU (or another accelerator) is closed and reloaded by :meth:`resume`; a
        CPU model stays loaded (there is no accelerator memory to free, and reactivation is
        immediate). Returns whether the model was released.
        """
        device = str(getattr(self.model.backend, 'device', self.params.device))
        if device == 'cpu' or self._released:
            return False
        _close(self.model.backend)
        self._released = True
        self.logger.info(f'released the model on {device} (reloaded on activation)')
        return True

    def resume(self) -> None:
        """Reload a model freed by :meth:`release_accelerator`; ``ModelLoadError`` if it fails.
        """
        if not self._released:
            return
        self._swap(self._load_model_checked(self.params))
        self._released = False

    def close(self) -> None:
        """Release the model (lifecycle ``cleanup``/``shutdown``); the core is done."""
        if not self._released:
            _close(self.model.backend)
            self._released = True

    # -- frames in (subscription callback) ----------------------------------------------------

    def on_frame(self, image: np.ndarray, stamp_ns: int, frame_id: str) -> bool:
        """Push one ``uint8`` RGB ``[H, W, 3]`` frame; returns whether a clip is now due.

        A frame of more than ``max_image_pixels`` pixels is dropped and counted as
        ``'oversized'``. Only the frame just pushed is kept (for :meth:`debug_image`).
        """
        shape: tuple[int, ...] = tuple(getattr(image, 'shape', ()))
        if len(shape) >= 2 and shape[0] * shape[1] > self.params.max_image_pixels:
            return self._drop_message(
                f'the frame is {shape[1]}x{shape[0]} = {shape[0] * shape[1]} pixels, more than '
                f'the limit of {self.params.max_image_pixels} pixels', 'oversized',
                stamp_ns=stamp_ns)
        self._received(stamp_ns)
        if not self.params.enabled:
            self.frames_disabled += 1
            self._debug_frames.clear()
            return False
        index = self.frames_received - 1
        with self._lock:
            recognizer = self.model.recognizer
            stamp = self._ledger.add(int(stamp_ns), index)
        refused = recognizer.frames_dropped
        due = bool(recognizer.submit_frame(image, stamp, frame_id))
        if not self.debug_enabled:
            self._debug_frames.clear()
        elif recognizer.frames_dropped == refused:  # a refused frame is not kept
            self._debug_frames.append((index, image))
        if due or self.params.inference_rate_hz > 0:
            self.wake.set()
        return due

    def _received(self, stamp_ns: int | None) -> None:
        now = self.clock()
        self.frames_received += 1
        self._last_frame_time = now
        if stamp_ns is not None:
            self._sequence.add(int(stamp_ns), max_gap_ns=int(self.params.max_gap_s * 1e9))

    def _drop_message(self, reason: str, kind: str = 'decoder error', *,
                      stamp_ns: int | None = None) -> bool:
        """Count an image that could not be used under ``kind`` (a short key, e.g.
        ``'oversized'``) and log ``reason`` (the whole sentence; throttled per kind)."""
        self._received(stamp_ns)
        with self._lock:
            self.frames_undecodable[kind] += 1
            self._drop_reasons[kind] = reason
        hint = ' (the limit is the max_image_pixels parameter)' if kind == 'oversized' else ''
        self._throttle.warning(f'decode:{kind}', f'dropping image ({kind}): {reason}{hint}')
        return False

    def on_image_msg(self, msg: Any, stamp_ns: int | None = None) -> bool:
        """Convert a ``sensor_msgs/Image`` and push it; a bad image is counted and dropped.

        Nothing raised by the conversion escapes: an unexpected error (``cv2.error``,
        ``MemoryError``, a malformed message) is counted as ``'decoder error'``.
        """
        return self._on_msg(msg, image_msg_to_rgb, stamp_ns)

    def on_compressed_msg(self, msg: Any, stamp_ns: int | None = None) -> bool:
        """Decode a ``sensor_msgs/CompressedImage`` and push it; bad data is counted, dropped.

        Nothing raised by the decoding escapes (see :meth:`on_image_msg`).
        """
        return self._on_msg(msg, compressed_msg_to_rgb, stamp_ns)

    def _on_msg(self, msg: Any, convert: Callable[..., np.ndarray],
                stamp_ns: int | None) -> bool:
        try:
            stamp_ns = _stamp_ns(msg) if stamp_ns is None else stamp_ns
            frame_id = _frame_id(msg)
        except Exception as error:  # a message without a usable header
            return self._drop_message(f'its header cannot be read: {describe_error(error)}',
                                      'bad header')
        try:
            image = convert(msg, max_pixels=self.params.max_image_pixels)
        except ImageDecodeError as error:
            return self._drop_message(str(error), error.kind, stamp_ns=stamp_ns)
        except Exception as error:  # the subscription callback must survive any message
            return self._drop_message(f'converting the image raised {describe_error(error)}',
                                      'decoder error', stamp_ns=stamp_ns)
        return self.on_frame(image, stamp_ns, frame_id)

    # -- inference (worker) -------------------------------------------------------------------

    def seconds_until_due(self) -> float | None:
        """In ``inference_rate_hz`` mode, seconds until the next run may start; else ``None``."""
        rate = self.params.inference_rate_hz
        if rate <= 0:
            return None
        if self._last_run_time is None:
            return 0.0
        return max(0.0, self._last_run_time + 1.0 / rate - self.clock())

    def step(self) -> NodeResult | None:
        """Apply a pending reload, then run the latest due clip; the worker calls this."""
        self._reload_if_pending()
        if not self.params.enabled:
            return None
        wait = self.seconds_until_due()
        if wait is not None and wait > 0:
            return None
        with self._lock:
            recognizer = self.model.recognizer
        result = recognizer.run_latest()
        if result is None:
            return None
        now = self.clock()
        self._last_run_time = now
        self._latencies.append(float(result.latency_s))
        self.recognitions += 1
        with self._lock:
            record = self._ledger.record(stamp=result.stamp, frame_id=result.frame_id,
                                         frame_index=result.frame_index, top=result.top,
                                         events=result.events)
        return NodeResult(record=record, events=list(record.events),
                          latency_s=float(result.latency_s))

    def debug_image(self, result: NodeResult) -> np.ndarray | None:
        """The last frame of ``result``'s window with its labels drawn, so that the pixels
        belong to the stamp the result carries; ``None`` when that frame is no longer kept (or
        :attr:`debug_enabled` was off when it arrived)."""
        for index, frame in reversed(self._debug_frames):
            if index == result.record.frame:
                return annotate(frame, result.record.top)
        return None

    # -- diagnostics --------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """Totals over the node's life (across model reloads)."""
        recognizer = self.model.recognizer
        totals = {key: self._retired[key] + int(getattr(recognizer, key))
                  for key in self._retired}
        totals['frames_undecodable'] = sum(self.frames_undecodable.values())
        totals['frames_received'] = self.frames_received
        totals['recognitions'] = self.recognitions
        totals['frames_missing'] = self._sequence.missing
        return totals

    def _drop_summary(self, kinds_delta: Mapping[str, int]) -> str:
        """``'12 oversized (the frame is ... pixels ...); 3 truncated data (...)'``."""
        return '; '.join(f'{count} {kind} ({self._drop_reasons.get(kind, "see the log")})'
                         for kind, count in sorted(kinds_delta.items(), key=lambda kv: -kv[1]))

    def diagnostics(self) -> DiagnosticsReport:
        """The status for ``/diagnostics``; compares counters with the previous call.

        Rates are counts since the previous call divided by the time since it (exact at any
        rate, no window to saturate).
        """
        now = self.clock()
        params = self.params
        counters = self.counters()
        delta = {key: value - self._previous.get(key, 0) for key, value in counters.items()}
        self._previous = counters
        with self._lock:
            kinds = dict(self.frames_undecodable)
        kinds_delta = {kind: count - self._previous_kinds.get(kind, 0)
                       for kind, count in kinds.items()
                       if count > self._previous_kinds.get(kind, 0)}
        self._previous_kinds = kinds
        elapsed = max(now - self._previous_time, 1e-9)
        self._previous_time = now
        input_hz = delta['frames_received'] / elapsed
        inference_hz = delta['recognitions'] / elapsed
        latencies = list(self._latencies)
        backend = self.model.backend
        values = {
            'input_rate_hz': f'{input_hz:.2f}',
            'inference_rate_hz': f'{inference_hz:.2f}',
            'latency_p50_ms': f'{_percentile(latencies, 50) * 1e3:.1f}',
            'latency_p99_ms': f'{_percentile(latencies, 99) * 1e3:.1f}',
            'frames_received': str(counters['frames_received']),
            'frames_dropped': str(counters['frames_dropped'] + counters['frames_undecodable']),
            'frames_undecodable': str(counters['frames_undecodable']),
            'frames_oversized': str(kinds.get('oversized', 0)),
            'frames_missing': str(counters['frames_missing']),
            'input_gaps': str(self._sequence.gaps),
            'clips_run': str(counters['clips_run']),
            'clips_dropped': str(counters['clips_dropped']),
            'inference_errors': str(counters['errors']),
            'recognitions': str(counters['recognitions']),
            'backend': str(getattr(backend, 'name', params.backend)),
            'device': str(getattr(backend, 'device', params.device)),
            'model': str(self.model.path),
            'enabled': str(params.enabled).lower(),
            'model_reloads': str(self.reloads),
        }
        if self.reload_error is not None:
            return DiagnosticsReport(ERROR, self.reload_error, values)
        if delta['errors'] > 0:
            return DiagnosticsReport(ERROR, f'{delta["errors"]} inference errors since the last '
                                     'report (see the log); still running', values)
        if not params.enabled:
            return DiagnosticsReport(OK, 'disabled (enabled:=false)', values)
        if self._last_frame_time is None:
            if now - self._started > params.stale_input_s:
                return DiagnosticsReport(WARN, 'no image received yet', values)
            return DiagnosticsReport(OK, 'waiting for images', values)
        silent = now - self._last_frame_time
        if silent > params.stale_input_s:
            return DiagnosticsReport(WARN, f'no image for {silent:.1f} s', values)
        if delta['frames_undecodable'] > 0 and delta['frames_undecodable'] >= \
                delta['frames_received']:
            return DiagnosticsReport(WARN, 'every image since the last report was dropped: '
                                     + self._drop_summary(kinds_delta), values)
        if delta['frames_missing'] > 0 and delta['frames_missing'] >= LOSS_WARN_FRACTION * (
                delta['frames_missing'] + delta['frames_received']):
            total = delta['frames_missing'] + delta['frames_received']
            return DiagnosticsReport(
                WARN, f'about {delta["frames_missing"]} of {total} images were lost before '
                'they reached the node since the last report (gaps in the header stamps at '
                f'{self._sequence.period_ns / 1e6:.1f} ms per image); raw full-resolution '
                'images over best effort lose fragments: use qos_reliability: reliable or '
                'image_transport: compressed', values)
        if params.inference_rate_hz > 0:
            if counters['recognitions'] > 1 and now - self._started > 2.0 / \
                    params.inference_rate_hz and inference_hz < 0.8 * params.inference_rate_hz \
                    and input_hz >= params.inference_rate_hz:
                return DiagnosticsReport(WARN, f'inference falls behind: {inference_hz:.1f} Hz '
                                         f'of {params.inference_rate_hz:.1f} Hz', values)
        elif delta['clips_dropped'] > 0 and delta['clips_dropped'] >= delta['clips_run']:
            return DiagnosticsReport(WARN, f'inference falls behind: {delta["clips_dropped"]} '
                                     f'windows dropped, {delta["clips_run"]} run since the last '
                                     'report', values)
        return DiagnosticsReport(OK, 'running', values)


def _close(backend: Any) -> None:
    close = getattr(backend, 'close', None)
    if callable(close):
        close()


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _frame_id(msg: Any) -> str:
    return str(msg.header.frame_id)


class InferenceWorker:
    """Runs :meth:`NodeCore.step` on its own thread and hands results to ``publish``.

    It sleeps until the core's ``wake`` event is set (a clip became due, a reload was asked) or
    ``idle_s`` passes; in ``inference_rate_hz`` mode it also wakes for the next run. Exceptions
    from ``publish`` are logged and do not stop the thread.
    """

    def __init__(self, core: NodeCore, publish: Callable[[NodeResult], None], *,
                 idle_s: float = 0.1) -> None:
        self.core = core
        self.publish = publish
        self.idle_s = idle_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name='action_recognition_worker',
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.core.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        core = self.core
        while not self._stop.is_set():
            wait = core.seconds_until_due()
            timeout = self.idle_s if wait is None else min(self.idle_s, max(wait, 0.001))
            core.wake.wait(timeout)
            core.wake.clear()
            if self._stop.is_set():
                break
            try:
                result = core.step()
                if result is not None:
                    self.publish(result)
            except Exception as error:  # the worker must outlive any single failure
                core.logger.error(f'inference worker: {type(error).__name__}: {error}')


def parameter_names() -> list[str]:
    """Every parameter name, in declaration order."""
    return [d.name for d in PARAMETERS]


assert [f.name for f in fields(NodeParameters)] == parameter_names(), \
    'NodeParameters and PARAMETERS must list the same parameters in the same order'
assert all(getattr(NodeParameters(), d.name) == d.default for d in PARAMETERS), \
    'NodeParameters defaults must equal PARAMETERS defaults'
