"""The one result type: :class:`Recognition`, what every sink and the ROS publisher take."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

import numpy as np

__all__ = ['ActionEvent', 'Recognition']


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
    """The result of one window of one stream.

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
        inference_s: seconds the backend call took (shared by the windows it ran together).
        stream: the key of the stream the window came from (``''``: the one stream of a
            camera or a file).
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
    stream: str = ''

    @property
    def stamp(self) -> float:
        """Stamp of the window's last frame in seconds (for display)."""
        return self.stamp_ns * 1e-9

    def to_json(self) -> dict[str, Any]:
        """The JSON line of ``action-recognition run``: ``frame``, ``stamp`` (s), ``stamp_ns``,
        ``frame_id``, ``top`` (best first), ``events`` (``'started:<label>'``) and, for a
        stream with a key, ``stream``."""
        line: dict[str, Any] = {
            'frame': int(self.frame_index),
            'stamp': round(self.stamp, 9),
            'stamp_ns': int(self.stamp_ns),
            'frame_id': self.frame_id,
            'top': [{'label': label, 'score': round(float(score), 6)}
                    for label, score in sorted(self.top, key=lambda p: -p[1])],
            'events': [str(event) for event in self.events],
        }
        if self.stream:
            line['stream'] = self.stream
        return line
