"""A bounded ring of timestamped frames (or per-frame features) and the clips sampled from it.

The ring holds the latest ``capacity`` items only, so memory never grows with the length of a
stream. Clips are sampled from it exactly as the model was trained, from the model's own
:class:`~action_recognition.spec.ModelSpec` (:func:`~action_recognition.data.sampling.
stream_indices`): dense clips of ``num_frames`` frames ``frame_stride`` apart ending at the newest
frame, or TSN segments over the last ``window`` frames.

The ring restarts (with a logged reason, counted in :attr:`ClipBuffer.resets`) when the stream
breaks: a gap in time longer than ``max_gap_s``, a timestamp going backwards, or a change of the
item's shape or of the source resolution (frames of a different field of view must not be mixed
into one clip). Each entry can also hold a cached per-frame feature (streaming ECO-Lite stores
its 2D-Net output there, :meth:`ClipBuffer.cache_features`).

Thread safety: all methods take an internal lock, so one thread may push while another samples.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from dataclasses import field
import logging
import threading
from typing import Any

import numpy as np

from action_recognition.data.sampling import stream_indices
from action_recognition.spec import ModelSpec

__all__ = ['ClipBuffer', 'Clip']


@dataclass
class _Entry:
    item: Any
    stamp: float
    frame_id: str
    index: int
    features: Any = None


@dataclass
class Clip:
    """One clip sampled from the ring.

    Attributes:
        items: the ``num_frames`` sampled items, oldest first (prepared ``uint8`` frames
            ``[h, w, 3]``, or whatever was pushed).
        stamps: ``float64 [T]`` timestamps of the sampled items.
        indices: ``int64 [T]`` stream indices (0 = first frame ever pushed) of the items.
        frame_index: stream index of the newest frame in the ring (the clip's last frame).
        frame_id: frame id of the newest frame.
        features: cached per-frame features of the sampled items (``None`` where not cached).
        generation: the ring's :attr:`ClipBuffer.generation` when the clip was taken: clips of
            different generations are separated by a restart (gap, backwards stamp, resolution
            change) and belong to different streams.
    """

    items: list[Any]
    stamps: np.ndarray
    indices: np.ndarray
    frame_index: int
    frame_id: str
    features: list[Any] = field(default_factory=list)
    generation: int = 0

    @property
    def frames(self) -> np.ndarray:
        """The items stacked: ``uint8 [T, h, w, 3]`` for frames (made on each access)."""
        return np.stack(self.items)

    @property
    def stamp(self) -> float:
        """Timestamp of the clip's last frame."""
        return float(self.stamps[-1])

    def __len__(self) -> int:
        return len(self.items)


class ClipBuffer:
    """Bounded ring of the latest frames of one stream.

    Args:
        spec: the model's spec: sampling mode, clip length and frame stride.
        capacity: ring size in items; defaults to the frames one clip spans (``window`` for
            segment sampling). Must be at least that.
        window: for segment (TSN) sampling, the number of latest frames the segments cover
            (default ``spec.clip_span``).
        max_gap_s: a jump of more than this many seconds between consecutive stamps restarts
            the ring (``None``: never).
        logger: where reasons for resets go.
    """

    def __init__(self, spec: ModelSpec, *, capacity: int | None = None,
                 window: int | None = None, max_gap_s: float | None = 1.0,
                 logger: logging.Logger | None = None) -> None:
        self.spec = spec
        if window is not None and window < spec.num_frames:
            raise ValueError(
                f'window {window} is shorter than the clip length {spec.num_frames}')
        self.window = window if spec.sampling == 'segments' else None
        self.span = spec.clip_span if spec.sampling == 'dense' else (window or spec.clip_span)
        if capacity is None:
            capacity = self.span
        if capacity < self.span:
            raise ValueError(f'capacity {capacity} is smaller than one clip span {self.span}')
        if max_gap_s is not None and max_gap_s <= 0:
            raise ValueError(f'max_gap_s must be > 0 or None, got {max_gap_s}')
        self.capacity = capacity
        self.max_gap_s = max_gap_s
        self.logger = logger or logging.getLogger(__name__)
        self._ring: deque[_Entry] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._item_shape: tuple[int, ...] | None = None
        self._source_shape: tuple[int, ...] | None = None
        self._last_stamp: float | None = None
        self._next_index = 0
        self.resets = 0
        self.reset_reasons: dict[str, int] = {}
        self.frames_since_last_clip = 0
        # Incremented whenever the ring is emptied (clear or reset).
        self.generation = 0

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def frames_pushed(self) -> int:
        """Frames pushed since construction (the next frame's stream index)."""
        return self._next_index

    def clear(self) -> None:
        """Empty the ring (not counted as a reset)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._ring.clear()
        self._item_shape = None
        self._source_shape = None
        self._last_stamp = None
        self.frames_since_last_clip = 0
        self.generation += 1

    def _reset(self, reason: str, detail: str) -> None:
        if self._ring:
            self.resets += 1
            self.reset_reasons[reason] = self.reset_reasons.get(reason, 0) + 1
            self.logger.warning('clip buffer reset (%s): %s; dropping %d buffered frames',
                                reason, detail, len(self._ring))
        self._clear()

    def push(self, item: Any, stamp: float, frame_id: str = '', *,
             source_shape: tuple[int, ...] | None = None) -> int:
        """Append one item (a prepared ``uint8`` frame ``[h, w, 3]`` or a feature tensor).

        ``stamp`` is in seconds; ``source_shape`` is the shape of the frame before preparation
        (a change of it restarts the ring). Returns the item's stream index.
        """
        stamp = float(stamp)
        if not np.isfinite(stamp):
            raise ValueError(f'timestamp must be finite, got {stamp}')
        shape = tuple(int(s) for s in item.shape)
        with self._lock:
            if self._last_stamp is not None:
                if stamp < self._last_stamp:
                    self._reset('backwards', f'timestamp went backwards from '
                                f'{self._last_stamp:.6f} to {stamp:.6f}')
                elif self.max_gap_s is not None and stamp - self._last_stamp > self.max_gap_s:
                    self._reset('gap', f'gap of {stamp - self._last_stamp:.3f} s > '
                                f'{self.max_gap_s:.3f} s')
            if self._item_shape is not None and shape != self._item_shape:
                self._reset('shape', f'item shape changed from {self._item_shape} to {shape}')
            if source_shape is not None and self._source_shape is not None and \
                    tuple(source_shape) != self._source_shape:
                self._reset('resolution', f'source resolution changed from '
                            f'{self._source_shape} to {tuple(source_shape)}')
            index = self._next_index
            self._next_index += 1
            self._ring.append(_Entry(item, stamp, frame_id, index))
            self._item_shape = shape
            if source_shape is not None:
                self._source_shape = tuple(source_shape)
            self._last_stamp = stamp
            self.frames_since_last_clip += 1
            return index

    def ready(self) -> bool:
        """Whether the ring holds enough frames for a clip."""
        return len(self._ring) >= self.span

    def latest_clip(self, *, mark: bool = True) -> Clip:
        """The clip ending at the newest frame; raises ``ValueError`` when not :meth:`ready`.

        ``mark`` restarts :attr:`frames_since_last_clip` (a caller that schedules clips itself
        passes ``False``).
        """
        with self._lock:
            entries = list(self._ring)
            picks = stream_indices(self.spec, len(entries), self.window)
            chosen = [entries[int(i)] for i in picks]
            if mark:
                self.frames_since_last_clip = 0
            generation = self.generation
        newest = entries[-1]
        return Clip(
            items=[e.item for e in chosen],
            stamps=np.array([e.stamp for e in chosen], dtype=np.float64),
            indices=np.array([e.index for e in chosen], dtype=np.int64),
            frame_index=newest.index, frame_id=newest.frame_id,
            features=[e.features for e in chosen], generation=generation)

    def cache_features(self, index: int, features: Any) -> bool:
        """Store ``features`` with the entry of stream index ``index`` if it is still held."""
        with self._lock:
            if not self._ring:
                return False
            offset = index - self._ring[0].index
            if 0 <= offset < len(self._ring) and self._ring[offset].index == index:
                self._ring[offset].features = features
                return True
            return False
