"""The ROS-free core of ``action_recognition_node``: images in, recognitions out.

The ROS node (``ros/node.py``, the only module that imports rclpy) is a thin shell around
:class:`NodeCore`, which puts together one part per concern:

- :class:`~action_recognition.node.intake.FrameIntake` (subscription thread): a message is
  decoded once and checked (its size before decoding), a bad one counted by kind and logged;
- :class:`~action_recognition.node.slot.ModelSlot`: the running model and its recogniser (the
  pipeline of :mod:`action_recognition.runtime.pipeline`), reloads on the worker, reverts,
  release and resume;
- :class:`~action_recognition.node.scheduler.Scheduler`: when the worker runs (a window due
  every ``hop`` frames, or ``inference_rate_hz``), and the event that wakes it;
- :class:`~action_recognition.node.diagnostics.Diagnostics`: what ``/diagnostics`` says.

A frame's way: :meth:`NodeCore.on_image_msg` -> the intake's checked
:class:`~action_recognition.runtime.frames.Frame` -> :meth:`Recognizer.submit
<action_recognition.runtime.recognizer.Recognizer.submit>` (prepared once into the stream's
ring) -> the scheduler wakes the worker -> :meth:`NodeCore.step` runs the due windows in one
backend call -> :class:`~action_recognition.runtime.results.Recognition` results, which the
shell publishes. Parameters (:mod:`action_recognition.node.parameters`) are validated with a
reason for every refusal; a reload-type change reloads the model on the worker, and a failed
reload keeps the running model and sets those parameters back (``on_revert``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import replace
import logging
from pathlib import Path
import threading
import time
from typing import Any

import numpy as np

from action_recognition.node.diagnostics import Diagnostics
from action_recognition.node.diagnostics import DiagnosticsReport
from action_recognition.node.diagnostics import Snapshot
from action_recognition.node.intake import FrameIntake
from action_recognition.node.parameters import changed_names
from action_recognition.node.parameters import definition_of
from action_recognition.node.parameters import NodeSettings
from action_recognition.node.parameters import ParameterError
from action_recognition.node.parameters import parse_parameters
from action_recognition.node.scheduler import Scheduler
from action_recognition.node.slot import ModelSlot
from action_recognition.node.slot import RELOAD_PARAMETERS
from action_recognition.runtime.annotate import annotate
from action_recognition.runtime.frames import BAD_FRAME
from action_recognition.runtime.frames import Frame
from action_recognition.runtime.protocol import Backend
from action_recognition.runtime.results import Recognition
from action_recognition.settings import SettingValue

__all__ = ['NodeCore']

LOGGER = logging.getLogger('action_recognition.node')


class NodeCore:
    """Frames in, recognitions out, parameters validated, diagnostics kept (no ROS).

    Args:
        settings: validated parameters (:func:`~action_recognition.node.parameters.
            parse_parameters`).
        clock: monotonic seconds (injected by tests).
        load: a ``load_backend``-like callable (injected by tests).
        on_revert: called on the worker thread with the parameters a failed reload set back to
            the running model's values, so that the ROS shell sets them back too.
        on_labels: called with ``(labels, score threshold)`` whenever either changes (a
            reload, a threshold change), so that the shell republishes ``~/label_info``.

    Raises :class:`~action_recognition.runtime.protocol.ModelLoadError` at construction when
    the model is missing or incompatible with the parameters (start-up fails fast).
    """

    def __init__(self, settings: NodeSettings, *, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 load: Callable[..., Backend] | None = None,
                 on_revert: Callable[[dict[str, SettingValue]], None] | None = None,
                 on_labels: Callable[[tuple[str, ...], float], None] | None = None) -> None:
        self.logger = logger or LOGGER
        self.clock = clock
        self.on_revert = on_revert
        self.on_labels = on_labels
        self._settings = settings
        self._lock = threading.Lock()
        self.slot = ModelSlot(settings, logger=self.logger, load=load)
        self.intake = FrameIntake(logger=self.logger, clock=clock,
                                  max_pixels=settings.input.max_image_pixels,
                                  max_gap_ns=_max_gap_ns(settings))
        self.scheduler = Scheduler(clock, settings.node.inference_rate_hz)
        self.reload_error: str | None = None
        self.recognitions = 0
        self._latencies: deque[float] = deque(maxlen=500)
        self._started = clock()
        self._diagnostics = Diagnostics(self._started)

    @property
    def settings(self) -> NodeSettings:
        """The parameters in force."""
        return self._settings

    @property
    def labels(self) -> tuple[str, ...]:
        return self.slot.labels

    # -- parameters (executor thread) ---------------------------------------------------------

    def set_parameters(self, changes: Mapping[str, Any]) -> tuple[bool, str]:
        """Validate and apply run-time changes; ``(successful, reason)``.

        Start-up parameters are refused; a model file must exist; reload-type changes reload
        the model on the worker; the others apply at once.
        """
        with self._lock:  # against the worker setting parameters back after a failed reload
            current = self._settings
            startup = [name for name in changes
                       if (info := definition_of(name)) is not None
                       and info.applies == 'startup' and changes[name] != current.value(name)]
            if startup:
                return False, (f'{", ".join(sorted(startup))} can only be set at start-up '
                               '(restart the node)')
            try:
                new = parse_parameters(changes, base=current, logger=self.logger)
            except ParameterError as error:
                return False, str(error)
            problem = _missing_file(new, current)
            if problem:
                return False, problem
            changed = changed_names(current, new)
            reload = any(name in RELOAD_PARAMETERS for name in changed)
            self._settings = new
            self._apply(new)
            if reload:
                self.slot.request_reload(new)
        if 'score_threshold' in changed:
            self._labels_changed()
        if reload:
            self.scheduler.notify()
        return True, 'model reload scheduled' if reload else ''

    def _apply(self, settings: NodeSettings) -> None:
        """Apply the run-time settings to the parts that hold them."""
        self.slot.recognizer.apply(settings.stream_settings)
        self.intake.configure(max_pixels=settings.input.max_image_pixels,
                              max_gap_ns=_max_gap_ns(settings))
        self.scheduler.configure(settings.node.inference_rate_hz)

    def _labels_changed(self) -> None:
        if self.on_labels is not None:
            self.on_labels(self.labels, self._settings.stream.score_threshold)

    def _reload_if_pending(self) -> None:
        before = self.slot.reloads
        failure = self.slot.reload_if_pending()
        if failure is None:
            if self.slot.reloads != before:  # reloaded: what changed since applies to it too
                self.reload_error = None
                with self._lock:
                    self._apply(self._settings)
                self._labels_changed()
            return
        # Every reload parameter goes back to what runs (a valid whole: it was loaded), a
        # request made meanwhile included (it was made on top of the failed one).
        running = self.slot.loaded_with
        with self._lock:
            self.slot.cancel_reload()
            revert = {name: running.value(name) for name in RELOAD_PARAMETERS
                      if self._settings.value(name) != running.value(name)}
            self._settings = replace(self._settings, model=running.model,
                                     backend=running.backend)
        shown = ', '.join(f'{name}={value!r}' for name, value in revert.items())
        self.reload_error = (f'model reload failed, keeping {self.slot.model.path}: '
                             f'{failure}; parameters reverted to what runs ({shown})')
        self.logger.error(self.reload_error)
        if self.on_revert is not None and revert:
            self.on_revert(revert)

    # -- lifecycle ----------------------------------------------------------------------------

    def release_accelerator(self) -> bool:
        """Free accelerator memory while the node is inactive (see :meth:`ModelSlot.release
        <action_recognition.node.slot.ModelSlot.release>`)."""
        return self.slot.release()

    def resume(self) -> None:
        """Reload a model freed by :meth:`release_accelerator`; ``ModelLoadError`` if it fails.
        """
        self.slot.resume(self._settings)

    def close(self) -> None:
        """Release the model (lifecycle ``cleanup``/``shutdown``); the core is done."""
        self.slot.close()

    # -- frames in (subscription thread) ------------------------------------------------------

    def on_image_msg(self, msg: Any, *, debug: bool = False) -> bool:
        """A ``sensor_msgs/Image`` in; whether a window is now due. A bad image is counted and
        dropped; nothing raised by a message escapes. ``debug``: someone watches
        ``~/debug_image`` (the frame is kept for :meth:`debug_image`)."""
        return self._accept(self.intake.message(msg, compressed=False), debug)

    def on_compressed_msg(self, msg: Any, *, debug: bool = False) -> bool:
        """A ``sensor_msgs/CompressedImage`` in (see :meth:`on_image_msg`)."""
        return self._accept(self.intake.message(msg, compressed=True), debug)

    def on_frame(self, image: np.ndarray, stamp_ns: int, frame_id: str, *,
                 debug: bool = False) -> bool:
        """A ``uint8`` RGB ``[H, W, 3]`` frame in (see :meth:`on_image_msg`)."""
        return self._accept(self.intake.array(image, stamp_ns, frame_id), debug)

    def _accept(self, frame: Frame | None, debug: bool) -> bool:
        if frame is None:
            return False
        if not self._settings.node.enabled:
            self.intake.disabled()
            return False
        due = self.slot.recognizer.submit(frame)
        self.intake.passed_on(frame, keep_for_debug=debug)
        self.scheduler.frame_arrived(due)
        return due

    # -- inference (worker thread) ------------------------------------------------------------

    def wait_for_work(self, idle_s: float) -> None:
        """The worker's sleep until there may be work (see :class:`~action_recognition.node.
        scheduler.Scheduler`)."""
        self.scheduler.wait(idle_s)

    def wake(self) -> None:
        """Wake the worker (it stops, or has work)."""
        self.scheduler.notify()

    def step(self) -> list[Recognition]:
        """Apply a pending reload, then run the due windows; the worker calls this."""
        if self.slot.reload_requested:
            self._reload_if_pending()
        if not self._settings.node.enabled or not self.scheduler.may_run():
            return []
        results = self.slot.recognizer.run_due()
        if not results:
            self.scheduler.starved()
        else:
            self.scheduler.ran()
            self.recognitions += len(results)
            for result in results:
                self._latencies.append(result.latency_s)
        return results

    def debug_image(self, result: Recognition) -> np.ndarray | None:
        """The last frame of ``result``'s window with its labels drawn, so that the pixels
        belong to the stamp the result carries; ``None`` when that frame is no longer kept (or
        was not kept: nobody watched when it arrived)."""
        frame = self.intake.debug_frame(result.frame_index)
        return None if frame is None else annotate(frame, result.top)

    # -- diagnostics (timer thread) -----------------------------------------------------------

    def _counters(self, drops: dict[str, int]) -> dict[str, int]:
        """Totals over the node's life (across model reloads); ``drops``: the intake's by kind.
        """
        refused = drops.get(BAD_FRAME, 0)  # refused by the frame check, not undecodable
        streams = self.slot.counters()
        return {'frames_received': self.intake.frames_received,
                'frames_undecodable': sum(drops.values()) - refused,
                'frames_dropped': refused + streams.frames_dropped,
                'frames_missing': self.intake.sequence.missing,
                'clips_run': streams.clips_run, 'clips_dropped': streams.clips_dropped,
                'errors': streams.errors, 'recognitions': self.recognitions}

    def diagnostics(self) -> DiagnosticsReport:
        """The status for ``/diagnostics``; compares counters with the previous call."""
        model = self.slot.model
        kinds = self.intake.drops.counts()
        return self._diagnostics.report(Snapshot(
            now=self.clock(), started=self._started,
            last_frame_time=self.intake.last_frame_time, counters=self._counters(kinds),
            drop_kinds=kinds, drop_reasons=self.intake.drops.reasons(),
            latencies=list(self._latencies),
            input_gaps=self.intake.sequence.gaps, period_ns=self.intake.sequence.period_ns,
            backend=model.backend.name, device=model.backend.device, model=str(model.path),
            settings=self._settings, reload_error=self.reload_error,
            reloads=self.slot.reloads))


def _max_gap_ns(settings: NodeSettings) -> int:
    """A larger gap between stamps is a restart of the stream, not images lost."""
    return int(settings.stream.max_gap_s * 1e9)


def _missing_file(new: NodeSettings, current: NodeSettings) -> str:
    """Why a changed model or label file cannot be used (it does not exist); ``''`` if it can."""
    path = new.model.model_path
    if path and path != current.model.model_path and not Path(path).expanduser().is_file():
        return f'model_path {path} does not exist'
    labels = new.model.labels_path
    if labels and labels != current.model.labels_path and not Path(labels).is_file():
        return f'labels_path {labels} does not exist'
    return ''
