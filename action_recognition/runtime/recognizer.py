"""The recogniser: frames in, smoothed and debounced action recognitions out (no ROS).

Per frame (:meth:`Recognizer.push`, or :meth:`~Recognizer.submit` in a camera callback and
:meth:`~Recognizer.run_latest` on a worker thread):

1. the frame (``uint8`` RGB ``[H, W, 3]`` of any size, its stamp in integer nanoseconds) is
   checked once, resized and centre-cropped once
   (:func:`~action_recognition.data.preprocess.prepare_frame`) and copied into the
   preallocated ring of a :class:`~action_recognition.runtime.clip_buffer.ClipBuffer` as
   ``[3, h, w]``;
2. every ``hop`` frames, once the ring holds a clip, the clip sampled as the model was trained
   (one gather from the ring, ``[T, 3, h, w]``) goes through the backend (only the latest clip:
   a clip not run before the next one is due is dropped as stale);
3. logits -> softmax -> temporal smoothing over windows (``'none'``, ``'mean'`` of the last
   ``smoothing_window`` windows, or ``'ema'`` with ``ema_alpha``) -> top-k above the score
   threshold; hysteresis turns scores into ``started``/``ended`` events reported once per
   action: an action starts when its smoothed score reaches ``on`` and ends only when it falls
   below ``off < on``. A restart of the ring (a gap, a stamp going backwards, a change of
   resolution) starts the smoothing afresh and ends the active actions.

The result, :class:`Recognition`, is the one result type every output takes: the sinks (JSON
lines, MCAP, annotated video) and the ROS publisher. Bad input never raises out of
:meth:`push`/:meth:`submit`/:meth:`run_latest`: empty or malformed frames are dropped with a
throttled log line and counted; a failed or non-finite inference is dropped, logged and counted.

With a :class:`~action_recognition.runtime.protocol.StreamingBackend` (a torch backend with
``streaming=True``), the per-frame 2D features are cached in the ring, so each window runs the
2D-Net only on the frames it has not seen.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from dataclasses import field
import logging
import threading
import time
from typing import Any
from typing import Literal

import numpy as np
import torch

from action_recognition.data.preprocess import prepare_frame
from action_recognition.logs import Throttle
from action_recognition.runtime.clip_buffer import Clip
from action_recognition.runtime.clip_buffer import ClipBuffer
from action_recognition.runtime.protocol import Backend
from action_recognition.runtime.protocol import StreamingBackend
from action_recognition.spec import ModelSpec

__all__ = ['Recognizer', 'Recognition', 'ActionEvent', 'softmax', 'Smoother', 'Hysteresis']

Smoothing = Literal['none', 'mean', 'ema']


@dataclass(frozen=True)
class ActionEvent:
    """An action starting or ending: ``kind`` is ``'started'`` or ``'ended'``."""

    kind: Literal['started', 'ended']
    label: str
    class_index: int
    stamp_ns: int
    score: float

    def __str__(self) -> str:
        return f'{self.kind}:{self.label}'


@dataclass
class Recognition:
    """The result of one window: what every sink and the ROS publisher take.

    Attributes:
        frame_index: index in its source of the window's last frame (a video's frame number, a
            recording's message number, the node's count of images received).
        stamp_ns: stamp of the window's last frame, integer nanoseconds (exact: message headers
            are built from it).
        frame_id: frame id of the window's last frame.
        top: ``(label, score)`` pairs, best first, at most ``top_k``, scores above the threshold.
        scores: float32 ``[num_classes]`` smoothed class probabilities.
        raw_scores: float32 ``[num_classes]`` this window's probabilities before smoothing.
        events: actions that started or ended with this window.
        latency_s: seconds from the last frame's arrival to the result.
        inference_s: seconds the backend took.
    """

    frame_index: int
    stamp_ns: int
    frame_id: str
    top: list[tuple[str, float]]
    scores: np.ndarray
    raw_scores: np.ndarray
    events: list[ActionEvent] = field(default_factory=list)
    latency_s: float = 0.0
    inference_s: float = 0.0

    @property
    def stamp(self) -> float:
        """Stamp of the window's last frame in seconds (for display)."""
        return self.stamp_ns * 1e-9

    def to_json(self) -> dict[str, Any]:
        """The JSON line of ``action-recognition run``: ``frame``, ``stamp`` (s), ``stamp_ns``,
        ``frame_id``, ``top`` (best first) and ``events`` (``'started:<label>'``)."""
        return {
            'frame': int(self.frame_index),
            'stamp': round(self.stamp, 9),
            'stamp_ns': int(self.stamp_ns),
            'frame_id': self.frame_id,
            'top': [{'label': label, 'score': round(float(score), 6)}
                    for label, score in sorted(self.top, key=lambda p: -p[1])],
            'events': [str(event) for event in self.events],
        }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Smoother:
    """Temporal smoothing of score vectors over consecutive windows."""

    def __init__(self, mode: Smoothing = 'none', *, window: int = 4, alpha: float = 0.5) -> None:
        if mode not in ('none', 'mean', 'ema'):
            raise ValueError(f"smoothing must be 'none', 'mean' or 'ema', got {mode!r}")
        if window < 1:
            raise ValueError(f'smoothing_window must be >= 1, got {window}')
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f'ema_alpha must be in (0, 1], got {alpha}')
        self.mode = mode
        self.window = window
        self.alpha = alpha
        self._history: deque[np.ndarray] = deque(maxlen=window)
        self._ema: np.ndarray | None = None

    def reset(self) -> None:
        self._history.clear()
        self._ema = None

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        if self.mode == 'mean':
            self._history.append(scores)
            return np.mean(np.stack(self._history), axis=0).astype(np.float32)
        if self.mode == 'ema':
            self._ema = scores.copy() if self._ema is None else \
                self.alpha * scores + (1.0 - self.alpha) * self._ema
            return self._ema.astype(np.float32)
        return scores


class Hysteresis:
    """Per-class on/off thresholds: an action starts at ``score >= on``, ends at ``< off``."""

    def __init__(self, on: float, off: float) -> None:
        if not 0.0 <= off <= on <= 1.0:
            raise ValueError(f'hysteresis needs 0 <= off <= on <= 1, got on={on}, off={off}')
        self.on = on
        self.off = off
        self.active: set[int] = set()

    def reset(self) -> None:
        self.active.clear()

    def update(self, scores: np.ndarray, labels: tuple[str, ...],
               stamp_ns: int) -> list[ActionEvent]:
        events = []
        for index in sorted(self.active):
            if scores[index] < self.off:
                self.active.discard(index)
                events.append(ActionEvent('ended', labels[index], index, stamp_ns,
                                          float(scores[index])))
        for found in np.flatnonzero(scores >= self.on):
            index = int(found)
            if index not in self.active:
                self.active.add(index)
                events.append(ActionEvent('started', labels[index], index, stamp_ns,
                                          float(scores[index])))
        return events


def _frame_problem(frame: Any) -> str | None:
    if not isinstance(frame, np.ndarray):
        return f'not a numpy array ({type(frame).__name__})'
    if frame.ndim != 3 or frame.shape[2] != 3:
        return f'shape {frame.shape} is not [H, W, 3]'
    if frame.dtype != np.uint8:
        return f'dtype {frame.dtype} is not uint8'
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        return f'empty frame of shape {frame.shape}'
    return None


class Recognizer:
    """Frames in, :class:`Recognition` results out, for one stream.

    Args:
        backend: a :class:`~action_recognition.runtime.protocol.Backend` (a
            :class:`~action_recognition.runtime.protocol.StreamingBackend` when it streams).
        hop: run a clip every ``hop`` frames (once the buffer holds a clip).
        top_k: number of ``(label, score)`` pairs reported.
        score_threshold: pairs scoring below this are left out of ``top``.
        smoothing: ``'none'``, ``'mean'`` (last ``smoothing_window`` windows) or ``'ema'``.
        hysteresis: ``(on, off)`` score thresholds for started/ended events; ``None``: no events.
        max_gap_s: a larger gap between frame stamps restarts the buffer.
        window: frames covered by a TSN (segments) clip; default the spec's clip span.
    """

    def __init__(self, backend: Backend, *, hop: int = 1, top_k: int = 5,
                 score_threshold: float = 0.0, smoothing: Smoothing = 'none',
                 smoothing_window: int = 4, ema_alpha: float = 0.5,
                 hysteresis: tuple[float, float] | None = (0.5, 0.3),
                 max_gap_s: float | None = 1.0, window: int | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.backend = backend
        self.logger = logger or logging.getLogger(__name__)
        self._throttle = Throttle(self.logger)
        self.buffer = ClipBuffer(backend.spec, window=window, max_gap_s=max_gap_s,
                                 logger=self.logger)
        self.hop = hop
        self.top_k = top_k
        self.score_threshold = score_threshold
        self._smoother = Smoother(smoothing, window=smoothing_window, alpha=ema_alpha)
        self._hysteresis = Hysteresis(*hysteresis) if hysteresis is not None else None
        self._stream: StreamingBackend | None = \
            backend if backend.streaming and isinstance(backend, StreamingBackend) else None
        self._lock = threading.Lock()
        self._infer_lock = threading.Lock()
        self._pending = False
        self._scheduled_generation = -1
        self._smoothed_generation: int | None = None  # the stream the smoothing state is of
        self._arrival: deque[tuple[int, float]] = deque(maxlen=self.buffer.capacity)
        self.frames_in = 0
        self.frames_dropped = 0
        self.clips_run = 0
        self.clips_dropped = 0
        self.errors = 0

    @property
    def streaming(self) -> bool:
        """Whether per-frame features are cached (a streaming backend)."""
        return self._stream is not None

    @property
    def spec(self) -> ModelSpec:
        """The backend's model spec (labels, clip sampling, preprocessing)."""
        return self.backend.spec

    # -- run-time settings -----------------------------------------------------------------

    @property
    def hop(self) -> int:
        return self._hop

    @hop.setter
    def hop(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f'hop must be >= 1, got {value}')
        self._hop = int(value)

    @property
    def top_k(self) -> int:
        return self._top_k

    @top_k.setter
    def top_k(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f'top_k must be >= 1, got {value}')
        self._top_k = int(value)

    @property
    def score_threshold(self) -> float:
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f'score_threshold must be in [0, 1], got {value}')
        self._score_threshold = float(value)

    @property
    def smoothing(self) -> Smoothing:
        return self._smoother.mode

    @smoothing.setter
    def smoothing(self, value: Smoothing) -> None:
        self._smoother = Smoother(value, window=self._smoother.window,
                                  alpha=self._smoother.alpha)

    @property
    def active_actions(self) -> list[str]:
        """Labels of the actions started and not yet ended."""
        if self._hysteresis is None:
            return []
        labels = self.spec.label_names
        return [labels[i] for i in sorted(self._hysteresis.active)]

    def reset(self) -> None:
        """Forget the buffered frames, smoothing state and active actions (counters kept)."""
        with self._lock:
            self.buffer.clear()
            self._pending = False
            self._arrival.clear()
            self._smoother.reset()
            if self._hysteresis is not None:
                self._hysteresis.reset()

    # -- frames in ---------------------------------------------------------------------------

    def submit(self, frame: Any, stamp_ns: int, frame_id: str = '', *,
               index: int | None = None) -> bool:
        """Check, prepare and buffer one frame; returns whether a clip is now due.

        ``frame``: ``uint8`` RGB ``[H, W, 3]``; ``stamp_ns``: its stamp in integer nanoseconds;
        ``index``: its index in the source (default: its position in this stream). Safe to call
        from a camera callback while :meth:`run_latest` runs on another thread. Bad frames are
        dropped (logged, throttled; counted in ``frames_dropped``).
        """
        arrival = time.perf_counter()
        self.frames_in += 1
        problem = _frame_problem(frame)
        if problem is None:
            if isinstance(stamp_ns, (bool, float)) or not isinstance(stamp_ns, (int, np.integer)):
                problem = f'stamp {stamp_ns!r} is not integer nanoseconds'
            else:
                try:
                    prepared = prepare_frame(frame, self.spec).transpose(2, 0, 1)
                except Exception as error:
                    problem = str(error)
        if problem is not None:
            self.frames_dropped += 1
            self._throttle.warning('frame', f'dropping frame {frame_id or self.frames_in}: '
                                   f'{problem}')
            return False
        with self._lock:
            position = self.buffer.push(prepared, int(stamp_ns), frame_id, index=index,
                                        source_shape=frame.shape)
            self._arrival.append((position, arrival))
            # The first clip of a (re)filled buffer runs as soon as it is full; later clips
            # every `hop` frames.
            due = self.buffer.ready() and (
                self._scheduled_generation != self.buffer.generation
                or self.buffer.frames_since_last_clip >= self.hop)
            if due:
                if self._pending:
                    self.clips_dropped += 1
                self._pending = True
                self._scheduled_generation = self.buffer.generation
                self.buffer.frames_since_last_clip = 0
            return due

    def run_latest(self) -> Recognition | None:
        """Run the latest due clip, if any; returns its recognition or ``None``.

        Never raises: a failing or non-finite inference is logged and counted (``errors`` for
        exceptions, ``clips_dropped`` for non-finite outputs).
        """
        with self._lock:
            if not self._pending:
                return None
            self._pending = False
            if not self.buffer.ready():  # the buffer restarted after the clip was due
                self.clips_dropped += 1
                return None
            clip = self.buffer.latest_clip(mark=False)
            newest = int(clip.indices[-1])
            arrival = next((t for p, t in reversed(self._arrival) if p == newest),
                           time.perf_counter())
        with self._infer_lock:
            try:
                start = time.perf_counter()
                logits = self._infer(clip)
                inference_s = time.perf_counter() - start
            except Exception as error:
                with self._lock:
                    self.errors += 1
                self._throttle.warning('inference', f'inference failed on the clip ending at '
                                       f'frame {clip.frame_index}: {error}')
                return None
            if logits.shape != (self.spec.num_classes,) or not np.isfinite(logits).all():
                with self._lock:
                    self.clips_dropped += 1
                self._throttle.warning('output', f'dropping the clip ending at frame '
                                       f'{clip.frame_index}: non-finite or malformed output '
                                       f'{logits.shape}')
                return None
            with self._lock:
                self.clips_run += 1
            return self._postprocess(clip, logits, arrival, inference_s)

    def push(self, frame: Any, stamp_ns: int, frame_id: str = '', *,
             index: int | None = None) -> Recognition | None:
        """:meth:`submit` then :meth:`run_latest` in one call (single-threaded use)."""
        if self.submit(frame, stamp_ns, frame_id, index=index):
            return self.run_latest()
        return None

    # -- internals ---------------------------------------------------------------------------

    def _infer(self, clip: Clip) -> np.ndarray:
        if self._stream is None:
            return np.asarray(self.backend.infer(clip.frames))[0]
        missing = [i for i, cached in enumerate(clip.features) if cached is None]
        features = list(clip.features)
        if missing:
            new = self._stream.frame_features(clip.frames[missing])
            for row, i in enumerate(missing):
                features[i] = new[row:row + 1]
                self.buffer.cache_features(int(clip.indices[i]), features[i])
        return np.asarray(self._stream.infer_features(torch.cat(features)))[0]

    def _restart_smoothing(self, clip: Clip) -> list[ActionEvent]:
        """Start smoothing and hysteresis afresh when ``clip`` follows a buffer restart.

        A restart (gap, backwards stamp, resolution change) separates two streams: scores of the
        old one must not leak into the new one. Actions still active are reported as ended.
        """
        previous, self._smoothed_generation = self._smoothed_generation, clip.generation
        if previous is None or previous == clip.generation:
            return []
        self._smoother.reset()
        if self._hysteresis is None:
            return []
        labels = self.spec.label_names
        ended = [ActionEvent('ended', labels[i], i, clip.stamp_ns, 0.0)
                 for i in sorted(self._hysteresis.active)]
        self._hysteresis.reset()
        return ended

    def _postprocess(self, clip: Clip, logits: np.ndarray, arrival: float,
                     inference_s: float) -> Recognition:
        raw = softmax(logits.astype(np.float64)).astype(np.float32)
        events = self._restart_smoothing(clip)
        scores = self._smoother(raw)
        labels = self.spec.label_names
        order = np.argsort(-scores, kind='stable')[:self.top_k]
        top = [(labels[i], float(scores[i])) for i in order
               if scores[i] >= self.score_threshold]
        if self._hysteresis is not None:
            events += self._hysteresis.update(scores, labels, clip.stamp_ns)
        for event in events:
            self.logger.info('action %s: %s (score %.2f) at %.3f', event.kind, event.label,
                             event.score, event.stamp_ns * 1e-9)
        return Recognition(
            frame_index=clip.frame_index, stamp_ns=clip.stamp_ns, frame_id=clip.frame_id,
            top=top, scores=scores, raw_scores=raw, events=events,
            latency_s=time.perf_counter() - arrival, inference_s=inference_s)
