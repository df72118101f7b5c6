"""From a window's logits to a :class:`~action_recognition.runtime.results.Recognition`.

logits -> softmax -> temporal smoothing over the stream's windows (``'none'``, ``'mean'`` of the
last ``smoothing_window`` windows, or ``'ema'`` with ``ema_alpha``) -> top-k above the score
threshold; hysteresis turns scores into ``started``/``ended`` events reported once per action:
an action starts when its smoothed score reaches ``on`` and ends only when it falls below
``off < on``. A window that follows a restart of the stream's ring (a gap, a stamp going
backwards, a change of resolution) starts smoothing afresh and ends the active actions.
"""

from __future__ import annotations

from collections import deque
import logging

import numpy as np

from action_recognition.runtime.clip_buffer import Clip
from action_recognition.runtime.results import ActionEvent
from action_recognition.runtime.results import Recognition
from action_recognition.runtime.settings import StreamSettings

__all__ = ['softmax', 'Smoother', 'Hysteresis', 'Scorer']


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Smoother:
    """Temporal smoothing of score vectors over consecutive windows (``mode`` one of
    ``'none'``, ``'mean'``, ``'ema'``; checked by :class:`StreamSettings`)."""

    def __init__(self, mode: str = 'none', *, window: int = 4, alpha: float = 0.5) -> None:
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


class Scorer:
    """One stream's scoring state: smoothing, hysteresis, and the ring generation it is of."""

    def __init__(self, labels: tuple[str, ...], settings: StreamSettings,
                 logger: logging.Logger) -> None:
        self.labels = labels
        self.logger = logger
        self.settings = settings
        self._smoother = self._new_smoother(settings)
        self._hysteresis = Hysteresis(*settings.hysteresis) if settings.hysteresis else None
        self._generation: int | None = None  # the ring generation the smoothing state is of

    @staticmethod
    def _new_smoother(settings: StreamSettings) -> Smoother:
        return Smoother(settings.smoothing, window=settings.smoothing_window,
                        alpha=settings.ema_alpha)

    def apply(self, settings: StreamSettings) -> None:
        """Take new settings; a change of smoothing starts it afresh."""
        if (settings.smoothing, settings.smoothing_window, settings.ema_alpha) != \
                (self.settings.smoothing, self.settings.smoothing_window,
                 self.settings.ema_alpha):
            self._smoother = self._new_smoother(settings)
        if settings.hysteresis != self.settings.hysteresis:
            self._hysteresis = Hysteresis(*settings.hysteresis) if settings.hysteresis else None
        self.settings = settings

    @property
    def active_actions(self) -> list[str]:
        """Labels of the actions started and not yet ended."""
        if self._hysteresis is None:
            return []
        return [self.labels[i] for i in sorted(self._hysteresis.active)]

    def reset(self) -> None:
        self._smoother.reset()
        if self._hysteresis is not None:
            self._hysteresis.reset()

    def _restart(self, clip: Clip) -> list[ActionEvent]:
        """Start afresh when ``clip`` follows a ring restart: the scores of the old stream must
        not leak into the new one; actions still active are reported as ended."""
        previous, self._generation = self._generation, clip.generation
        if previous is None or previous == clip.generation:
            return []
        self._smoother.reset()
        if self._hysteresis is None:
            return []
        ended = [ActionEvent('ended', self.labels[i], i, clip.stamp_ns, 0.0)
                 for i in sorted(self._hysteresis.active)]
        self._hysteresis.reset()
        return ended

    def score(self, clip: Clip, logits: np.ndarray, *, latency_s: float, inference_s: float,
              stream: str) -> Recognition:
        """The recognition of ``clip`` from its ``logits`` ``[num_classes]``."""
        raw = softmax(logits.astype(np.float64)).astype(np.float32)
        events = self._restart(clip)
        scores = self._smoother(raw)
        order = np.argsort(-scores, kind='stable')[:self.settings.top_k]
        top = [(self.labels[i], float(scores[i])) for i in order
               if scores[i] >= self.settings.score_threshold]
        if self._hysteresis is not None:
            events += self._hysteresis.update(scores, self.labels, clip.stamp_ns)
        for event in events:
            self.logger.info('action %s: %s (score %.2f) at %.3f%s', event.kind, event.label,
                             event.score, event.stamp_ns * 1e-9,
                             f' (stream {stream})' if stream else '')
        return Recognition(
            frame_index=clip.frame_index, stamp_ns=clip.stamp_ns, frame_id=clip.frame_id,
            top=top, scores=scores, raw_scores=raw, events=events, latency_s=latency_s,
            inference_s=inference_s, stream=stream)
