"""One stream: a camera's (or, later, one tracked person's) clip ring, schedule and scoring.

A :class:`Stream` takes checked :class:`~action_recognition.runtime.frames.Frame` objects
(:meth:`~Stream.submit`, from a camera callback), prepares each once (resized and centre-cropped
to the model input, :func:`~action_recognition.data.preprocess.prepare_frame`) into its
preallocated ring (:class:`~action_recognition.runtime.clip_buffer.ClipBuffer`) and says when a
window is due. The :class:`~action_recognition.runtime.recognizer.Recognizer` that holds it
:meth:`~Stream.take` s the due :class:`Window`, runs it through the backend (together with the
windows of other streams) and hands the logits back to :meth:`~Stream.finish`, which scores them
(:class:`~action_recognition.runtime.scoring.Scorer`).

Schedule (``StreamSettings.schedule``): ``'hop'``: the first window of a (re)filled ring is due
as soon as the ring holds a clip, later ones every ``hop`` frames; only the latest due window
runs, one superseded before it ran is dropped and counted. ``'latest'``: nothing is due by
itself; whoever drives the stream (the node's ``inference_rate_hz``) takes the latest window
when it wants one, if a frame came since the last.

Thread safety: every method takes the stream's lock; one thread may submit while another takes
and finishes windows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from dataclasses import fields
import logging
import threading
import time
from typing import Any

import numpy as np

from action_recognition.data.preprocess import prepare_frame
from action_recognition.logs import describe_error
from action_recognition.logs import Throttle
from action_recognition.runtime.clip_buffer import Clip
from action_recognition.runtime.clip_buffer import ClipBuffer
from action_recognition.runtime.frames import Frame
from action_recognition.runtime.results import Recognition
from action_recognition.runtime.scoring import Scorer
from action_recognition.runtime.settings import StreamSettings
from action_recognition.spec import ModelSpec

__all__ = ['StreamCounters', 'Window', 'Stream']


@dataclass
class StreamCounters:
    """What a stream did: frames in and refused, windows run and dropped, inference errors."""

    frames_in: int = 0
    frames_dropped: int = 0
    clips_run: int = 0
    clips_dropped: int = 0
    errors: int = 0

    def __add__(self, other: StreamCounters) -> StreamCounters:
        return StreamCounters(*(getattr(self, f.name) + getattr(other, f.name)
                                for f in fields(self)))


@dataclass(slots=True)
class Window:
    """A due window taken from a stream, to run through the backend.

    Attributes:
        stream: the stream it came from (its results go back there).
        clip: the sampled frames ``uint8 [T, 3, h, w]`` with their stamps and cached features.
        arrival: ``time.perf_counter()`` when its last frame arrived (for the latency).
    """

    stream: Stream
    clip: Clip
    arrival: float


class Stream:
    """One stream's ring, schedule and scoring (see the module docstring).

    Args:
        spec: the model's spec (clip sampling, input size, labels).
        settings: the stream's settings (:class:`StreamSettings`).
        key: the stream's name in its recogniser (``''``: the only stream).
    """

    def __init__(self, spec: ModelSpec, settings: StreamSettings, *, key: str = '',
                 logger: logging.Logger | None = None) -> None:
        self.key = key
        self.spec = spec
        self.logger = logger or logging.getLogger(__name__)
        self._throttle = Throttle(self.logger)
        self._settings = settings
        self.buffer = ClipBuffer(spec, window=settings.window, max_gap_s=settings.max_gap_s,
                                 logger=self.logger)
        self._scorer = Scorer(spec.label_names, settings, self.logger)
        self._counters = StreamCounters()
        self._lock = threading.Lock()
        self._pending = False
        self._scheduled_generation = -1
        self._last_taken = -1  # stream position of the newest frame of the last window taken
        self._arrival: deque[tuple[int, float]] = deque(maxlen=self.buffer.capacity)

    @property
    def settings(self) -> StreamSettings:
        return self._settings

    def apply(self, settings: StreamSettings) -> None:
        """Take new settings (a run-time change); the ring's window cannot change."""
        if settings.window != self._settings.window:
            raise ValueError('a stream keeps the TSN window it was made with')
        with self._lock:
            self._settings = settings
            self.buffer.max_gap_s = settings.max_gap_s
            self._scorer.apply(settings)

    @property
    def counters(self) -> StreamCounters:
        """A copy of the stream's counters."""
        with self._lock:
            return StreamCounters(**vars(self._counters))

    @property
    def active_actions(self) -> list[str]:
        """Labels of the actions started and not yet ended."""
        return self._scorer.active_actions

    def reset(self) -> None:
        """Forget the buffered frames, smoothing state and active actions (counters kept)."""
        with self._lock:
            self.buffer.clear()
            self._pending = False
            self._arrival.clear()
            self._scorer.reset()

    def refuse(self, reason: str, frame_id: str = '') -> None:
        """Count a frame that was refused before it reached the ring (logged, throttled)."""
        with self._lock:
            self._counters.frames_in += 1
            self._counters.frames_dropped += 1
            count = self._counters.frames_in
        self._throttle.warning('frame', f'dropping frame {frame_id or count}: {reason}')

    def submit(self, frame: Frame) -> bool:
        """Prepare and buffer one frame; returns whether a window is now due.

        The frame was checked where it entered (:func:`~action_recognition.runtime.frames.
        make_frame`): it is prepared (resized, cropped) and copied into the ring once. A frame
        that cannot be prepared is refused (counted in ``frames_dropped``, logged); nothing
        raises.
        """
        arrival = time.perf_counter()
        try:
            prepared = prepare_frame(frame.image, self.spec).transpose(2, 0, 1)
        except Exception as error:  # an elongated frame, cv2 out of memory: never out of here
            self.refuse(f'preparing it failed: {describe_error(error)}', frame.frame_id)
            return False
        with self._lock:
            self._counters.frames_in += 1
            position = self.buffer.push(prepared, frame.stamp_ns, frame.frame_id,
                                        index=frame.index, source_shape=frame.image.shape)
            self._arrival.append((position, arrival))
            if self._settings.schedule == 'latest':
                return False
            # The first window of a (re)filled ring runs as soon as it is full; later ones
            # every `hop` frames.
            due = self.buffer.ready() and (
                self._scheduled_generation != self.buffer.generation
                or self.buffer.frames_since_last_clip >= self._settings.hop)
            if due:
                if self._pending:
                    self._counters.clips_dropped += 1
                self._pending = True
                self._scheduled_generation = self.buffer.generation
                self.buffer.frames_since_last_clip = 0
            return due

    def take(self) -> Window | None:
        """The window to run now, if any: the latest due one (``'hop'``), or the latest one
        with a frame not yet run (``'latest'``)."""
        with self._lock:
            if self._settings.schedule == 'latest':
                if not self.buffer.ready() or self.buffer.frames_pushed - 1 == self._last_taken:
                    return None
            else:
                if not self._pending:
                    return None
                self._pending = False
                if not self.buffer.ready():  # the ring restarted after the window was due
                    self._counters.clips_dropped += 1
                    return None
            clip = self.buffer.latest_clip(mark=False)
            newest = int(clip.indices[-1])  # the last sampled frame: its arrival is the latency's
            self._last_taken = self.buffer.frames_pushed - 1  # the newest frame seen
            arrival = next((t for p, t in reversed(self._arrival) if p == newest),
                           time.perf_counter())
            return Window(self, clip, arrival)

    def cache_features(self, window: Window, row: int, features: Any) -> None:
        """Keep a streaming backend's per-frame features of the window's frame ``row``."""
        self.buffer.cache_features(int(window.clip.indices[row]), features)

    def failed(self, window: Window, error: BaseException) -> None:
        """The backend call that ran ``window`` raised ``error``: counted and logged."""
        with self._lock:
            self._counters.errors += 1
        self._throttle.warning('inference', f'inference failed on the clip ending at frame '
                                            f'{window.clip.frame_index}: {error}')

    def finish(self, window: Window, logits: np.ndarray,
               inference_s: float) -> Recognition | None:
        """Score ``window``'s ``logits`` ``[num_classes]``; ``None`` (counted, logged) when they
        are malformed or not finite."""
        if logits.shape != (self.spec.num_classes,) or not np.isfinite(logits).all():
            with self._lock:
                self._counters.clips_dropped += 1
            self._throttle.warning('output', f'dropping the clip ending at frame '
                                             f'{window.clip.frame_index}: non-finite or '
                                             f'malformed output {logits.shape}')
            return None
        with self._lock:
            self._counters.clips_run += 1
            return self._scorer.score(window.clip, logits,
                                      latency_s=time.perf_counter() - window.arrival,
                                      inference_s=inference_s, stream=self.key)
