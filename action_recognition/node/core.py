"""The ROS-free core of ``action_recognition_node``: frames in, recognitions out.

The ROS node (``ros/node.py``, the only module that imports rclpy) is a thin shell around
:class:`NodeCore`:

- the subscription callback calls :meth:`NodeCore.on_image_msg` (or ``on_compressed_msg``): the
  message is converted once with numpy (its size checked first) and the frame goes into the
  recogniser's ring with its stamp in integer nanoseconds; a bad image is counted by kind and
  logged (throttled). Nothing else runs in the callback.
- the :class:`~action_recognition.node.worker.InferenceWorker` runs :meth:`NodeCore.step` on its
  own thread: a pending model reload first, then the latest due window only (a window superseded
  before it ran is dropped and counted; no queue builds up). The result is the recogniser's
  :class:`~action_recognition.runtime.recognizer.Recognition`, which the shell publishes.
- parameters (:mod:`action_recognition.node.parameters`) are validated with a reason for every
  refusal; reload-type changes reload the model on the worker, and a failed reload keeps the
  running model and sets those parameters back (:attr:`NodeCore.on_revert`).
- :meth:`NodeCore.diagnostics` reports through :mod:`action_recognition.node.diagnostics`.
"""

from __future__ import annotations

from collections import Counter
from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace
import logging
import os
from pathlib import Path
import threading
import time
from typing import Any

import numpy as np

from action_recognition.data.images import compressed_msg_to_rgb
from action_recognition.data.images import describe_error
from action_recognition.data.images import image_msg_to_rgb
from action_recognition.data.images import ImageDecodeError
from action_recognition.io.model_files import default_model_path
from action_recognition.io.model_files import load_labels
from action_recognition.logs import Throttle
from action_recognition.node.diagnostics import Diagnostics
from action_recognition.node.diagnostics import DiagnosticsReport
from action_recognition.node.diagnostics import SequenceMonitor
from action_recognition.node.diagnostics import Snapshot
from action_recognition.node.parameters import definition_of
from action_recognition.node.parameters import NodeParameters
from action_recognition.node.parameters import ParameterError
from action_recognition.node.parameters import PARAMETERS
from action_recognition.node.parameters import ParameterValue
from action_recognition.node.parameters import parse_parameters
from action_recognition.runtime.annotate import annotate
from action_recognition.runtime.backends import load_backend
from action_recognition.runtime.protocol import Backend
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.recognizer import Recognition
from action_recognition.runtime.recognizer import Recognizer
from action_recognition.runtime.run import build_recognizer

__all__ = ['NodeCore', 'DEBUG_FRAMES']

LOGGER = logging.getLogger('action_recognition.node')

DEBUG_FRAMES = 8  # accepted frames kept for ~/debug_image while it has subscribers


@dataclass
class _Model:
    backend: Backend
    recognizer: Recognizer
    path: Path
    labels: tuple[str, ...]
    params: NodeParameters  # the parameters this model was loaded with


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
        self._throttle = Throttle(self.logger)
        self.model = self._load_model_checked(params)
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
        self._diagnostics = Diagnostics(self._started)
        self._drop_reasons: dict[str, str] = {}  # the latest whole reason of each drop kind
        # The ROS shell sets debug_enabled while ~/debug_image has subscribers; then the last few
        # accepted frames are kept (by source index) so that a result's debug image shows the
        # window's own last frame, whose stamp it carries.
        self.debug_enabled = False
        self._debug_frames: deque[tuple[int, np.ndarray]] = deque(maxlen=DEBUG_FRAMES)
        self._retired: dict[str, int] = {'frames_dropped': 0, 'clips_dropped': 0, 'errors': 0,
                                         'clips_run': 0}

    # -- model --------------------------------------------------------------------------------

    def _load_model_checked(self, params: NodeParameters) -> _Model:
        """:meth:`_load_model`, with every failure turned into a ``ModelLoadError``."""
        try:
            return self._load_model(params)
        except ModelLoadError:
            raise
        except Exception as error:  # MemoryError, a library's own error: still a load error
            raise ModelLoadError(f'cannot load the model: {type(error).__name__}: '
                                 f'{error}') from error

    def _load_model(self, params: NodeParameters) -> _Model:
        if params.model_path:
            path = Path(os.path.expanduser(params.model_path))
        else:
            try:
                path = default_model_path()
            except FileNotFoundError as error:
                raise ModelLoadError(f'model_path is empty and {error}') from error
        load = self._load_fn or load_backend
        backend = load(path, backend=params.backend, device=params.device, half=params.half,
                       precision=params.precision, threads=params.threads or None,
                       allow_5d=params.allow_5d, spinning=params.thread_spinning,
                       logger=self.logger)
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
    def recognizer(self) -> Recognizer:
        return self.model.recognizer

    # -- parameters ---------------------------------------------------------------------------

    def set_parameters(self, changes: Mapping[str, Any]) -> tuple[bool, str]:
        """Validate and apply run-time changes; ``(successful, reason)``.

        Start-up parameters are refused; model parameters are checked here (the file must
        exist) and reloaded on the worker; the others apply at once.
        """
        startup = [name for name in changes
                   if (definition := definition_of(name)) is not None
                   and definition.applies == 'startup'
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
        refused = recognizer.frames_dropped
        due = recognizer.submit(image, int(stamp_ns), frame_id, index=index)
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

    def step(self) -> Recognition | None:
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
        return result

    def debug_image(self, result: Recognition) -> np.ndarray | None:
        """The last frame of ``result``'s window with its labels drawn, so that the pixels
        belong to the stamp the result carries; ``None`` when that frame is no longer kept (or
        :attr:`debug_enabled` was off when it arrived)."""
        for index, frame in reversed(self._debug_frames):
            if index == result.frame_index:
                return annotate(frame, result.top)
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

    def diagnostics(self) -> DiagnosticsReport:
        """The status for ``/diagnostics``; compares counters with the previous call."""
        backend = self.model.backend
        with self._lock:
            kinds = dict(self.frames_undecodable)
            reasons = dict(self._drop_reasons)
        return self._diagnostics.report(Snapshot(
            now=self.clock(), started=self._started, last_frame_time=self._last_frame_time,
            counters=self.counters(), drop_kinds=kinds, drop_reasons=reasons,
            latencies=list(self._latencies), input_gaps=self._sequence.gaps,
            period_ns=self._sequence.period_ns,
            backend=str(getattr(backend, 'name', self.params.backend)),
            device=str(getattr(backend, 'device', self.params.device)),
            model=str(self.model.path), params=self.params, reload_error=self.reload_error,
            reloads=self.reloads))


def _close(backend: Any) -> None:
    close = getattr(backend, 'close', None)
    if callable(close):
        close()


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _frame_id(msg: Any) -> str:
    return str(msg.header.frame_id)
